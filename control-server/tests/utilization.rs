//! Subscriptions as first-class things: every utilization observation kept
//! per subscription, accounts seen in personal-login traffic, the team's
//! subscription taken from the server's own assignment, history for charts
//! and gauges for Prometheus.

mod common;

use common::{TestServer, request_event};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz";
const ACCOUNT: &str = "4b1f9c2e-7a3d-4e5f-9a8b-1c2d3e4f5a6b";

fn id(n: u32) -> String {
    format!("91000000-0000-4000-8000-{n:012}")
}

/// A request event whose reply carried the unified headers.
fn observed(n: u32, at: Timestamp, five_hour: f64, seven_day: f64) -> Value {
    let mut event = request_event(&id(n), &at.to_string(), "claude-opus-4-5", "t", false, 100);
    event["utilization"] = json!({
        "observed_at": at,
        "status": "allowed",
        "windows": {
            "5h": { "utilization": five_hour, "resets_at": at + SignedDuration::from_hours(3) },
            "7d": { "utilization": seven_day, "resets_at": at + SignedDuration::from_hours(100) },
            "7d_opus": { "utilization": 0.12 },
        },
        "overage_status": "rejected",
        "other": { "brand-new": "yes" },
    });
    event
}

async fn post(server: &TestServer, token: &str, events: Vec<Value>) {
    let (status, body) = server
        .agent(token, "/events", json!({ "events": events }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refused"].is_null(), "{body}");
}

async fn subscriptions(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.admin_get("/api/admin/subscriptions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["subscriptions"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_account_two_people_use_is_one_subscription_with_its_history() {
    let server = TestServer::start().await;
    let (ann, ann_token) = server.user_with_proxy("Ann", json!([])).await;
    let (_, bob_token) = server.user_with_proxy("Bob", json!([])).await;
    let start = server.clock.now() - SignedDuration::from_mins(30);
    let with_account = |mut event: Value| {
        event["account"] = json!(ACCOUNT);
        event
    };
    post(
        &server,
        &ann_token,
        vec![
            with_account(observed(1, start, 0.10, 0.02)),
            with_account(observed(
                2,
                start + SignedDuration::from_mins(10),
                0.20,
                0.03,
            )),
        ],
    )
    .await;
    post(
        &server,
        &bob_token,
        vec![with_account(observed(
            3,
            start + SignedDuration::from_mins(20),
            0.35,
            0.04,
        ))],
    )
    .await;
    // A replayed event adds no second observation.
    post(
        &server,
        &bob_token,
        vec![with_account(observed(
            3,
            start + SignedDuration::from_mins(20),
            0.35,
            0.04,
        ))],
    )
    .await;

    let all = subscriptions(&server).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let account = &all[0];
    assert_eq!(account["origin"], "seen");
    assert_eq!(account["account_uuid"], ACCOUNT);
    assert_eq!(account["name"], "Account 4b1f9c2e");
    assert_eq!(account["users"], 2, "both people belong to it");
    let latest = &account["latest"];
    assert_eq!(latest["windows"]["5h"]["utilization"], 0.35);
    assert_eq!(latest["windows"]["7d_opus"]["utilization"], 0.12);
    assert_eq!(latest["overage_status"], "rejected");
    assert_eq!(latest["other"]["brand-new"], "yes");

    let sub_id = account["id"].as_i64().unwrap();
    let (status, history) = server
        .admin_get(&format!(
            "/api/admin/subscriptions/{sub_id}/history?range=3h"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let points = history["points"].as_array().unwrap();
    let five_hour: Vec<f64> = points
        .iter()
        .map(|p| p["five_hour"].as_f64().unwrap())
        .collect();
    assert_eq!(five_hour, [0.10, 0.20, 0.35]);
    assert_eq!(points[0]["seven_day"], 0.02);
    assert_eq!(history["range"], "3h");

    let (status, _) = server
        .admin_get(&format!(
            "/api/admin/subscriptions/{sub_id}/history?range=2d"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .admin_get("/api/admin/subscriptions/999/history?range=3h")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nobody can be assigned to an account ccgate holds no credential for,
    // and it has no credential to rotate.
    let (status, body) = server
        .put_user(ann, json!({ "subscription_id": sub_id }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = server
        .put_subscription(sub_id, json!({ "credential": TOKEN }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "seen_subscription", "{body}");
    // It can be renamed.
    let (status, body) = server
        .put_subscription(sub_id, json!({ "name": "Max (shared)" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let metrics = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"ccgate_subscription_utilization_ratio{subscription="Max (shared)",window="5h"} 0.35"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ccgate_subscription_window_resets_at_seconds{subscription="Max (shared)",window="7d"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_team_request_counts_for_the_assigned_subscription_whatever_account_it_names() {
    let server = TestServer::start().await;
    let team = server.create_subscription("Team Max", TOKEN).await;
    let (ann, token) = server.user_with_proxy("Ann", json!([])).await;
    let (status, body) = server
        .put_user(ann, json!({ "subscription_id": team }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut event = observed(10, server.clock.now(), 0.42, 0.1);
    event["credential"] = json!("team");
    event["account"] = json!("someone-elses-account");
    post(&server, &token, vec![event]).await;

    let all = subscriptions(&server).await;
    assert_eq!(all.len(), 1, "no seen account is made up: {all:?}");
    assert_eq!(all[0]["id"], team);
    assert_eq!(all[0]["latest"]["windows"]["5h"]["utilization"], 0.42);

    // A request without utilization or account leaves the history alone.
    let plain = request_event(
        &id(11),
        &server.clock.now().to_string(),
        "claude-opus-4-5",
        "u",
        false,
        5,
    );
    post(&server, &token, vec![plain]).await;
    let (_, history) = server
        .admin_get(&format!(
            "/api/admin/subscriptions/{team}/history?range=24h"
        ))
        .await;
    assert_eq!(history["points"].as_array().unwrap().len(), 1, "{history}");
}

#[tokio::test]
async fn retention_is_a_team_setting_with_bounds() {
    let server = TestServer::start().await;
    let (status, body) = server
        .put_settings(json!({ "utilization_retention_days": 30 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, settings) = server.admin_get("/api/admin/settings").await;
    assert_eq!(settings["settings"]["utilization_retention_days"], 30);
    let (status, _) = server
        .put_settings(json!({ "utilization_retention_days": 0 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
