//! Who used the window: a subscription's rises shared among the people
//! whose requests caused them, each person's share in the API, the `share`
//! rule blocking a person over their part, and a rise nobody's requests
//! explain reported as use outside ccgate.

mod common;

use std::time::Duration;

use common::{TestServer, eventually, request_event};
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACCOUNT: &str = "5ea7e000-0000-4000-8000-000000000001";
const WAIT: Duration = Duration::from_secs(15);

/// A completed request of `model` with `output` tokens at `at`, whose reply
/// showed the 5-hour window at `utilization` (read `observed` later).
fn request(
    n: u32,
    at: Timestamp,
    model: &str,
    output: u64,
    utilization: f64,
    resets: Timestamp,
) -> Value {
    let id = format!("93000000-0000-4000-8000-{n:012}");
    let mut event = request_event(&id, &at.to_string(), model, &format!("t{n}"), false, 0);
    event["usage"]["output_tokens"] = json!(output);
    event["account"] = json!(ACCOUNT);
    event["utilization"] = json!({
        "observed_at": at + SignedDuration::from_secs(30),
        "windows": { "5h": { "utilization": utilization, "resets_at": resets } },
    });
    event
}

async fn five_hour_people(server: &TestServer) -> Option<Value> {
    let (_, body) = server.admin_get("/api/admin/subscriptions").await;
    let window = body["subscriptions"][0]["windows"]
        .as_array()?
        .iter()
        .find(|w| w["window"] == "five_hour")?
        .clone();
    Some(window)
}

#[tokio::test]
async fn each_persons_share_of_the_window_follows_their_requests_and_the_share_rule_blocks() {
    let server = TestServer::start().await;
    let share_rule = json!([{ "type": "share", "window": "five_hour", "value": 25 }]);
    let (ann, ann_token) = server.user_with_proxy("Ann", share_rule).await;
    let (_, bob_token) = server.user_with_proxy("Bob", json!([])).await;
    // Devices' events are never older than the device: time passes first.
    server.clock.advance(SignedDuration::from_mins(45));
    let now = server.clock.now();
    let start = now - SignedDuration::from_mins(40);
    let resets = now + SignedDuration::from_hours(3);
    // Ann works first (Opus, 3 points a request), then Bob (Haiku, about
    // 0.2); the headers round to whole points as Anthropic's do.
    let (mut used, mut n) = (0.0_f64, 0);
    for (token, model, cost) in [
        (&ann_token, "claude-opus-4-5", 0.03),
        (&bob_token, "claude-haiku-4-5", 0.002),
    ] {
        for _ in 0..10 {
            n += 1;
            used += cost;
            let at = start + SignedDuration::from_secs(i64::from(n) * 60);
            let shown = (used * 100.0).round() / 100.0;
            let (status, body) = server
                .agent(
                    token,
                    "/events",
                    json!({ "events": [request(n, at, model, 20_000, shown, resets)] }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let window = eventually(WAIT, || async {
        let window = five_hour_people(&server).await?;
        (window["people"].as_array()?.len() == 2).then_some(window)
    })
    .await;
    let people = window["people"].as_array().unwrap();
    assert_eq!(
        people[0]["name"], "Ann",
        "the biggest share first: {window}"
    );
    let ann_share = people[0]["share"].as_f64().unwrap();
    let bob_share = people[1]["share"].as_f64().unwrap();
    assert!((0.25..=0.35).contains(&ann_share), "{window}");
    assert!(bob_share < 0.05, "{window}");
    assert!(window["unattributed"].as_f64().unwrap() < 0.01, "{window}");

    // Her page says so, and the share rule holds her at 25 %.
    let user = server.user(ann).await;
    assert_eq!(user["window_shares"][0]["window"], "five_hour", "{user}");
    let check = server.check(&ann_token, "next", "claude-opus-4-5").await;
    assert_eq!(check["allowed"], false, "{check}");
    assert_eq!(check["reason"], "share", "{check}");
    let message = check["message"].as_str().unwrap();
    assert!(
        message.contains("of the team's 5-hour window; the limit is 25 %; it frees up"),
        "{message}"
    );
    assert!(
        server
            .allowed(&bob_token, "b-next", "claude-haiku-4-5")
            .await
    );
}

#[tokio::test]
async fn a_rise_no_request_explains_is_use_outside_ccgate() {
    let server = TestServer::start().await;
    let (_, token) = server.user_with_proxy("Cy", json!([])).await;
    server.clock.advance(SignedDuration::from_mins(45));
    let now = server.clock.now();
    let start = now - SignedDuration::from_mins(30);
    let resets = now + SignedDuration::from_hours(3);
    let mut events = Vec::new();
    let mut used = 0.0_f64;
    for n in 1..=20 {
        used += 0.02;
        // Before the eleventh request the window jumps 10 points with no
        // request of ccgate's in between.
        if n == 11 {
            used += 0.10;
        }
        let at = start + SignedDuration::from_mins(i64::from(n));
        let shown = (used * 100.0).round() / 100.0;
        events.push(request(
            100 + n,
            at,
            "claude-sonnet-4-5",
            30_000,
            shown,
            resets,
        ));
    }
    let (status, body) = server
        .agent(&token, "/events", json!({ "events": events }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let window = eventually(WAIT, || async {
        let window = five_hour_people(&server).await?;
        (window["unattributed"].as_f64()? > 0.05).then_some(window)
    })
    .await;
    assert!(window["unattributed"].as_f64().unwrap() < 0.15, "{window}");
    // The default rule raises it.
    let log = eventually(WAIT, || async {
        let (_, log) = server.admin_get("/api/admin/alerts/log").await;
        log["alerts"]
            .as_array()?
            .iter()
            .any(|a| {
                a["title"]
                    .as_str()
                    .is_some_and(|t| t.contains("use outside ccgate"))
            })
            .then_some(log)
    })
    .await;
    assert!(log.to_string().contains("without ccgate"), "{log}");
}
