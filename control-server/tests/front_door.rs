//! Issue 9, the server's front door: `/metrics` labels from a fixed set,
//! logins rate-limited before any password is hashed, and failed logins
//! and registrations in the audit log.

mod common;

use common::{ADMIN_PASSWORD, TestServer, read, send};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn metrics_text(server: &TestServer) -> String {
    server
        .client
        .get(server.path("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn invented_methods_and_paths_do_not_grow_the_metrics() {
    let server = TestServer::start().await;
    let before = metrics_text(&server).await.len();
    let workers = (0..8).map(|worker| {
        let server = &server;
        async move {
            for i in 0..2_500 {
                let method = Method::from_bytes(format!("M{worker}X{i}").as_bytes()).unwrap();
                let path = format!("/nothing/{worker}/{i}");
                let response = server.request(method, &path).send().await.unwrap();
                assert!(response.status().is_client_error());
            }
        }
    });
    futures_util::future::join_all(workers).await;
    // Known methods on real routes still get their own series.
    let (status, _) = send(server.request(Method::GET, "/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics_text(&server).await;
    assert!(
        text.len() < before + 4_000,
        "20,000 requests with invented methods grew /metrics from {before} to {} bytes",
        text.len()
    );
    assert!(text.contains("method=\"OTHER\""), "{text}");
    assert!(text.contains("route=\"unmatched\""), "{text}");
    assert!(text.contains("method=\"GET\",route=\"/healthz\""), "{text}");
}

async fn login(server: &TestServer, password: &str) -> StatusCode {
    server.login_response(None, password).await.status()
}

#[tokio::test]
async fn concurrent_wrong_passwords_are_refused_before_they_are_verified() {
    let server = TestServer::start().await;
    let attempts = (0..60).map(|i| {
        let server = &server;
        async move { login(server, &format!("wrong password {i}")).await }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let refused = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let verified = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(refused + verified, 60, "{answers:?}");
    // LOGIN_MAX_FAILURES is 5: no more than that may reach the hash.
    assert!(verified <= 5, "{verified} wrong passwords were verified");
    assert!(refused >= 55, "only {refused} of 60 were refused");
    // The right password is refused too while the address is locked out.
    assert_eq!(
        login(&server, ADMIN_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn failed_logins_and_registrations_are_in_the_audit_log() {
    let server = TestServer::start().await;
    let secret = "not the password, but close";
    assert_eq!(login(&server, secret).await, StatusCode::UNAUTHORIZED);
    let response = server
        .login_response(Some("mallory"), "another guess")
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .register_proxy_raw("CCG-AAAA-BBBB-CCCC-DDDD", "laptop")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        server
            .request(Method::POST, "/api/v1/register")
            .json(&json!({ "code": "CCG-AAAA-BBBB-CCCC-EEEE" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, audit) = server.admin_get("/api/admin/audit?kind=login_failed").await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert!(
        entries.iter().all(|e| e["detail"]["client"] == "127.0.0.1"),
        "{audit}"
    );
    assert!(
        entries.iter().any(|e| e["detail"]["username"] == "mallory"),
        "{audit}"
    );
    let text = audit.to_string();
    assert!(!text.contains(secret) && !text.contains("another guess"));

    let (_, audit) = server
        .admin_get("/api/admin/audit?kind=register_failed")
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    let apis: Vec<&str> = entries
        .iter()
        .map(|e| e["detail"]["api"].as_str().unwrap())
        .collect();
    assert!(
        apis.contains(&"agent") && apis.contains(&"hook"),
        "{apis:?}"
    );
    assert!(entries.iter().all(|e| e["detail"]["client"] == "127.0.0.1"));
    assert!(entries.iter().all(|e| e["detail"]["reason"] == "unknown"));
    assert!(
        !audit.to_string().contains("DDDD"),
        "the code is not logged"
    );
}

#[tokio::test]
async fn a_login_after_failures_within_the_limit_still_works() {
    let server = TestServer::start().await;
    for _ in 0..4 {
        assert_eq!(login(&server, "nope nope").await, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = read(server.login_response(None, ADMIN_PASSWORD).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("token").is_some_and(Value::is_string));
}
