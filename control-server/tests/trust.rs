//! Issue 9: plain http is never silent, admin accounts guard their
//! passwords and tokens, a browser login keeps its session token from page
//! scripts, one device can be revoked, and install codes know their kind.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ADMIN_PASSWORD, TestServer, config, read, send};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

// --- Plain http -------------------------------------------------------------

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the server logs while it starts on `bind` with `public_url`.
async fn start_log(bind: &str, public_url: Option<&str>) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let temp = tempfile::tempdir().unwrap();
    let mut config = config(temp.path());
    config.public_url = public_url.map(str::to_owned);
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let server = TestServer::launch_on(config, listener).await;
    server.stop().await;
    String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
}

#[tokio::test]
async fn binding_off_loopback_without_https_is_warned_about_at_start() {
    let log = start_log("0.0.0.0:0", None).await;
    assert!(log.contains("WARN") && log.contains("plain http"), "{log}");
    let log = start_log("0.0.0.0:0", Some("https://ccgate.example.com")).await;
    assert!(!log.contains("plain http"), "{log}");
    let log = start_log("127.0.0.1:0", None).await;
    assert!(!log.contains("plain http"), "{log}");
}

async fn setup_answer(public_url: Option<&str>, host: Option<&str>) -> Value {
    let server = TestServer::start_with(|c| c.public_url = public_url.map(str::to_owned)).await;
    let mut request = server
        .admin(Method::POST, "/api/admin/users")
        .json(&json!({ "name": "Pat" }));
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let (status, body) = send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn the_setup_command_says_insecure_for_plain_http_to_another_machine() {
    let remote = setup_answer(Some("http://ccgate.example.com:3000"), None).await;
    let command = remote["setup_command"].as_str().unwrap();
    assert!(
        command.starts_with("curl -fsSL http://ccgate.example.com:3000/install.sh |")
            && command.ends_with(" --insecure"),
        "{command}"
    );
    assert!(
        remote["setup_warning"]
            .as_str()
            .unwrap()
            .contains("plain http"),
        "{remote}"
    );
    // No PUBLIC_URL: the admin's Host, a LAN address here.
    let lan = setup_answer(None, Some("10.1.2.3:3000")).await;
    let command = lan["setup_command"].as_str().unwrap();
    assert!(
        command.starts_with("curl -fsSL http://10.1.2.3:3000/install.sh |")
            && command.ends_with(" --insecure"),
        "{command}"
    );
    for fine in [
        setup_answer(Some("https://ccgate.example.com"), None).await,
        setup_answer(Some("http://127.0.0.1:3000"), None).await,
        setup_answer(None, Some("localhost:3000")).await,
    ] {
        let command = fine["setup_command"].as_str().unwrap();
        assert!(!command.contains("--insecure"), "{command}");
        assert_eq!(fine["setup_warning"], Value::Null);
    }
}

// --- Admin accounts ---------------------------------------------------------

#[tokio::test]
async fn changing_the_admin_password_needs_the_current_one() {
    let server = TestServer::start().await;
    let change = |body: Value| server.put_settings(body);
    let (status, body) = change(json!({ "admin_password": "a new long password" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "current_password");
    let (status, body) = change(json!({ "admin_password": "a new long password",
        "current_password": "not it at all" }))
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Still the old password.
    assert_eq!(
        server.login_response(None, ADMIN_PASSWORD).await.status(),
        StatusCode::OK
    );
    let (status, body) = change(json!({ "admin_password": "a new long password",
        "current_password": ADMIN_PASSWORD }))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        server
            .login_response(None, "a new long password")
            .await
            .status(),
        StatusCode::OK
    );
    // Other settings need no password.
    let (status, _) = change(json!({ "team_name": "Night Shift" })).await;
    assert_eq!(status, StatusCode::OK);
}

async fn token_works(server: &TestServer, token: &str) -> bool {
    let (status, _) = send(
        server
            .request(Method::GET, "/api/admin/me")
            .bearer_auth(token),
    )
    .await;
    status == StatusCode::OK
}

async fn make_token(server: &TestServer, bearer: &str, name: &str) -> String {
    let (status, body) = send(
        server
            .request(Method::POST, "/api/admin/tokens")
            .bearer_auth(bearer)
            .json(&json!({ "name": name, "role": "admin" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn api_tokens_end_with_the_account_that_made_them() {
    let server = TestServer::start().await;
    let (status, account) = server.add_account("ops", "ops password 1", "admin").await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
    let ops_id = account["account"]["id"].as_i64().unwrap();
    let ops = server.login(Some("ops"), "ops password 1").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_ops = make_token(&server, &ops, "ops script").await;
    // A token made with that token belongs to the same account.
    let by_ops_token = make_token(&server, &by_ops, "ops script's helper").await;
    let by_admin = make_token(&server, &server.admin_token, "admin script").await;
    for token in [&by_ops, &by_ops_token, &by_admin] {
        assert!(token_works(&server, token).await);
    }
    assert_eq!(
        server
            .admin_delete(&format!("/api/admin/accounts/{ops_id}"))
            .await,
        StatusCode::NO_CONTENT
    );
    assert!(!token_works(&server, &by_ops).await, "revoked with ops");
    assert!(
        !token_works(&server, &by_ops_token).await,
        "revoked with ops"
    );
    assert!(
        token_works(&server, &by_admin).await,
        "the admin's token stays"
    );
    let (_, tokens) = server.admin_get("/api/admin/tokens").await;
    let revoked: Vec<&str> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["revoked_at"].is_null())
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(revoked, ["ops script", "ops script's helper"]);
}

#[tokio::test]
async fn a_browser_login_does_not_hand_the_session_token_to_page_scripts() {
    let server = TestServer::start().await;
    let login = |headers: &[(&str, &str)]| {
        let mut request = server
            .request(Method::POST, "/api/admin/login")
            .json(&json!({ "password": ADMIN_PASSWORD }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for browser in [
        vec![("origin", server.url.as_str())],
        vec![
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
        ],
    ] {
        let response = login(&browser).await.unwrap();
        assert!(
            response.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .contains("HttpOnly")
        );
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("token").is_none(), "{body}");
        assert!(body["csrf_token"].is_string());
    }
    // A script (no browser headers) gets the token, as with the peer.
    let (status, body) = read(login(&[]).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["token"].as_str().unwrap().starts_with("ccs_"),
        "{body}"
    );
}

// --- Devices and install codes ----------------------------------------------

#[tokio::test]
async fn revoking_a_device_stops_its_token_at_once_and_leaves_the_others() {
    let server = TestServer::start().await;
    let (user_id, code) = server.create_user("Rae", json!([])).await;
    let (device_id, token, _) = server.register_proxy(&code, "rae-laptop").await;
    let (_, second_code) = server
        .admin_json(
            Method::POST,
            &format!("/api/admin/users/{user_id}/install-code"),
            None,
        )
        .await;
    let (_, other_token, _) = server
        .register_proxy(second_code["install_code"].as_str().unwrap(), "rae-desktop")
        .await;
    // Its live stream is open when the device is revoked.
    let stream = server
        .request(Method::GET, "/api/agent/v1/stream")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    let (status, body) = server
        .admin_json(
            Method::DELETE,
            &format!("/api/admin/devices/{device_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], true);
    let (status, body) = server.agent(&token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "invalid_device_token");
    let (status, _) = server.agent(&other_token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::OK, "the other device keeps working");
    // The stream ends.
    tokio::time::timeout(Duration::from_secs(10), stream.bytes())
        .await
        .expect("the revoked device's stream ends")
        .ok();
    let user = server.user(user_id).await;
    let hosts: Vec<&str> = user["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["rae-desktop"]);
    let (_, audit) = server
        .admin_get(&format!(
            "/api/admin/audit?kind=device_revoked&user_id={user_id}"
        ))
        .await;
    assert_eq!(audit["entries"][0]["device_id"], device_id, "{audit}");
    assert_eq!(audit["entries"][0]["detail"]["hostname"], "rae-laptop");
    // Again: there is no such device any more.
    let status = server
        .admin_delete(&format!("/api/admin/devices/{device_id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Still revoked after a restart.
    let (temp, dir) = server.stop().await;
    let server = TestServer::launch(config(&dir)).await;
    let (status, _) = server.agent(&token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server.agent(&other_token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    drop(temp);
}

#[tokio::test]
async fn viewers_cannot_revoke_devices() {
    let server = TestServer::start().await;
    let (_, code) = server.create_user("Sol", json!([])).await;
    let (device_id, token, _) = server.register_proxy(&code, "sol-laptop").await;
    server.add_account("vic", "viewer password", "viewer").await;
    let viewer = server.login(Some("vic"), "viewer password").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = send(
        server
            .request(Method::DELETE, &format!("/api/admin/devices/{device_id}"))
            .bearer_auth(&viewer),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        server.agent(&token, "/sync", json!({})).await.0,
        StatusCode::OK
    );
}

async fn hook_register(server: &TestServer, code: &str) -> (StatusCode, Value) {
    send(
        server
            .request(Method::POST, "/api/v1/register")
            .json(&json!({ "code": code })),
    )
    .await
}

#[tokio::test]
async fn install_codes_know_whether_they_are_for_setup_or_a_hook_machine() {
    let server = TestServer::start().await;
    let (user_id, setup_code) = server.create_user("Tam", json!([])).await;
    // A setup code does not make a hook device (whose counts its client controls).
    let (status, body) = hook_register(&server, &setup_code).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, hook) = server
        .admin_json(
            Method::POST,
            &format!("/api/admin/users/{user_id}/hook-code"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    assert_eq!(hook["kind"], "hook");
    let hook_code = hook["install_code"].as_str().unwrap();
    assert!(
        hook["register_command"]
            .as_str()
            .unwrap()
            .contains("/api/v1/register"),
        "{hook}"
    );
    // A hook code does not set up ccgate.
    let (status, body) = server.register_proxy_raw(hook_code, "tam-laptop").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "install_code_wrong_kind");
    // Neither refusal used the codes up.
    let (status, body) = hook_register(&server, hook_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["auth_token"].is_string());
    server.register_proxy(&setup_code, "tam-laptop").await;
    let (_, audit) = server
        .admin_get("/api/admin/audit?kind=register_failed")
        .await;
    let reasons: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["wrong_kind", "wrong_kind"]);
    let (_, created) = server
        .admin_get("/api/admin/audit?kind=install_code_created")
        .await;
    assert_eq!(created["entries"][0]["detail"]["kind"], "hook", "{created}");
}
