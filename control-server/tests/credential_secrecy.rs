//! After enrolment a subscription's credential appears nowhere but in the
//! answer to its own device: not in any admin API answer, live message or
//! dashboard page, and not in the bytes of the SQLite database or its WAL.

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, TestServer, request_event};
use futures_util::StreamExt;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const FIRST: &str = "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz";
const SECOND: &str = "sk-ant-api03-Hh3jKl9Pq2Rs8Tu4Vw6Xy0Za1Bc7De5Fg-Mn2oP4qR-abcd";

/// Pieces of each credential that must not show up: the whole, and a stretch
/// of its middle (a truncated copy is a leak too).
fn needles() -> Vec<&'static str> {
    vec![FIRST, &FIRST[14..40], SECOND, &SECOND[14..40]]
}

fn assert_absent(what: &str, haystack: &[u8]) {
    for needle in needles() {
        let found = haystack
            .windows(needle.len())
            .any(|window| window == needle.as_bytes());
        assert!(!found, "{what} holds {needle:?}");
    }
}

/// The session cookie of a dashboard login.
async fn session_cookie(server: &TestServer) -> String {
    let response = server.login_response(None, ADMIN_PASSWORD).await;
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn body_of(server: &TestServer, path: &str, cookie: &str) -> String {
    let response = server
        .request(Method::GET, path)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.unwrap()
}

fn database_files(server: &TestServer) -> Vec<(String, Vec<u8>)> {
    ["ccgate.db", "ccgate.db-wal", "ccgate.db-shm"]
        .iter()
        .filter_map(|name| {
            let bytes = std::fs::read(server.data_dir().join(name)).ok()?;
            Some(((*name).to_owned(), bytes))
        })
        .collect()
}

#[tokio::test]
async fn the_credential_never_leaves_the_server_but_to_its_device() {
    if !common::on_sqlite("the_credential_never_leaves_the_server_but_to_its_device") {
        return;
    }
    let server = TestServer::start().await;
    let ws_url = format!(
        "{}/ws?token={}",
        server.url.replace("http://", "ws://"),
        server.admin_token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let mut answers = Vec::new();

    // Enrol, assign, rotate (the first credential is gone after that).
    let (status, created) = server
        .post_subscription(json!({ "name": "Team Max", "credential": FIRST }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    answers.push(created.to_string());
    let id = created["subscription"]["id"].as_i64().unwrap();
    let (status, created) = server
        .post_user(json!({ "name": "Ada", "subscription_id": id }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    answers.push(created.to_string());
    let user_id = created["user"]["id"].as_i64().unwrap();
    let code = created["install_code"].as_str().unwrap();
    let (_, token, registered) = server.register_proxy(code, "ada-laptop").await;
    answers.push(registered.to_string());
    let (status, rotated) = server
        .put_subscription(id, json!({ "credential": SECOND, "name": "Team Max 2" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    answers.push(rotated.to_string());

    // The device gets it: the one place it may appear.
    let (status, sent) = server.fetch_credential(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sent["secret"], SECOND);

    // The device reports traffic that used it.
    let mut event = request_event(
        "77777777-7777-4777-8777-777777777777",
        &jiff::Timestamp::now().to_string(),
        "claude-sonnet-4-5",
        "t:1",
        true,
        40,
    );
    event["credential"] = json!("team");
    let (status, _) = server
        .agent(&token, "/events", json!({ "events": [event] }))
        .await;
    assert_eq!(status, StatusCode::OK);
    answers.push(server.policy(&token).await.to_string());

    for path in [
        "/api/admin/subscriptions".to_owned(),
        format!("/api/admin/subscriptions/{id}"),
        "/api/admin/users".to_owned(),
        format!("/api/admin/users/{user_id}"),
        "/api/admin/audit?limit=1000".to_owned(),
        "/api/admin/events?limit=1000".to_owned(),
        "/api/admin/settings".to_owned(),
        "/api/admin/subscription".to_owned(),
        "/api/admin/me".to_owned(),
    ] {
        let (status, body) = server.admin_get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        answers.push(body.to_string());
    }
    let joined = answers.join("\n");
    assert!(
        joined.contains("\"credential_hint\":\"abcd\""),
        "the hint is there"
    );
    assert_absent("the admin API's answers", joined.as_bytes());

    let cookie = session_cookie(&server).await;
    for page in [
        "/dashboard".to_owned(),
        "/dashboard/settings".to_owned(),
        format!("/dashboard/users/{user_id}"),
        "/dashboard/activity".to_owned(),
    ] {
        let html = body_of(&server, &page, &cookie).await;
        assert_absent(&page, html.as_bytes());
    }

    // Every live message sent to admins meanwhile.
    let mut messages = String::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(300), socket.next()).await
    {
        if let Message::Text(text) = message {
            messages.push_str(&text);
        }
    }
    assert!(messages.contains("subscription_changed"), "{messages}");
    assert_absent("the live messages", messages.as_bytes());

    // The database file and its WAL, while the server runs and after it stopped.
    let running = database_files(&server);
    assert!(running.iter().any(|(name, _)| name == "ccgate.db-wal"));
    for (name, bytes) in &running {
        assert_absent(name, bytes);
    }
    let data_dir = server.data_dir().to_owned();
    let (_temp, _) = server.stop().await;
    let sealed_hint_only = std::fs::read(data_dir.join("ccgate.db")).unwrap();
    assert_absent("ccgate.db after the stop", &sealed_hint_only);
    if let Ok(wal) = std::fs::read(data_dir.join("ccgate.db-wal")) {
        assert_absent("ccgate.db-wal after the stop", &wal);
    }
}
