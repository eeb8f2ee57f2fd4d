//! `POST /api/agent/v1/credential`: the team credential goes only to an
//! active team-mode user's device, only over a private transport.

mod common;

use ccgate_quota::wire::CredentialResponse;
use common::{TestServer, send};
use reqwest::header::CACHE_CONTROL;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz";
const ROTATED: &str = "sk-ant-oat01-Hh3jKl9Pq2Rs8Tu4Vw6Xy0Za1Bc7De5Fg-Mn2oP4qR-abcd";

/// A user in team-credential mode with one proxy: (subscription, user, device token).
async fn team_user(server: &TestServer) -> (i64, i64, String) {
    let subscription = server.create_subscription("Team Max", TOKEN).await;
    let (user_id, token) = server.user_with_proxy("Ada", json!([])).await;
    let (status, body) = server
        .put_user(user_id, json!({ "subscription_id": subscription }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (subscription, user_id, token)
}

fn expect_refusal(answer: (StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(!body.to_string().contains(&TOKEN[..24]), "{body}");
}

#[tokio::test]
async fn a_team_mode_device_receives_its_credential_uncached_and_audited() {
    let server = TestServer::start().await;
    let (subscription, user_id, token) = team_user(&server).await;
    let response = server
        .request(Method::POST, "/api/agent/v1/credential")
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let answer: CredentialResponse = response.json().await.unwrap();
    assert_eq!(answer.subscription_id, subscription);
    assert_eq!(answer.kind, ccgate_quota::CredentialKind::OauthToken);
    assert_eq!(answer.version, 1);
    assert_eq!(answer.secret, TOKEN);
    // The version matches the one the policy names.
    assert_eq!(server.policy(&token).await["credential"]["version"], 1);

    let (_, audit) = server
        .admin_get(&format!(
            "/api/admin/audit?kind=credential_sent&user_id={user_id}"
        ))
        .await;
    let entry = &audit["entries"][0];
    assert!(
        entry["actor"].as_str().unwrap().starts_with("device:"),
        "{entry}"
    );
    assert!(entry["device_id"].is_i64(), "{entry}");
    assert_eq!(entry["detail"]["subscription_id"], subscription);
    assert_eq!(entry["detail"]["credential_version"], 1);
    assert!(!audit.to_string().contains(&TOKEN[..24]), "{audit}");

    // No body at all is fine too; after a rotation the new secret and version.
    let (status, _) = server
        .put_subscription(subscription, json!({ "credential": ROTATED }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let request = server
        .request(Method::POST, "/api/agent/v1/credential")
        .bearer_auth(&token);
    let (status, body) = send(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], ROTATED);
    assert_eq!(body["version"], 2);
}

#[tokio::test]
async fn personal_paused_killed_and_unknown_devices_get_nothing() {
    let server = TestServer::start().await;
    let (subscription, user_id, token) = team_user(&server).await;
    let (_, personal) = server.user_with_proxy("Bob", json!([])).await;
    expect_refusal(
        server.fetch_credential(&personal).await,
        StatusCode::NOT_FOUND,
        "personal_login",
    );
    expect_refusal(
        server.fetch_credential("not-a-device-token").await,
        StatusCode::UNAUTHORIZED,
        "invalid_device_token",
    );
    let (status, _) = send(server.request(Method::POST, "/api/agent/v1/credential")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    server.set_status(user_id, "paused").await;
    expect_refusal(
        server.fetch_credential(&token).await,
        StatusCode::FORBIDDEN,
        "paused",
    );
    // A kill issues a new device token; the old one still authenticates
    // until the new one is used, and gets nothing either.
    server.set_status(user_id, "killed").await;
    expect_refusal(
        server.fetch_credential(&token).await,
        StatusCode::FORBIDDEN,
        "killed",
    );
    server.set_status(user_id, "active").await;
    assert_eq!(server.fetch_credential(&token).await.0, StatusCode::OK);

    // A deleted subscription leaves the person on their own login.
    server
        .admin_delete(&format!("/api/admin/subscriptions/{subscription}"))
        .await;
    expect_refusal(
        server.fetch_credential(&token).await,
        StatusCode::NOT_FOUND,
        "personal_login",
    );
    let (_, audit) = server
        .admin_get("/api/admin/audit?kind=credential_sent")
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "one sent");
}

#[tokio::test]
async fn plain_http_to_a_remote_device_is_refused() {
    // Every test peer is on loopback: this switch makes it count as remote.
    let server = TestServer::start_with(|config| config.loopback_is_local = false).await;
    let (_, _, token) = team_user(&server).await;
    expect_refusal(
        server.fetch_credential(&token).await,
        StatusCode::FORBIDDEN,
        "insecure_transport",
    );
    let (_, audit) = server
        .admin_get("/api/admin/audit?kind=credential_sent")
        .await;
    assert_eq!(audit["entries"], json!([]));

    // Behind an https PUBLIC_URL (TLS at a reverse proxy) it is sent.
    let server = TestServer::start_with(|config| {
        config.loopback_is_local = false;
        config.public_url = Some("https://ccgate.example.com".to_owned());
    })
    .await;
    let (_, _, token) = team_user(&server).await;
    let (status, body) = server.fetch_credential(&token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], TOKEN);

    // And on loopback over plain http, as the real server treats it.
    let server = TestServer::start().await;
    let (_, _, token) = team_user(&server).await;
    assert_eq!(server.fetch_credential(&token).await.0, StatusCode::OK);
}
