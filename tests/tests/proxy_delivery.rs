//! Event delivery cannot be wedged: an odd field is shortened before it is
//! recorded, a batch stays within the byte limit, and an event the server
//! refuses anyway is set aside (and reported) while the rest flows.

use ccgate_proxy::ledger::TurnMemory;
use ccgate_quota::wire::{AgentEvent, BlockedEvent, EventBody, RequestKind};
use ccgate_quota::{DenyReason, limits};
use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::scenario::{SETTLE, Scenario};

fn client(scenario: &Scenario) -> ProxyClient {
    ProxyClient::new(scenario.proxy.address, &scenario.machine.paths.ca_cert())
}

fn blocked(message: String) -> AgentEvent {
    AgentEvent {
        id: uuid::Uuid::now_v7(),
        at: jiff::Timestamp::now(),
        body: EventBody::Blocked(BlockedEvent {
            model: "claude-opus-5-5".into(),
            kind: RequestKind::Prompt,
            turn_key: None,
            reason: DenyReason::PerModel,
            message,
            decided_offline: true,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_id_longer_than_the_server_takes_does_not_wedge_delivery() {
    let scenario = Scenario::start(5).await;
    let client = client(&scenario);
    // `claude --model <201 bytes>`: the server takes model ids up to 200.
    let long = format!("claude-opus-{}", "x".repeat(300));
    let first = client.send(&Turn::prompt("s", 1, "hi").model(&long)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(
        client.send(&Turn::prompt("s", 2, "again")).await.status,
        200
    );
    assert!(
        ccgate_tests::settled(&scenario.proxy, SETTLE).await,
        "delivery is stuck: {:?}",
        scenario.proxy.shared.health()
    );
    assert_eq!(scenario.prompts_counted().await, 2);
    let models: Vec<String> = scenario
        .server
        .events(scenario.user_id, "request")
        .await
        .iter()
        .filter_map(|e| e["model"].as_str().map(str::to_owned))
        .collect();
    assert!(
        models
            .iter()
            .any(|m| m.starts_with("claude-opus-xxxx") && m.len() <= limits::MAX_KEY_BYTES),
        "{models:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_within_the_byte_limit() {
    let scenario = Scenario::start(5).await;
    // A hundred blocks with long messages: far more than one request body
    // the server takes.
    let ledger = &scenario.proxy.shared.ledger;
    for i in 0..100 {
        let message = format!("{i} {}", "m".repeat(limits::MAX_TEXT_BYTES - 16));
        ledger
            .append(&blocked(message), None, &TurnMemory::default())
            .unwrap();
    }
    scenario.proxy.shared.outbox.wake_sender();
    assert!(
        ccgate_tests::settled(&scenario.proxy, SETTLE).await,
        "delivery is stuck: {:?}",
        scenario.proxy.shared.health()
    );
    assert_eq!(
        scenario
            .server
            .events(scenario.user_id, "blocked")
            .await
            .len(),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_does_not_read_is_set_aside_reported_and_the_rest_flows() {
    let scenario = Scenario::start(5).await;
    // A record in the ledger that this ccgate cannot read (written by a
    // newer version, or damaged on disk), ahead of the next prompt's.
    let db = rusqlite::Connection::open(scenario.machine.paths.state_db()).unwrap();
    db.execute(
        "INSERT INTO events (id, at_ms, body) VALUES (?1, ?2, ?3)",
        rusqlite::params![
            "0190f0f0-0000-7000-8000-000000000001",
            jiff::Timestamp::now().as_millisecond(),
            r#"{"type": "from_the_future", "id": "x"}"#
        ],
    )
    .unwrap();
    let client = client(&scenario);
    assert_eq!(client.send(&Turn::prompt("s", 1, "hi")).await.status, 200);
    assert!(
        ccgate_tests::settled(&scenario.proxy, SETTLE).await,
        "delivery is stuck: {:?}",
        scenario.proxy.shared.health()
    );
    assert_eq!(scenario.prompts_counted().await, 1);
    let ledger = &scenario.proxy.shared.ledger;
    assert_eq!(ledger.quarantined_count().unwrap(), 1);
    let held = ledger.quarantined(5).unwrap();
    assert!(held[0].reason.contains("does not read"), "{held:?}");
    // The admins see it, and so does the person.
    let faults = scenario
        .server
        .events(scenario.user_id, "delivery_fault")
        .await;
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0]["detail"]["quarantined"], 1);
    let status = ccgate_proxy::status::collect(&scenario.proxy.shared);
    assert_eq!(status.quarantined_events, 1);
}
