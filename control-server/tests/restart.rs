//! Restarting on the same data dir loses nothing; bad configuration stops
//! the server with a clear error.

mod common;

use ccgate_server::ServerConfig;
use common::{ADMIN_PASSWORD, TestServer, config, request_event, start_error};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_restart_keeps_users_limits_usage_devices_and_sessions() {
    let server = TestServer::start().await;
    let (user_id, token) = server
        .user_with_proxy(
            "Rae",
            json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 3 }]),
        )
        .await;
    let (status, _) = server
        .admin_json(
            Method::PUT,
            "/api/admin/settings",
            Some(json!({ "team_name": "Durable" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        server.check(&token, "t:1", "claude-opus-4-5").await["allowed"],
        true
    );
    let event = request_event(
        "66666666-6666-4666-8666-666666666666",
        &jiff::Timestamp::now().to_string(),
        "claude-opus-4-5",
        "t:1",
        true,
        50,
    );
    server
        .agent(&token, "/events", json!({ "events": [event.clone()] }))
        .await;
    // A denied check queues a blocked event; it must survive the restart too.
    server.set_status(user_id, "paused").await;
    server.check(&token, "t:2", "claude-opus-4-5").await;
    let session = server.admin_token.clone();
    let before = server.user(user_id).await;

    let (temp, data_dir) = server.stop().await;
    let mut again = config(&data_dir);
    again.admin_password = None; // stored already
    let server = TestServer::launch(again).await;

    let response = server
        .request(Method::GET, "/api/admin/me")
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the old session still works"
    );
    let after = server.user(user_id).await;
    for key in ["name", "slug", "status", "limits", "usage", "created_at"] {
        assert_eq!(after[key], before[key], "{key}");
    }
    assert_eq!(after["usage"]["opus"], 1);
    assert_eq!(
        after["devices"][0]["hostname"],
        before["devices"][0]["hostname"]
    );
    assert!(after["devices"][0]["last_seen_at"].is_string());
    let (_, settings) = server
        .admin_json(Method::GET, "/api/admin/settings", None)
        .await;
    assert_eq!(settings["settings"]["team_name"], "Durable");

    // The device token still works, the replayed event is still a duplicate.
    server.set_status(user_id, "active").await;
    let (status, body) = server
        .agent(&token, "/events", json!({ "events": [event] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicates"], 1);
    assert!(
        !server
            .events(&format!("user_id={user_id}&type=blocked"))
            .await
            .is_empty()
    );
    assert_eq!(
        server.check(&token, "t:3", "claude-opus-4-5").await["allowed"],
        true
    );
    assert_eq!(
        server.check(&token, "t:4", "claude-opus-4-5").await["allowed"],
        true
    );
    assert_eq!(
        server.check(&token, "t:5", "claude-opus-4-5").await["allowed"],
        false,
        "usage survived"
    );
    drop(temp);
}

#[tokio::test]
async fn a_killed_users_replacement_token_is_reissued_after_a_restart() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Sol", json!([])).await;
    server.set_status(user_id, "killed").await;
    let (temp, data_dir) = server.stop().await;
    let server = TestServer::launch(config(&data_dir)).await;
    let (status, sync) = server.agent(&token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let fresh = sync["new_device_token"]
        .as_str()
        .expect("a replacement is delivered")
        .to_owned();
    assert_eq!(
        server.agent(&fresh, "/sync", json!({})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        server.agent(&token, "/sync", json!({})).await.0,
        StatusCode::UNAUTHORIZED
    );
    drop(temp);
}

#[tokio::test]
async fn bad_configuration_is_refused_with_a_clear_message() {
    let temp = tempfile::tempdir().unwrap();
    let error = start_error(ServerConfig::new(temp.path())).await;
    assert!(
        error.to_string().contains("ADMIN_PASSWORD is required"),
        "{error}"
    );

    let mut short = config(temp.path());
    short.admin_password = Some("short".into());
    assert!(start_error(short).await.to_string().contains("at least 8"));

    let mut bad_url = config(temp.path());
    bad_url.public_url = Some("ccgate.example.com".into());
    assert!(
        start_error(bad_url)
            .await
            .to_string()
            .contains("PUBLIC_URL")
    );

    let file = temp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let error = start_error(config(&file)).await;
    assert!(error.to_string().contains("data directory"), "{error}");
    let _ = ADMIN_PASSWORD;
}
