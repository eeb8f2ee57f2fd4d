//! Live events on `/ws`.

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, Socket, TestServer, next_of, request_event};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

fn ws_url(server: &TestServer, query: &str) -> String {
    format!("{}/ws{query}", server.url.replace("http://", "ws://"))
}

/// An upgrade request as a browser sends it from `origin`, with its session `cookie`.
fn from_browser(server: &TestServer, cookie: &str, origin: &str) -> Request {
    let mut request = ws_url(server, "").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", cookie.parse().unwrap());
    headers.insert("origin", origin.parse().unwrap());
    request
}

fn refused_with(result: Result<(Socket, impl Sized), WsError>, status: u16) {
    match result {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), status),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

#[tokio::test]
async fn admins_receive_check_and_count_events() {
    let server = TestServer::start().await;
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(
        &server,
        &format!("?token={}", server.admin_token),
    ))
    .await
    .unwrap();
    let hello = next_of(&mut socket, "connected").await;
    assert_eq!(hello["role"], "admin");

    let (user_id, token) = server
        .user_with_proxy(
            "Wes",
            json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 1 }]),
        )
        .await;
    let created = next_of(&mut socket, "user_created").await;
    assert_eq!(created["userId"], user_id);
    next_of(&mut socket, "device_registered").await;

    server.agent(&token, "/sync", json!({})).await;
    let status = next_of(&mut socket, "user_status").await;
    assert_eq!(status["status"], "active");
    assert_eq!(status["userName"], "Wes");

    server.check(&token, "s:1", "claude-opus-4-5").await;
    let check = next_of(&mut socket, "user_check").await;
    assert_eq!(check["userId"], user_id);
    assert_eq!(check["userName"], "Wes");
    assert_eq!(check["model"], "claude-opus-4-5");
    assert_eq!(check["hostname"], "Wes-laptop");
    assert!(check["timestamp"].is_string());

    let event = request_event(
        "55555555-5555-4555-8555-555555555555",
        &jiff::Timestamp::now().to_string(),
        "claude-opus-4-5",
        "s:1",
        true,
        321,
    );
    server
        .agent(&token, "/events", json!({ "events": [event] }))
        .await;
    let usage = next_of(&mut socket, "usage").await;
    assert_eq!(usage["input_tokens"], 321);
    let counted = next_of(&mut socket, "user_counted").await;
    assert_eq!(counted["creditCost"], 10);
    assert_eq!(counted["sessionId"], "s1");

    server.check(&token, "s:2", "claude-opus-4-5").await;
    let blocked = next_of(&mut socket, "user_blocked").await;
    assert_eq!(blocked["reason"], "per_model");

    server.set_status(user_id, "killed").await;
    let change = next_of(&mut socket, "user_status_change").await;
    assert_eq!(change["oldStatus"], "active");
    assert_eq!(change["newStatus"], "killed");
    next_of(&mut socket, "user_killed").await;
}

#[tokio::test]
async fn unauthenticated_and_cross_origin_upgrades_are_refused() {
    let server = TestServer::start().await;
    refused_with(
        tokio_tungstenite::connect_async(ws_url(&server, "")).await,
        401,
    );
    refused_with(
        tokio_tungstenite::connect_async(ws_url(&server, "?token=ccs_nope")).await,
        401,
    );

    // A browser session cookie from another origin is refused; from this one it is accepted.
    let login = server.login_response(None, ADMIN_PASSWORD).await;
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let host = server.url.trim_start_matches("http://").to_owned();
    let request = from_browser(&server, &cookie, "https://evil.example");
    refused_with(tokio_tungstenite::connect_async(request).await, 403);

    let request = from_browser(&server, &cookie, &format!("http://{host}"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    next_of(&mut socket, "connected").await;
}

#[tokio::test]
async fn a_socket_ends_when_its_session_does() {
    let server = TestServer::start_with(|config| {
        config.live_session_recheck = Duration::from_millis(100);
    })
    .await;
    let login = server.login(None, ADMIN_PASSWORD).await;
    let session = login["token"].as_str().unwrap().to_owned();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_url(&server, &format!("?token={session}")))
            .await
            .unwrap();
    next_of(&mut socket, "connected").await;
    let logout = server
        .request(Method::POST, "/api/admin/logout")
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success());
    next_of(&mut socket, "session_ended").await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket stayed open after logout");
}
