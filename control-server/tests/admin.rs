//! The admin API (`/api/admin/*`): authentication, roles, CSRF, users,
//! settings, reports, bad input, and the operational endpoints.

mod common;

use ccgate_server::client_addr::TrustedProxies;
use common::{ADMIN_PASSWORD, TestServer, expect_status, send};
use jiff::SignedDuration;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

async fn users(server: &TestServer) -> Vec<Value> {
    let (status, body) = server.admin_get("/api/admin/users").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["users"].as_array().unwrap().clone()
}

/// Asserts what `GET /api/admin/users` with `token` as the bearer answers.
async fn expect_users_status(server: &TestServer, token: &str, expected: StatusCode) {
    let request = server
        .request(Method::GET, "/api/admin/users")
        .bearer_auth(token);
    expect_status(request, expected).await;
}

/// Asserts what creating a user called `name` with `token` as the bearer answers.
async fn expect_create_user_status(
    server: &TestServer,
    token: &str,
    name: &str,
    expected: StatusCode,
) {
    let request = server
        .request(Method::POST, "/api/admin/users")
        .bearer_auth(token)
        .json(&json!({ "name": name }));
    expect_status(request, expected).await;
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_needs_csrf_for_changes() {
    let server = TestServer::start().await;
    let response = server.login_response(None, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http in tests");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["team"], "My team");
    assert_eq!(body["role"], "admin");
    let csrf = body["csrf_token"].as_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();

    // The browser's requests: the session cookie and, for changes, the CSRF header.
    let browser = |method: Method, path: &str, csrf: Option<&str>| {
        let request = server.request(method, path).header(COOKIE, &session);
        match csrf {
            Some(csrf) => request.header("x-csrf-token", csrf),
            None => request,
        }
    };

    // Reads work with the cookie alone.
    let (status, me) = send(browser(Method::GET, "/api/admin/me", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["csrf_token"], csrf);

    // A change without the CSRF header is refused and writes nothing.
    let create = json!({ "name": "Nobody" });
    let (status, body) = send(browser(Method::POST, "/api/admin/users", None).json(&create)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "csrf");
    assert!(users(&server).await.is_empty());
    let wrong = browser(Method::POST, "/api/admin/users", Some("wrong")).json(&create);
    assert_eq!(send(wrong).await.0, StatusCode::FORBIDDEN);
    let right = browser(Method::POST, "/api/admin/users", Some(csrf)).json(&create);
    assert_eq!(send(right).await.0, StatusCode::CREATED);

    // Logout ends the session.
    let logout = browser(Method::POST, "/api/admin/logout", Some(csrf));
    assert_eq!(send(logout).await.0, StatusCode::OK);
    let me = browser(Method::GET, "/api/admin/me", None);
    assert_eq!(send(me).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn auth_failures_are_clear_401s() {
    let server = TestServer::start().await;
    let (status, body) = send(server.request(Method::GET, "/api/admin/users")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("login required"));
    expect_users_status(&server, "ccs_wrong", StatusCode::UNAUTHORIZED).await;
    let response = server.login_response(None, "not the password").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_expire() {
    let server = TestServer::start().await;
    let (status, _) = server.admin_get("/api/admin/me").await;
    assert_eq!(status, StatusCode::OK);
    server.clock.advance(SignedDuration::from_hours(24 * 7 + 1));
    let (status, body) = server.admin_get("/api/admin/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "invalid_session");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let server = TestServer::start().await;
    for _ in 0..5 {
        let response = server.login_response(None, "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = server.login_response(None, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
}

/// A login with `password` that a proxy says came from `client`.
async fn login_forwarded_for(
    server: &TestServer,
    client: &str,
    password: &str,
) -> reqwest::StatusCode {
    server
        .request(reqwest::Method::POST, "/api/admin/login")
        .header("x-forwarded-for", client)
        .json(&serde_json::json!({ "password": password }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_failed_logins_count_per_forwarded_client() {
    // Without trusted proxies a forged header changes nothing: every guess
    // counts against the peer.
    let server = TestServer::start().await;
    for i in 0..5 {
        let client = format!("198.51.100.{i}");
        assert_eq!(
            login_forwarded_for(&server, &client, "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_forwarded_for(&server, "198.51.100.99", ADMIN_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Behind a trusted proxy (the tests' peer, loopback) one client's
    // guesses do not lock the others out.
    let proxied = TestServer::start_with(|config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.0/8, ::1").unwrap();
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            login_forwarded_for(&proxied, "198.51.100.7", "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_forwarded_for(&proxied, "198.51.100.7", ADMIN_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login_forwarded_for(&proxied, "198.51.100.8", ADMIN_PASSWORD).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn viewers_read_but_cannot_change_and_tokens_can_be_revoked() {
    let server = TestServer::start().await;
    let (status, body) = server
        .add_account("vera", "viewer-password", "viewer")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = server
        .add_account("vera", "viewer-password", "viewer")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let viewer = server.login(Some("vera"), "viewer-password").await;
    assert_eq!(viewer["role"], "viewer");
    let token = viewer["token"].as_str().unwrap();
    expect_users_status(&server, token, StatusCode::OK).await;
    expect_create_user_status(&server, token, "Mallory", StatusCode::FORBIDDEN).await;
    assert!(users(&server).await.is_empty());

    // A named API token for a script: shown once, works, then revoked.
    let (status, created) = server
        .admin_json(
            Method::POST,
            "/api/admin/tokens",
            Some(json!({ "name": "ci", "role": "admin" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    let (_, listed) = server.admin_get("/api/admin/tokens").await;
    assert!(
        listed["tokens"][0].get("token").is_none(),
        "never shown again"
    );
    expect_create_user_status(&server, &secret, "Scripted", StatusCode::CREATED).await;
    let token_path = format!("/api/admin/tokens/{}", created["id"].as_i64().unwrap());
    assert_eq!(
        server.admin_delete(&token_path).await,
        StatusCode::NO_CONTENT
    );
    expect_users_status(&server, &secret, StatusCode::UNAUTHORIZED).await;

    // Accounts can be deleted; their sessions end.
    let (_, accounts) = server.admin_get("/api/admin/accounts").await;
    let account_id = accounts["accounts"][0]["id"].as_i64().unwrap();
    let account_path = format!("/api/admin/accounts/{account_id}");
    assert_eq!(
        server.admin_delete(&account_path).await,
        StatusCode::NO_CONTENT
    );
    expect_users_status(&server, token, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn users_are_created_changed_and_deleted() {
    let server =
        TestServer::start_with(|c| c.public_url = Some("https://ccgate.example.com/".into())).await;
    let (status, created) = server
        .post_user(json!({ "name": "Mia Wong", "time_zone": "Europe/Berlin",
            "limits": [{ "type": "per_model", "model": "opus", "window": "daily", "value": 3 }] }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["user"]["id"].as_i64().unwrap();
    assert_eq!(created["user"]["slug"], "mia-wong");
    assert_eq!(created["user"]["effective_time_zone"], "Europe/Berlin");
    let code = created["install_code"].as_str().unwrap();
    assert_eq!(
        created["setup_command"],
        format!("curl -fsSL https://ccgate.example.com/install.sh | sudo sh -s -- --code {code}")
    );
    assert!(created["limits"][0]["id"].is_i64());

    // A second user with the same name gets a numbered slug; an explicit taken slug conflicts.
    let (_, second) = server.post_user(json!({ "name": "Mia Wong" })).await;
    assert_eq!(second["user"]["slug"], "mia-wong-2");
    let (status, _) = server
        .post_user(json!({ "name": "X", "slug": "mia-wong" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A bad rule is named, and nothing changes.
    let (status, body) = server
        .put_user(
            id,
            json!({ "limits": [
                { "type": "per_model", "model": "opus", "window": "daily", "value": 5 },
                { "type": "per_model", "model": "opus", "window": "hourly", "value": 5 } ] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("limits[1]"),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("hourly"), "{body}");
    assert_eq!(server.user(id).await["limits"][0]["value"], 3);
    let (status, _) = server
        .put_user(id, json!({ "time_zone": "Mars/Base" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = server.put_user(id, json!({ "status": "frozen" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, updated) = server
        .put_user(
            id,
            json!({ "name": "Mia W.", "status": "paused", "time_zone": null,
                "limits": [{ "type": "credits", "window": "weekly", "value": 50 }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let user = &updated["user"];
    assert_eq!(user["name"], "Mia W.");
    assert_eq!(user["status"], "paused");
    assert_eq!(user["time_zone"], Value::Null);
    assert_eq!(user["effective_time_zone"], "UTC");
    assert_eq!(user["credit_budget"], 50);
    assert_eq!(user["limits"].as_array().unwrap().len(), 1);
    assert!(user["report"]["limits"].is_array());

    // Preview: what other limits would mean now.
    let (status, preview) = server
        .admin_json(
            Method::POST,
            &format!("/api/admin/users/{id}/preview"),
            Some(json!({ "limits": [{ "type": "per_model", "model": "haiku", "window": "daily", "value": 0 }] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["decisions"]["haiku"]["allowed"], false);
    assert!(preview["decisions"]["haiku"]["message"].is_string());
    assert!(preview["report"]["limits"].is_array());

    assert_eq!(
        server.admin_delete(&format!("/api/admin/users/{id}")).await,
        StatusCode::OK
    );
    let (status, _) = server.admin_get(&format!("/api/admin/users/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(users(&server).await.len(), 1);
    let (_, audit) = server.admin_get("/api/admin/audit?limit=50").await;
    let kinds: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "user_created",
        "user_updated",
        "user_status_change",
        "user_deleted",
        "login",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing in {kinds:?}");
    }
}

#[tokio::test]
async fn bad_bodies_are_clear_4xx_and_write_nothing() {
    let server = TestServer::start_with(|c| c.max_body_bytes = 4096).await;
    let cases: Vec<(reqwest::RequestBuilder, StatusCode)> = vec![
        (
            server
                .admin(Method::POST, "/api/admin/users")
                .header(CONTENT_TYPE, "application/json")
                .body("{\"name\": "),
            StatusCode::BAD_REQUEST,
        ),
        (
            server
                .admin(Method::POST, "/api/admin/users")
                .header(CONTENT_TYPE, "text/plain")
                .body("{\"name\":\"A\"}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            server
                .admin(Method::POST, "/api/admin/users")
                .json(&json!({ "name": "x".repeat(5000) })),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            server
                .admin(Method::POST, "/api/admin/users")
                .json(&json!({ "slug": "no-name" })),
            StatusCode::BAD_REQUEST,
        ),
        (
            server
                .admin(Method::POST, "/api/admin/users")
                .json(&json!({ "name": "   " })),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = send(request).await;
        assert_eq!(status, expected, "{body}");
        assert!(body["error"].is_string(), "JSON error body: {body}");
    }
    assert!(users(&server).await.is_empty(), "nothing written");
    let (status, body) = send(server.request(Method::GET, "/api/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn settings_are_validated_and_the_password_can_change() {
    let mut server = TestServer::start().await;
    let (status, body) = server.admin_get("/api/admin/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["settings"]["time_zone"], "UTC");
    assert_eq!(
        body["settings"]["credit_weights"],
        json!({ "opus": 10, "sonnet": 3, "haiku": 1, "other": 3 })
    );
    assert_eq!(body["settings"]["unidentified_clients"], "allow");
    let (status, _) = server
        .put_settings(json!({ "time_zone": "Nowhere/Land" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = server
        .put_settings(json!({ "name": "Platform", "time_zone": "America/New_York", "unidentified_clients": "deny" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["team_name"], "Platform");
    assert_eq!(body["settings"]["time_zone"], "America/New_York");
    let (status, _) = server
        .put_settings(json!({ "admin_password": "a new admin password",
                              "current_password": ADMIN_PASSWORD }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = server.login_response(None, ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let fresh = server.login(None, "a new admin password").await;
    server.admin_token = fresh["token"].as_str().unwrap().to_owned();
    assert_eq!(fresh["team"], "Platform");
}

#[tokio::test]
async fn reports_page_and_group() {
    let server = TestServer::start().await;
    let (user_id, token) = server.user_with_proxy("Ned", json!([])).await;
    let now = jiff::Timestamp::now().to_string();
    let events: Vec<Value> = (0..5)
        .map(|i| {
            common::request_event(
                &format!("00000000-0000-4000-8000-00000000000{i}"),
                &now,
                "claude-haiku-4-5",
                &format!("t:{i}"),
                true,
                5,
            )
        })
        .collect();
    let (status, _) = server
        .agent(&token, "/events", json!({ "events": events }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = server
        .admin_get(&format!("/api/admin/events?user_id={user_id}&limit=2"))
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let cursor = page["next_before"].as_str().unwrap().to_owned();
    let (_, next) = server
        .admin_get(&format!(
            "/api/admin/events?user_id={user_id}&limit=10&before={cursor}"
        ))
        .await;
    assert_eq!(next["events"].as_array().unwrap().len(), 3);
    assert_eq!(next["next_before"], Value::Null);
    let (status, _) = server.admin_get("/api/admin/events?before=garbage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The type filter takes the stored types only.
    let (_, requests) = server
        .admin_get(&format!("/api/admin/events?user_id={user_id}&type=request"))
        .await;
    assert_eq!(requests["events"].as_array().unwrap().len(), 5);
    assert_eq!(requests["events"][0]["type"], "request");
    let (_, blocked) = server.admin_get("/api/admin/events?type=blocked").await;
    assert_eq!(blocked["events"].as_array().unwrap().len(), 0);
    let (status, _) = server.admin_get("/api/admin/events?type=requests").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, monthly) = server.admin_get("/api/admin/usage?group=month").await;
    assert_eq!(monthly["monthly"][0]["count"], 5, "{monthly}");
    assert_eq!(monthly["monthly"][0]["model"], "haiku");
    let (status, _) = server.admin_get("/api/admin/usage?days=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, listed) = server.admin_get("/api/admin/users").await;
    assert!(listed["users"][0]["last_active_at"].is_string());
    assert_eq!(listed["users"][0]["usage"]["haiku"], 5);
}

#[tokio::test]
async fn operational_endpoints_and_no_cors() {
    let server = TestServer::start().await;
    let (_, token) = server.user_with_proxy("Ops", json!([])).await;
    server.check(&token, "t:1", "claude-opus-4-5").await;
    let (status, health) = send(server.request(Method::GET, "/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health, json!({ "status": "ok" }));
    let text = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "ccgate_http_requests_total",
        "ccgate_checks_total",
        "ccgate_check_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    assert!(text.contains("result=\"allowed\""));
    let from_elsewhere =
        |request: RequestBuilder| request.header("origin", "https://evil.example").send();
    let preflight = server
        .request(Method::OPTIONS, "/api/admin/users")
        .header("access-control-request-method", "POST");
    let response = from_elsewhere(preflight).await.unwrap();
    assert!(
        response
            .headers()
            .keys()
            .all(|h| !h.as_str().starts_with("access-control"))
    );
    let response = from_elsewhere(server.admin(Method::GET, "/api/admin/users"))
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // The dashboard (tests/dashboard_*.rs) sends a browser without a session to its login page.
    let response = server
        .request(Method::GET, "/dashboard")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), "/dashboard/login");
}
