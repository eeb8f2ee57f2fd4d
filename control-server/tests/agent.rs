//! The agent API (`/api/agent/v1/*`) against a real server.

mod common;

use std::time::Duration;

use common::sse::SseReader;
use common::{TestServer, expect_status, request_event, send};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn opus_daily(value: i64) -> Value {
    json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": value }])
}

#[tokio::test]
async fn register_returns_a_token_once_and_the_policy() {
    let server = TestServer::start().await;
    let (user_id, code) = server.create_user("Ada", opus_daily(5)).await;
    assert!(code.starts_with("CCG-") && code.len() == 23, "{code}");
    let (device_id, token, body) = server.register_proxy(&code, "ada-laptop").await;
    assert_eq!(token.len(), 64);
    assert!(device_id > 0);
    let policy = &body["sync"]["policy"];
    assert_eq!(policy["user"]["id"], user_id);
    assert_eq!(policy["status"], "active");
    assert_eq!(policy["time_zone"], "UTC");
    assert_eq!(policy["credit_weights"]["opus"], 10);
    assert_eq!(policy["rules"][0]["value"], 5);
    assert!(
        !body["sync"]["usage"]["windows"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let user = server.user(user_id).await;
    let device = &user["devices"][0];
    assert_eq!(device["hostname"], "ada-laptop");
    assert_eq!(device["kind"], "proxy");
    assert_eq!(device["os_user"], "dev");
    assert_eq!(device["online"], true);
}

#[tokio::test]
async fn install_codes_are_single_use_and_expire() {
    let mut server = TestServer::start().await;
    let (user_id, code) = server.create_user("Bea", json!([])).await;
    server.register_proxy(&code, "one").await;

    let (status, body) = server.register_proxy_raw(&code, "two").await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["code"], "install_code_used");
    assert!(body["error"].as_str().unwrap().contains("already used"));

    let (status, body) = server
        .register_proxy_raw("CCG-0000-0000-0000-0000", "x")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, body) = server
        .admin_json(
            Method::POST,
            &format!("/api/admin/users/{user_id}/install-code"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let fresh = body["install_code"].as_str().unwrap().to_owned();
    assert!(body["setup_command"].as_str().unwrap().contains(&fresh));
    server.clock.advance(SignedDuration::from_hours(24 * 7 + 1));
    let (status, body) = server.register_proxy_raw(&fresh, "late").await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["code"], "install_code_expired");
    server.relogin().await;

    // Only the first registration made a device.
    assert_eq!(
        server.user(user_id).await["devices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn repeated_failed_registrations_are_rate_limited() {
    let server = TestServer::start().await;
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        last = server
            .register_proxy_raw("CCG-WRON-GWRO-NGWR-ONGX", "x")
            .await
            .0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn device_auth_failures_are_401_json() {
    let server = TestServer::start().await;
    let (status, body) = send(
        server
            .request(Method::POST, "/api/agent/v1/check")
            .json(&json!({ "turn_key": "a", "model": "opus" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("device token required")
    );
    let (status, body) = server
        .agent(
            &"0".repeat(64),
            "/check",
            json!({ "turn_key": "a", "model": "opus" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_device_token");
    // An admin token is not a device token.
    let admin = server.admin_token.clone();
    let (status, _) = server.agent(&admin, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sync_updates_device_details_and_returns_usage() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Cy", opus_daily(3)).await;
    let (status, body) = server
        .agent(
            &token,
            "/sync",
            json!({ "device": { "hostname": "renamed", "os": "macos", "arch": "aarch64",
                                "claude_version": "2.2.0", "agent_version": "0.2.0" } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["policy"]["user"]["id"], user_id);
    assert!(body["server_time"].is_string());
    assert!(body.get("new_device_token").is_none());
    let device = &server.user(user_id).await["devices"][0];
    assert_eq!(device["hostname"], "renamed");
    assert_eq!(device["claude_version"], "2.2.0");
    // An empty body is a plain sync.
    let empty = server
        .request(Method::POST, "/api/agent/v1/sync")
        .bearer_auth(&token);
    expect_status(empty, StatusCode::OK).await;
}

#[tokio::test]
async fn allowed_checks_reserve_and_denied_ones_are_recorded() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Dee", opus_daily(2)).await;
    let first = server.check(&token, "s:1", "claude-opus-4-5").await;
    assert_eq!(first["allowed"], true);
    assert_eq!(first["cost"], 10);
    assert!(first["reservation_expires_at"].is_string());
    // The same turn again: the same answer, still one reservation.
    let again = server.check(&token, "s:1", "claude-opus-4-5").await;
    assert_eq!(again["allowed"], true);
    assert_eq!(
        again["reservation_expires_at"],
        first["reservation_expires_at"]
    );
    assert_eq!(server.user(user_id).await["pending_prompts"], 1);

    assert!(server.allowed(&token, "s:2", "claude-opus-4-5").await);
    let denied = server.check(&token, "s:3", "claude-opus-4-5").await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["reason"], "per_model");
    let message = denied["message"].as_str().unwrap();
    assert!(message.contains("2 of 2"), "{message}");
    // Other families are not limited.
    assert!(server.allowed(&token, "s:4", "claude-haiku-4-5").await);

    // The denial is stored (asynchronously) as a blocked event.
    let blocked = server
        .wait_for_events(&format!("user_id={user_id}&type=blocked"))
        .await;
    assert_eq!(blocked[0]["turn_key"], "s:3");
    assert_eq!(blocked[0]["detail"]["reason"], "per_model");

    // A turn released frees its reservation.
    let (status, body) = server
        .agent(
            &token,
            "/events",
            json!({ "events": [{ "id": "00000000-0000-4000-8000-000000000001",
                "at": Timestamp::now(), "type": "turn_released", "turn_key": "s:2" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(server.allowed(&token, "s:5", "claude-opus-4-5").await);
}

#[tokio::test]
async fn fifty_concurrent_checks_for_the_last_prompt_allow_exactly_one() {
    let server = TestServer::start().await;
    let (_, token) = server.user_with_proxy("Eve", opus_daily(1)).await;
    let checks = (0..50).map(|i| {
        let (server, token) = (&server, &token);
        async move {
            server
                .check(token, &format!("turn:{i}"), "claude-opus-4-5")
                .await
        }
    });
    let answers = futures_util::future::join_all(checks).await;
    let allowed = answers.iter().filter(|a| a["allowed"] == true).count();
    assert_eq!(allowed, 1, "exactly one check may take the last prompt");
}

#[tokio::test]
async fn the_same_event_twice_counts_once_and_settles_the_reservation() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Fay", opus_daily(5)).await;
    assert!(server.allowed(&token, "s:1", "claude-opus-4-5").await);
    let event = request_event(
        "6f1f7c1e-3a43-4c59-9d0b-0a5f1b2c3d4e",
        &Timestamp::now().to_string(),
        "claude-opus-4-5",
        "s:1",
        true,
        1000,
    );
    let batch = json!({ "events": [event.clone()] });
    let (status, first) = server.agent(&token, "/events", batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["accepted"], 1);
    assert_eq!(first["duplicates"], 0);
    let (_, second) = server.agent(&token, "/events", batch).await;
    assert_eq!(second["accepted"], 0);
    assert_eq!(second["duplicates"], 1);

    let user = server.user(user_id).await;
    assert_eq!(user["usage"]["opus"], 1, "counted once: {user}");
    assert_eq!(user["pending_prompts"], 0, "the reservation was settled");
    let (_, usage) = server
        .admin_get(&format!("/api/admin/usage?user_id={user_id}&days=1"))
        .await;
    let rows = usage["daily"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{usage}");
    assert_eq!(rows[0]["count"], 1);
    assert_eq!(rows[0]["credits"], 10);
    assert_eq!(rows[0]["input_tokens"], 1000);
    assert_eq!(rows[0]["model"], "opus");
    // The snapshot in the answer includes the event.
    let day = &first["usage"]["windows"][0]["usage"]["opus"];
    assert_eq!(day["prompts"], 1, "{first}");
}

#[tokio::test]
async fn offline_events_keep_their_day_and_future_ones_are_clamped() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Gus", json!([])).await;
    // The device was registered three days ago (by the server's clock).
    server.clock.advance(SignedDuration::from_hours(72));
    let now = server.clock.now();
    let two_days_ago = now - SignedDuration::from_hours(48);
    let ten_days_ago = now - SignedDuration::from_hours(240);
    let tomorrow = now + SignedDuration::from_hours(30);
    let events = json!({ "events": [
        request_event("11111111-1111-4111-8111-111111111111", &two_days_ago.to_string(), "claude-sonnet-4-5", "a:1", true, 10),
        request_event("22222222-2222-4222-8222-222222222222", &tomorrow.to_string(), "claude-sonnet-4-5", "a:2", true, 20),
        request_event("33333333-3333-4333-8333-333333333333", &ten_days_ago.to_string(), "claude-sonnet-4-5", "a:3", true, 40),
    ]});
    let (status, body) = server.agent(&token, "/events", events).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 3);

    let stored = server.events(&format!("user_id={user_id}")).await;
    let at_of = |id: &str| -> Timestamp {
        let event = stored.iter().find(|e| e["id"] == id).unwrap();
        event["at"].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(
        at_of("11111111-1111-4111-8111-111111111111").as_millisecond(),
        two_days_ago.as_millisecond()
    );
    let future = at_of("22222222-2222-4222-8222-222222222222");
    assert!(
        future <= server.clock.now() && future.as_millisecond() >= now.as_millisecond(),
        "clamped to the server's now"
    );
    // Older than the device: moved up to when the device was registered.
    let old = at_of("33333333-3333-4333-8333-333333333333");
    assert!(old > ten_days_ago && old < two_days_ago, "{old}");

    let (_, usage) = server
        .admin_get(&format!("/api/admin/usage?user_id={user_id}&days=7"))
        .await;
    let days: Vec<(String, u64)> = usage["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["day"].as_str().unwrap().to_owned(),
                row["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let day = |t: Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    assert!(days.contains(&(day(two_days_ago), 1)), "{days:?}");
    assert_eq!(days.iter().map(|(_, n)| n).sum::<u64>(), 3);
}

#[tokio::test]
async fn bad_batches_are_refused_whole_and_bad_events_alone() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Hal", json!([])).await;
    let now = Timestamp::now().to_string();
    let too_many: Vec<Value> = (0..501)
        .map(|i| {
            request_event(
                &format!("00000000-0000-4000-8000-{i:012}"),
                &now,
                "opus",
                "t",
                false,
                1,
            )
        })
        .collect();
    let (status, body) = server
        .agent(&token, "/events", json!({ "events": too_many }))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    let mut broken = request_event(
        "00000000-0000-4000-8000-000000000999",
        &now,
        "opus",
        "t",
        true,
        1,
    );
    broken["usage"] = json!("lots");
    let good = request_event(
        "00000000-0000-4000-8000-000000000998",
        &now,
        "opus",
        "t",
        true,
        1,
    );
    // An event that does not parse is refused alone, by its id.
    let (status, body) = server
        .agent(&token, "/events", json!({ "events": [good, broken] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(
        body["refused"][0]["id"],
        "00000000-0000-4000-8000-000000000999"
    );
    assert!(
        body["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unreadable event"),
        "{body}"
    );

    // Without an id an event can be neither stored nor refused by name.
    let (status, body) = server
        .agent(
            &token,
            "/events",
            json!({ "events": [{ "id": "not-a-uuid" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_event");
    // Not a batch at all.
    let (status, body) = server
        .agent(&token, "/events", json!({ "events": "none" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("invalid JSON"));
    assert_eq!(
        server.events(&format!("user_id={user_id}")).await.len(),
        1,
        "only the good event is stored"
    );
}

/// The utilization of the subscription's five-hour window, as last reported.
async fn five_hour_utilization(server: &TestServer) -> Value {
    let (_, subscription) = server.admin_get("/api/admin/subscription").await;
    subscription["subscription"]["windows"]["5h"]["utilization"].clone()
}

#[tokio::test]
async fn tamper_and_subscription_reports_are_stored() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Ivy", json!([])).await;
    // A report beside the events (an agent from before issue 11) is kept for
    // the person's subscription.
    let team = server
        .create_subscription(
            "Team Max",
            "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz",
        )
        .await;
    let (status, body) = server
        .put_user(user_id, json!({ "subscription_id": team }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let observed = Timestamp::now();
    let body = json!({
        "events": [{ "id": "44444444-4444-4444-8444-444444444444", "at": observed,
            "type": "tamper", "path": "/etc/claude-code/managed-settings.json",
            "what": "settings_key", "restored": true }],
        "subscription": { "observed_at": observed, "status": "allowed",
            "windows": { "5h": { "utilization": 0.42, "resets_at": observed + SignedDuration::from_hours(3) },
                         "7d": { "utilization": 0.1 } } },
    });
    let (status, answer) = server.agent(&token, "/events", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, audit) = server
        .admin_get(&format!("/api/admin/audit?kind=tamper&user_id={user_id}"))
        .await;
    assert_eq!(audit["entries"][0]["detail"]["what"], "settings_key");
    assert_eq!(five_hour_utilization(&server).await, 0.42);
    // An older observation does not replace a newer one.
    let stale = json!({ "events": [], "subscription": {
        "observed_at": observed - SignedDuration::from_mins(5), "windows": { "5h": { "utilization": 0.9 } } } });
    server.agent(&token, "/events", stale).await;
    assert_eq!(five_hour_utilization(&server).await, 0.42);
}

#[tokio::test]
async fn a_kill_reaches_the_open_stream_and_rotates_the_token() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Jo", opus_daily(5)).await;
    let mut stream = SseReader::open(&server, &token).await;
    let first = stream.next_sync().await;
    assert_eq!(first["policy"]["status"], "active");
    assert!(server.user(user_id).await["devices"][0]["online"] == true);

    server.set_status(user_id, "killed").await;
    let pushed = tokio::time::timeout(Duration::from_secs(10), stream.next_sync())
        .await
        .expect("the kill reached the stream");
    assert_eq!(pushed["policy"]["status"], "killed");
    assert!(pushed["policy"]["version"].as_u64() > first["policy"]["version"].as_u64());
    let new_token = pushed["new_device_token"]
        .as_str()
        .expect("a replacement token")
        .to_owned();
    assert_ne!(new_token, token);

    // Checks deny at once; the old token works until the new one is used.
    let denied = server.check(&token, "k:1", "claude-opus-4-5").await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["reason"], "killed");
    let (status, sync) = server.agent(&new_token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        sync.get("new_device_token").is_none(),
        "delivered and used: {sync}"
    );
    let (status, _) = server.agent(&token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token is dropped");

    // Resuming reaches the stream too (it stays open across the token switch).
    server.set_status(user_id, "active").await;
    let resumed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let sync = stream.next_sync().await;
            if sync["policy"]["status"] == "active" {
                return sync;
            }
        }
    })
    .await
    .expect("the resume reached the stream");
    assert!(resumed.get("new_device_token").is_none());
    assert!(server.allowed(&new_token, "k:2", "claude-opus-4-5").await);
}

#[tokio::test]
async fn limit_and_settings_changes_reach_the_stream() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Kit", opus_daily(5)).await;
    let mut stream = SseReader::open(&server, &token).await;
    stream.next_sync().await;
    let (status, _) = server
        .put_user(user_id, json!({ "limits": opus_daily(9) }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let pushed = stream.next_sync().await;
    assert_eq!(pushed["policy"]["rules"][0]["value"], 9);
    let (status, _) = server
        .put_settings(json!({ "credit_weights": { "opus": 20, "sonnet": 3, "haiku": 1 } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let pushed = stream.next_sync().await;
    assert_eq!(pushed["policy"]["credit_weights"]["opus"], 20);

    // An admin rotation delivers a replacement without a kill.
    let (status, body) = server
        .admin_json(
            Method::POST,
            &format!("/api/admin/users/{user_id}/rotate-tokens"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rotated"], 1);
    let pushed = stream.next_sync().await;
    assert!(pushed["new_device_token"].is_string());
}
