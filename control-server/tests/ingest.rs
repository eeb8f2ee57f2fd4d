//! Issue 9: event delivery never wedges and device input is bounded. One
//! odd event is refused alone (the rest of its batch is stored), a batch
//! over the count or byte limit is refused whole with 413, a row the
//! database refuses is refused alone, a full writer queue pushes back with
//! 503 and `Retry-After`, delivery faults reach the admins, ids are
//! deduplicated per device, replays settle nothing, and subscription
//! reports cannot claim the future.

mod common;

use std::time::Duration;

use ccgate_quota::limits::{MAX_BATCH_BYTES, MAX_KEY_BYTES, MAX_TOKENS_PER_REQUEST};
use common::{TestServer, eventually, request_event};
use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn now() -> String {
    Timestamp::now().to_string()
}

fn id(n: u32) -> String {
    format!("90000000-0000-4000-8000-{n:012}")
}

fn opus_daily(value: i64) -> Value {
    json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": value }])
}

/// The refused ids of an answer, with their reasons.
fn refused(answer: &Value) -> Vec<(String, String)> {
    answer["refused"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap().to_owned(),
                        r["reason"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn one_odd_event_is_refused_alone_and_the_rest_of_its_batch_is_stored() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Ann", json!([])).await;
    let good = request_event(&id(1), &now(), "claude-opus-4-5", "t:1", true, 10);
    // `claude --model <201 bytes>` wedged delivery for good before.
    let long_model = request_event(
        &id(2),
        &now(),
        &"m".repeat(MAX_KEY_BYTES + 1),
        "t:2",
        true,
        10,
    );
    let mut huge_tokens = request_event(&id(3), &now(), "claude-opus-4-5", "t:3", false, 1);
    huge_tokens["usage"]["input_tokens"] = json!(MAX_TOKENS_PER_REQUEST + 1);
    let mut max_tokens = request_event(&id(4), &now(), "claude-opus-4-5", "t:4", false, 1);
    max_tokens["usage"]["output_tokens"] = json!(u64::MAX);
    // A field this server does not know (a newer proxy, say).
    let unknown_reason = {
        let mut event = request_event(&id(5), &now(), "claude-opus-4-5", "t:5", true, 1);
        event["count_reason"] = json!("because");
        event
    };
    let unknown_type = json!({ "id": id(6), "at": now(), "type": "teleported" });
    let also_good = request_event(&id(7), &now(), "claude-sonnet-4-5", "t:7", true, 20);
    let batch = json!({ "events": [
        good, long_model, huge_tokens, max_tokens, unknown_reason, unknown_type, also_good,
    ] });
    let (status, answer) = server.agent(&token, "/events", batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    let refused = refused(&answer);
    let ids: Vec<&str> = refused.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [id(2), id(3), id(4), id(5), id(6)], "{answer}");
    assert!(refused[0].1.contains("model"), "{refused:?}");
    assert!(refused[1].1.contains("token count"), "{refused:?}");
    assert!(refused[2].1.contains("token count"), "{refused:?}");
    assert!(refused[3].1.contains("because"), "{refused:?}");
    assert!(refused[4].1.contains("teleported"), "{refused:?}");

    let stored: Vec<String> = server
        .events(&format!("user_id={user_id}"))
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(stored.contains(&id(1)) && stored.contains(&id(7)));
    let user = server.user(user_id).await;
    assert_eq!(user["usage"]["opus"], 1, "{user}");
    assert_eq!(user["usage"]["sonnet"], 1, "{user}");

    // The same batch again: the stored ones are duplicates, the rest refused again.
    let (status, again) = server.agent(&token, "/events", batch).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["duplicates"], 2);
    assert_eq!(again["refused"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_batch_over_the_count_or_byte_limit_is_refused_whole_with_413() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Bo", json!([])).await;
    // Forty tamper reports of 15 kB each: within the count, over the bytes.
    let events: Vec<Value> = (0..40)
        .map(|i| {
            json!({ "id": id(100 + i), "at": now(), "type": "tamper",
                    "path": "/etc/claude-code/managed-settings.json", "what": "settings_key",
                    "restored": true, "detail": "x".repeat(15_000) })
        })
        .collect();
    let batch = json!({ "events": events });
    assert!(batch.to_string().len() > MAX_BATCH_BYTES);
    let (status, answer) = server.agent(&token, "/events", batch).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["code"], "batch_too_large");
    assert!(
        answer["error"].as_str().unwrap().contains("bytes"),
        "{answer}"
    );
    assert!(
        server
            .events(&format!("user_id={user_id}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn delivery_faults_are_stored_audited_and_sent_live() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Cy", json!([])).await;
    let ws_url = format!(
        "{}/ws?token={}",
        server.url.replace("http://", "ws://"),
        server.admin_token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let fault = json!({ "id": id(200), "at": now(), "type": "delivery_fault",
        "quarantined": 3, "reason": "model is longer than 200 bytes" });
    let (status, answer) = server
        .agent(&token, "/events", json!({ "events": [fault] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1);

    let listed = server
        .events(&format!("user_id={user_id}&type=delivery_fault"))
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["detail"]["quarantined"], 3);
    let (_, audit) = server
        .admin_get(&format!(
            "/api/admin/audit?kind=delivery_fault&user_id={user_id}"
        ))
        .await;
    let entry = &audit["entries"][0];
    assert_eq!(
        entry["detail"]["reason"], "model is longer than 200 bytes",
        "{audit}"
    );
    assert_eq!(entry["detail"]["quarantined"], 3);
    assert!(entry["device_id"].is_number(), "{entry}");
    assert_eq!(entry["detail"]["hostname"], "Cy-laptop");

    let message = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else {
                continue;
            };
            let message: Value = serde_json::from_str(&text).unwrap();
            if message["type"] == "delivery_fault" {
                return message;
            }
        }
    })
    .await
    .expect("the delivery fault arrived live");
    assert_eq!(message["userId"], user_id);
    assert_eq!(message["quarantined"], 3);
    assert_eq!(message["hostname"], "Cy-laptop");
}

/// A second connection to the server's database, for what only the
/// database can do (refuse a row, hold the write lock).
fn database(server: &TestServer) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(server.data_dir().join("ccgate.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

#[tokio::test]
async fn a_row_the_database_refuses_is_refused_alone() {
    if !common::on_sqlite("a_row_the_database_refuses_is_refused_alone") {
        return;
    }
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Dee", json!([])).await;
    database(&server)
        .execute_batch(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.turn_key = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
        )
        .unwrap();
    let batch = json!({ "events": [
        request_event(&id(300), &now(), "claude-opus-4-5", "t:1", true, 1),
        request_event(&id(301), &now(), "claude-opus-4-5", "poison", true, 1),
        request_event(&id(302), &now(), "claude-opus-4-5", "t:3", true, 1),
    ] });
    let (status, answer) = server.agent(&token, "/events", batch).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    let refused = refused(&answer);
    assert_eq!(refused.len(), 1, "{answer}");
    assert_eq!(refused[0].0, id(301));
    assert!(refused[0].1.contains("could not be stored"), "{refused:?}");
    assert_eq!(server.user(user_id).await["usage"]["opus"], 2);
}

/// The number the server's metrics give for `name` (0 when absent).
async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = server
        .client
        .get(server.path("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_full_writer_queue_pushes_back_with_503_and_retry_after() {
    if !common::on_sqlite("a_full_writer_queue_pushes_back_with_503_and_retry_after") {
        return;
    }
    let server = TestServer::start_with(|config| {
        config.event_queue_rows = 1;
        config.event_queue_wait = Duration::from_millis(200);
    })
    .await;
    let (user_id, token) = server.user_with_proxy("Eli", json!([])).await;
    // Another process holds the database's write lock: the writer waits.
    let lock = database(&server);
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let first = {
        let (client, url, token) = (
            server.client.clone(),
            server.path("/api/agent/v1/events"),
            token.clone(),
        );
        let batch = json!({ "events": [request_event(&id(400), &now(), "claude-opus-4-5", "t:1", true, 1)] });
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&batch)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        })
    };
    eventually(Duration::from_secs(10), || async {
        (metric(&server, "ccgate_event_queue_rows").await >= 1.0).then_some(())
    })
    .await;
    let second =
        json!({ "events": [request_event(&id(401), &now(), "claude-opus-4-5", "t:2", true, 1)] });
    let response = server
        .client
        .post(server.path("/api/agent/v1/events"))
        .bearer_auth(&token)
        .json(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "busy", "{body}");

    lock.execute_batch("COMMIT").unwrap();
    let (status, answer) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1);
    // The device retries what was pushed back; nothing is lost or doubled.
    let (status, answer) = server.agent(&token, "/events", second).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(server.user(user_id).await["usage"]["opus"], 2);
}

#[tokio::test]
async fn event_ids_are_deduplicated_per_device() {
    let server = TestServer::start().await;
    let (ann, ann_token) = server.user_with_proxy("Fi", json!([])).await;
    let (bob, bob_token) = server.user_with_proxy("Gil", json!([])).await;
    // Gil's device learns (or guesses) an id Fi's device will use.
    let stolen = request_event(&id(500), &now(), "claude-haiku-4-5", "x:1", false, 1);
    let (_, answer) = server
        .agent(&bob_token, "/events", json!({ "events": [stolen] }))
        .await;
    assert_eq!(answer["accepted"], 1);
    let real = request_event(&id(500), &now(), "claude-opus-4-5", "t:1", true, 100);
    let (status, answer) = server
        .agent(&ann_token, "/events", json!({ "events": [real.clone()] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 1, "Fi's event counts: {answer}");
    assert_eq!(server.user(ann).await["usage"]["opus"], 1);
    assert_eq!(server.user(bob).await["usage"]["opus"], 0);
    // Its own replay is still a duplicate.
    let (_, answer) = server
        .agent(&ann_token, "/events", json!({ "events": [real] }))
        .await;
    assert_eq!(answer["duplicates"], 1);
    assert_eq!(server.user(ann).await["usage"]["opus"], 1);
}

#[tokio::test]
async fn a_replayed_event_does_not_settle_a_reservation_made_after_it() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Hu", opus_daily(5)).await;
    assert!(server.allowed(&token, "t:1", "claude-opus-4-5").await);
    let event = request_event(&id(600), &now(), "claude-opus-4-5", "t:1", true, 1);
    let batch = json!({ "events": [event] });
    let (_, answer) = server.agent(&token, "/events", batch.clone()).await;
    assert_eq!(answer["accepted"], 1);
    assert_eq!(server.user(user_id).await["pending_prompts"], 0);
    // A new check under the same key reserves a new prompt ...
    assert!(server.allowed(&token, "t:1", "claude-opus-4-5").await);
    assert_eq!(server.user(user_id).await["pending_prompts"], 1);
    // ... which the old event, replayed, must not settle for free.
    let (_, answer) = server.agent(&token, "/events", batch).await;
    assert_eq!(answer["duplicates"], 1);
    let user = server.user(user_id).await;
    assert_eq!(user["pending_prompts"], 1, "{user}");
    let released = json!({ "events": [{ "id": id(601), "at": now(), "type": "turn_released", "turn_key": "t:1" }] });
    server.agent(&token, "/events", released.clone()).await;
    assert_eq!(server.user(user_id).await["pending_prompts"], 0);
    assert!(server.allowed(&token, "t:1", "claude-opus-4-5").await);
    server.agent(&token, "/events", released).await;
    assert_eq!(
        server.user(user_id).await["pending_prompts"],
        1,
        "a replayed release settles nothing"
    );
}

#[tokio::test]
async fn utilization_observations_cannot_claim_the_future() {
    let server = TestServer::start().await;
    let (_, token) = server.user_with_proxy("Ida", json!([])).await;
    let now = server.clock.now();
    let observed_request = |n: u32, observed: Timestamp, utilization: f64| {
        let mut event = request_event(
            &id(900 + n),
            &now.to_string(),
            "claude-sonnet-4-5",
            "t",
            false,
            1,
        );
        event["account"] = json!("acct-ida");
        event["utilization"] = json!({
            "observed_at": observed, "windows": { "5h": { "utilization": utilization } } });
        json!({ "events": [event] })
    };
    let (status, answer) = server
        .agent(
            &token,
            "/events",
            observed_request(1, now + SignedDuration::from_hours(24 * 365), 0.99),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, stored) = server.admin_get("/api/admin/subscription").await;
    let observed: Timestamp = stored["subscription"]["observed_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(observed <= server.clock.now(), "clamped to now: {stored}");
    // A real observation a moment later is the newest.
    server.clock.advance(SignedDuration::from_secs(5));
    server
        .agent(
            &token,
            "/events",
            observed_request(2, server.clock.now(), 0.25),
        )
        .await;
    let (_, stored) = server.admin_get("/api/admin/subscription").await;
    assert_eq!(
        stored["subscription"]["windows"]["5h"]["utilization"], 0.25,
        "{stored}"
    );
}

#[tokio::test]
async fn a_full_batch_fits_whatever_max_body_bytes_says() {
    let server = TestServer::start_with(|config| config.max_body_bytes = 4096).await;
    let (_, token) = server.user_with_proxy("Jo", json!([])).await;
    let events: Vec<Value> = (0..60)
        .map(|i| request_event(&id(700 + i), &now(), "claude-haiku-4-5", "t", false, 1))
        .collect();
    let batch = json!({ "events": events });
    assert!(batch.to_string().len() > 4096);
    let (status, answer) = server.agent(&token, "/events", batch).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["accepted"], 60);
    // Other endpoints keep the limit.
    let (status, _) = server.post_user(json!({ "name": "x".repeat(5000) })).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}
