//! Two replicas of the server on one PostgreSQL database: what is changed
//! through one reaches the other's dashboards, devices and decisions.

mod common;

use std::time::Duration;

use ccgate_quota::seal::SealKey;
use ccgate_server::config::Database;
use common::postgres::Postgres;
use common::{TestServer, eventually, next_of};
use reqwest::StatusCode;
use serde_json::json;

const KEY: &str = "8f14e45fceea167a5a36dedd4bea2543c9f0f895fb98ab9159f51fd0297e236d";
const WAIT: Duration = Duration::from_secs(10);

/// A replica on database `url` with its own data directory and the shared key.
async fn replica(url: &str, dir: &std::path::Path) -> TestServer {
    let mut config = common::config(dir);
    config.database = Database::postgres(url);
    config.secret_key = Some(SealKey::from_hex(KEY).unwrap());
    TestServer::launch(config).await
}

#[tokio::test]
async fn a_change_through_one_replica_reaches_the_other() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("replicas").await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(&url, dir_a.path()).await;
    let b = replica(&url, dir_b.path()).await;
    let ws = format!(
        "{}/ws?token={}",
        b.url.replace("http://", "ws://"),
        b.admin_token
    );
    let (mut dashboard_b, _) = tokio_tungstenite::connect_async(ws).await.unwrap();

    // A person made through A: B's dashboard hears of it, B knows them.
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 5 }]);
    let (user_id, code) = a.create_user("Ann", limits).await;
    let created = next_of(&mut dashboard_b, "user_created").await;
    assert_eq!(created["userId"], user_id);
    let on_b = eventually(WAIT, || async {
        let (status, body) = b.admin_get(&format!("/api/admin/users/{user_id}")).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(on_b["user"]["name"], "Ann");

    // The code A made registers a machine through B; checks pass there.
    let (device_id, token, _) = b.register_proxy(&code, "ann-laptop").await;
    assert!(b.allowed(&token, "t:1", "claude-opus-4-5").await);

    // New limits through A hold on B: the one opus prompt is used.
    let zero = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 1 }]);
    let (status, body) = a.put_user(user_id, json!({ "limits": zero })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A new turn each try: a repeated turn keeps its first answer.
    let turns = std::sync::atomic::AtomicU32::new(2);
    eventually(WAIT, || async {
        let turn = format!(
            "t:{}",
            turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        (!b.allowed(&token, &turn, "claude-opus-4-5").await).then_some(())
    })
    .await;

    // Team settings changed through A reach B.
    let (status, body) = a.put_settings(json!({ "team_name": "Replicated" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually(WAIT, || async {
        let (_, settings) = b.admin_get("/api/admin/settings").await;
        (settings["settings"]["team_name"] == "Replicated").then_some(())
    })
    .await;

    // A device revoked through A stops working on B.
    let status = a
        .admin_delete(&format!("/api/admin/devices/{device_id}"))
        .await;
    assert!(status.is_success(), "{status}");
    eventually(WAIT, || async {
        let (status, _) = b.agent(&token, "/sync", json!({})).await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    a.stop().await;
    b.stop().await;
}

/// The last prompt goes once whatever replica each check reaches: 50
/// checks at once, half through each replica, one prompt left.
#[tokio::test]
async fn fifty_checks_over_two_replicas_give_the_last_prompt_once() {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("last_prompt").await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = replica(&url, dir_a.path()).await;
    let b = replica(&url, dir_b.path()).await;
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 1 }]);
    let (_, code) = a.create_user("Bo", limits).await;
    let (_, token, _) = a.register_proxy(&code, "bo-laptop").await;
    // B knows the machine once A's registration reached it.
    eventually(WAIT, || async {
        let (status, _) = b.agent(&token, "/sync", json!({})).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;

    let checks = (0..50).map(|i| {
        let (server, token) = (if i % 2 == 0 { &a } else { &b }, &token);
        async move {
            server
                .allowed(token, &format!("turn:{i}"), "claude-opus-4-5")
                .await
        }
    });
    let answers = futures_util::future::join_all(checks).await;
    let allowed = answers.iter().filter(|&&allowed| allowed).count();
    assert_eq!(allowed, 1, "the last prompt was given {allowed} times");

    a.stop().await;
    b.stop().await;
}
