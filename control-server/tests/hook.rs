//! The claude-code-limiter hook API (`/api/v1/*`) with the peer's shapes.

mod common;

use std::time::Duration;

use common::{TestServer, eventually, send};
use jiff::SignedDuration;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn hook(
    server: &TestServer,
    token: Option<&str>,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = server
        .request(Method::POST, &format!("/api/v1{path}"))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    send(request).await
}

async fn hook_user(server: &TestServer, limits: Value) -> (i64, String) {
    let (user_id, _) = server.create_user("Hook User", limits).await;
    let code = server.hook_code(user_id).await;
    let (status, body) = hook(server, None, "/register", json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (user_id, body["auth_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn register_sync_check_count_status_health_keep_the_peer_shapes() {
    let server = TestServer::start().await;
    let limits = json!([
        { "type": "per_model", "model": "opus", "window": "daily", "value": 2 },
        { "type": "credits", "window": "weekly", "value": 100 },
        { "type": "tokens", "window": "daily", "value": 1000000, "kind": "total" },
        { "type": "per_model", "model": "sonnet", "window": "rolling_5h", "value": 9 },
    ]);
    let (user_id, _) = server.create_user("Lee", limits).await;
    let code = server.hook_code(user_id).await;
    let (status, reg) = hook(&server, None, "/register", json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{reg}");
    let token = reg["auth_token"].as_str().unwrap().to_owned();
    // A used code is a 404, as with the peer (its hook clients know no 410).
    let (status, reused) = hook(&server, None, "/register", json!({ "code": code })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reused}");
    assert!(reused["error"].as_str().unwrap().contains("already used"));
    assert_eq!(
        reg["user"],
        json!({ "id": user_id, "name": "Lee", "slug": "lee", "status": "active" })
    );
    assert_eq!(reg["credit_weights"]["opus"], 10);
    assert_eq!(reg["credit_weights"]["default"], 3);
    // Only rules the peer knows are listed (tokens and rolling_5h are enforced, not sent).
    let listed = reg["limits"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for key in [
        "id",
        "type",
        "model",
        "window",
        "value",
        "schedule_start",
        "schedule_end",
        "schedule_tz",
    ] {
        assert!(listed[0].get(key).is_some(), "rule lacks {key}");
    }

    let (status, sync) = hook(
        &server,
        Some(&token),
        "/sync",
        json!({ "model": "opus", "hostname": "lee-mac", "platform": "darwin", "arch": "arm64",
                "os_version": "14.5", "node_version": "20.1", "claude_version": "2.1.0", "session_id": "x" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sync}");
    for key in [
        "status",
        "limits",
        "credit_weights",
        "usage",
        "credit_balance",
        "credit_budget",
        "message",
    ] {
        assert!(sync.get(key).is_some(), "sync lacks {key}: {sync}");
    }
    assert_eq!(sync["credit_budget"], 100);
    assert_eq!(sync["credit_balance"], 100);
    assert_eq!(sync["message"], Value::Null);
    assert_eq!(
        server.user(user_id).await["devices"][0]["hostname"],
        "lee-mac"
    );

    let (status, check) = hook(
        &server,
        Some(&token),
        "/check",
        json!({ "model": "opus", "local_usage": {}, "prompt_length": 12, "project_dir": "/src", "session_id": "sess-1" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    for key in [
        "allowed",
        "reason",
        "status",
        "limits",
        "usage",
        "credit_balance",
        "credit_budget",
        "message",
    ] {
        assert!(check.get(key).is_some(), "check lacks {key}: {check}");
    }
    assert_eq!(check["allowed"], true);
    assert_eq!(
        check["credit_balance"], 90,
        "the reservation already counts"
    );

    let (status, count) = hook(
        &server,
        Some(&token),
        "/count",
        json!({ "model": "opus", "timestamp": "2001-01-01T00:00:00Z", "session_id": "sess-1", "response_length": 300 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{count}");
    assert_eq!(count["recorded"], true);
    assert_eq!(count["new_balance"], 90);
    // Client timestamps are ignored: the prompt counts today.
    assert_eq!(server.user(user_id).await["usage"]["opus"], 1);

    let (status, report) = send(
        server
            .request(Method::GET, "/api/v1/status")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["user"]["id"], user_id);
    assert_eq!(
        report["per_model"]["opus"]["daily"],
        json!({ "used": 1, "limit": 2, "remaining": 1 })
    );
    assert_eq!(report["usage"]["daily"]["counts"]["opus"], 1);
    assert_eq!(report["usage"]["weekly"]["totalCredits"], 10);
    assert!(report["usage"]["daily"]["windowStart"].is_string());
    assert_eq!(report["credit_budget"], 100);

    let (status, health) = send(server.request(Method::GET, "/api/v1/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert!(health["timestamp"].is_string());
}

#[tokio::test]
async fn auth_errors_match_the_peer() {
    let server = TestServer::start().await;
    let (status, body) = hook(&server, None, "/check", json!({ "model": "opus" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "auth_token required");
    let (status, body) = hook(&server, Some("nope"), "/check", json!({ "model": "opus" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "Invalid auth_token");
    let (_, body) = send(server.request(Method::GET, "/api/v1/status")).await;
    assert_eq!(body["error"], "auth_token required");

    // The token may also come in the body.
    let (_, token) = hook_user(&server, json!([])).await;
    let (status, body) = hook(
        &server,
        None,
        "/check",
        json!({ "model": "haiku", "auth_token": token }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true);

    let (status, body) = hook(&server, None, "/register", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string());
    let (status, body) = hook(
        &server,
        None,
        "/register",
        json!({ "code": "CCG-AAAA-BBBB-CCCC-DDDD" }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn check_reserves_and_count_is_idempotent() {
    let server = TestServer::start().await;
    let (user_id, token) = hook_user(
        &server,
        json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 2 }]),
    )
    .await;
    // The hook's call to `path` for an opus prompt of `session`.
    let call = |path: &'static str, session: &'static str| {
        hook(
            &server,
            Some(&token),
            path,
            json!({ "model": "opus", "session_id": session }),
        )
    };
    // Two sessions take the two prompts; a third is refused before any count.
    assert_eq!(call("/check", "a").await.1["allowed"], true);
    assert_eq!(call("/check", "b").await.1["allowed"], true);
    let (_, refused) = call("/check", "c").await;
    assert_eq!(refused["allowed"], false);
    assert!(
        refused["reason"].as_str().unwrap().contains("opus"),
        "{refused}"
    );
    assert!(refused["message"].as_str().unwrap().contains("2 of 2"));

    assert_eq!(call("/count", "a").await.0, StatusCode::OK);
    let (status, repeated) = call("/count", "a").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(repeated["duplicate"], true, "{repeated}");
    // The count is stored behind the answer (the writer's queue): wait for
    // it. The duplicate was turned away before anything was queued.
    let counted = eventually(Duration::from_secs(10), || async {
        let events = server
            .events(&format!("user_id={user_id}&type=request"))
            .await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(counted.len(), 1, "a repeated count counts once");
    let user = server.user(user_id).await;
    assert_eq!(user["pending_prompts"], 1, "session b is still reserved");
    assert_eq!(
        user["usage"]["opus"], 2,
        "usage shows counted and reserved prompts"
    );
}

#[tokio::test]
async fn count_is_refused_for_paused_and_killed_users() {
    let server = TestServer::start().await;
    let (user_id, token) = hook_user(&server, json!([])).await;
    for status in ["paused", "killed"] {
        server.set_status(user_id, status).await;
        let (code, body) = hook(
            &server,
            Some(&token),
            "/count",
            json!({ "model": "opus", "session_id": "s" }),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], status);
        let (_, check) = hook(&server, Some(&token), "/check", json!({ "model": "opus" })).await;
        assert_eq!(check["allowed"], false);
        assert_eq!(check["status"], status);
    }
    assert_eq!(server.user(user_id).await["usage"]["opus"], 0);
}

#[tokio::test]
async fn an_unreported_hook_prompt_is_counted_when_its_reservation_lapses() {
    let server =
        TestServer::start_with(|config| config.reservation_ttl = Duration::from_secs(60)).await;
    let (user_id, token) = hook_user(&server, json!([])).await;
    let (_, check) = hook(
        &server,
        Some(&token),
        "/check",
        json!({ "model": "sonnet", "session_id": "gone" }),
    )
    .await;
    assert_eq!(check["allowed"], true);
    // Claude was killed: no count ever arrives.
    server.clock.advance(SignedDuration::from_mins(2));
    let usage = eventually(Duration::from_secs(20), || async {
        let user = server.user(user_id).await;
        (user["pending_prompts"] == 0).then(|| user["usage"]["sonnet"].clone())
    })
    .await;
    assert_eq!(usage, 1);
    let stored = server
        .wait_for_events(&format!("user_id={user_id}&type=request"))
        .await;
    assert_eq!(stored[0]["detail"]["settled"], "unreported");
    assert_eq!(stored[0]["prompts"], 1);
}
