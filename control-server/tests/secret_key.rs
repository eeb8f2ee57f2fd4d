//! The server key that seals subscription credentials: `SECRET_KEY`, or
//! `DATA_DIR/secret.key` made on the first start; a key that does not open
//! the stored credentials stops the start with a clear error.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use ccgate_quota::seal::SealKey;
use ccgate_server::ServerError;
use common::process::{free_port, server_binary, wait_healthy};
use common::{ADMIN_PASSWORD, TestServer, config, start_error};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz";
const KEY: &str = "8f14e45fceea167a5a36dedd4bea2543c9f0f895fb98ab9159f51fd0297e236d";

/// A user of subscription `id` with a proxy; that device's credential answer.
async fn credential_of_new_user(server: &TestServer, id: i64, name: &str) -> (StatusCode, Value) {
    let (status, body) = server
        .post_user(json!({ "name": name, "subscription_id": id }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let code = body["install_code"].as_str().unwrap();
    let (_, token, _) = server.register_proxy(code, &format!("{name}-box")).await;
    server.fetch_credential(&token).await
}

#[tokio::test]
async fn without_secret_key_a_key_file_is_made_owner_only_and_kept() {
    let server = TestServer::start().await;
    let key_file = server.data_dir().join("secret.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert!(SealKey::from_hex(&text).is_ok(), "64 hex characters");
    let id = server.create_subscription("Team Max", TOKEN).await;

    let (temp, data_dir) = server.stop().await;
    let server = TestServer::launch(config(&data_dir)).await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), text, "reused");
    let (status, body) = credential_of_new_user(&server, id, "ada").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], TOKEN);
    server.stop().await;
    drop(temp);
}

#[tokio::test]
async fn a_wrong_malformed_or_lost_key_stops_the_start_naming_secret_key() {
    let server = TestServer::start_with(|config| {
        config.secret_key = Some(SealKey::from_hex(KEY).unwrap());
    })
    .await;
    server.create_subscription("Team Max", TOKEN).await;
    let (temp, data_dir) = server.stop().await;
    assert!(
        !data_dir.join("secret.key").exists(),
        "no key file beside SECRET_KEY"
    );

    let mut wrong = config(&data_dir);
    wrong.secret_key = Some(SealKey::generate());
    let error = start_error(wrong).await;
    assert!(matches!(error, ServerError::SecretKey(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("SECRET_KEY") && message.contains("\"Team Max\""),
        "{message}"
    );

    // Without SECRET_KEY and without the file: no new key over sealed data.
    let error = start_error(config(&data_dir)).await.to_string();
    assert!(
        error.contains("secret.key is missing") && error.contains("SECRET_KEY"),
        "{error}"
    );
    assert!(!data_dir.join("secret.key").exists());

    std::fs::write(data_dir.join("secret.key"), "not a key\n").unwrap();
    let error = start_error(config(&data_dir)).await.to_string();
    assert!(
        error.contains("malformed") && error.contains("SECRET_KEY"),
        "{error}"
    );
    std::fs::write(data_dir.join("secret.key"), SealKey::generate().to_hex()).unwrap();
    let error = start_error(config(&data_dir)).await.to_string();
    assert!(error.contains("does not open"), "{error}");

    // The right key, from the file this time, opens it.
    std::fs::write(data_dir.join("secret.key"), KEY).unwrap();
    std::fs::set_permissions(
        data_dir.join("secret.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let server = TestServer::launch(config(&data_dir)).await;
    let (_, subscriptions) = server.admin_get("/api/admin/subscriptions").await;
    let id = subscriptions["subscriptions"][0]["id"].as_i64().unwrap();
    let (status, body) = credential_of_new_user(&server, id, "bo").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], TOKEN);
    server.stop().await;
    drop(temp);
}

#[tokio::test]
async fn secret_key_from_the_environment_seals_and_a_malformed_one_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = server_binary(temp.path(), port, KEY).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/api/admin/login"))
        .json(&json!({ "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let enrolled = http
        .post(format!("{base}/api/admin/subscriptions"))
        .bearer_auth(login["token"].as_str().unwrap())
        .json(&json!({ "name": "Team Max", "credential": TOKEN }))
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), StatusCode::CREATED);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    assert!(
        !temp.path().join("secret.key").exists(),
        "the key came from SECRET_KEY"
    );

    // The same key, given in-process, opens what the binary sealed.
    let mut again = config(temp.path());
    again.secret_key = Some(SealKey::from_hex(KEY).unwrap());
    let server = TestServer::launch(again).await;
    let (status, body) = credential_of_new_user(&server, 1, "cy").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["secret"], TOKEN);
    server.stop().await;

    // A malformed SECRET_KEY: exit code 1, a message naming it, no echo.
    let malformed = "0123456789abcdef-not-a-key";
    let output = server_binary(temp.path(), free_port(), malformed)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SECRET_KEY"), "{stderr}");
    assert!(!stderr.contains(malformed), "{stderr}");
}
