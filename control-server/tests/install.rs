//! The install script and the agent binaries it downloads.

mod common;

use ccgate_server::agent_bundle::{sha256_file, this_platform};
use ccgate_server::error::ServerError;
use common::{TestServer, config, start_error};
use reqwest::{Method, StatusCode};

/// A directory standing for a build tree: `ccgate` and `ccgate-proxy`.
fn build_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ccgate"), b"the cli").unwrap();
    std::fs::write(dir.path().join("ccgate-proxy"), b"the daemon").unwrap();
    dir
}

async fn get(server: &TestServer, path: &str) -> (StatusCode, String) {
    let response = server.request(Method::GET, path).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_build_tree_serves_its_binaries_with_their_checksums() {
    let tree = build_tree();
    let server = TestServer::start_with(|config| {
        config.binaries_dir = tree.path().to_owned();
        config.agent_dir = tree.path().join("agent");
        config.public_url = Some("https://ccgate.example.com".into());
    })
    .await;
    let (status, script) = get(&server, "/install.sh").await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.starts_with("#!/bin/sh"), "{script}");
    assert!(script.contains("SERVER='https://ccgate.example.com'"));
    assert!(
        script.contains("beside the server binary"),
        "the script says where the binaries come from"
    );
    assert!(!script.contains("@SERVER_"), "every placeholder is filled");

    let (status, sums) = get(&server, "/downloads/SHA256SUMS").await;
    assert_eq!(status, StatusCode::OK);
    let name = format!("ccgate-proxy-{}", this_platform());
    let expected = sha256_file(&tree.path().join("ccgate-proxy")).unwrap();
    assert!(sums.contains(&format!("{expected}  {name}\n")), "{sums}");
    let (status, body) = get(&server, &format!("/downloads/{name}")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "the daemon"));
    // Only what the list names: no other file, no path.
    for path in [
        "/downloads/ccgate-proxy",
        "/downloads/..%2Fccgate",
        "/downloads/agent",
    ] {
        let (status, _) = get(&server, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn without_binaries_the_downloads_say_so() {
    let empty = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(|config| {
        config.binaries_dir = empty.path().to_owned();
        config.agent_dir = empty.path().join("agent");
    })
    .await;
    let response = server
        .request(Method::GET, "/downloads/SHA256SUMS")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "no_agent_bundle", "{body}");
    let (_, script) = get(&server, "/install.sh").await;
    assert!(script.contains("no agent binaries"), "{script}");
}

#[tokio::test]
async fn a_release_bundle_that_does_not_check_out_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let bundle = tempfile::tempdir().unwrap();
    let file = format!("ccgate-{}", this_platform());
    std::fs::write(bundle.path().join(&file), b"cli").unwrap();
    std::fs::write(
        bundle.path().join("SHA256SUMS"),
        format!("{}  {file}\n", "0".repeat(64)),
    )
    .unwrap();
    let mut config = config(data.path());
    config.agent_dir = bundle.path().to_owned();
    let error = start_error(config).await;
    assert!(matches!(error, ServerError::AgentBundle(_)), "{error}");
    assert!(error.to_string().contains("does not match"), "{error}");
}

#[tokio::test]
async fn devices_are_told_the_release_and_whether_to_install_it_and_shown_behind_or_current() {
    let tree = build_tree();
    let server = TestServer::start_with(|config| {
        config.binaries_dir = tree.path().to_owned();
        config.agent_dir = tree.path().join("agent");
    })
    .await;
    let (user_id, token) = server.user_with_proxy("Rae", serde_json::json!([])).await;
    let (status, sync) = server.agent(&token, "/sync", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let name = format!("ccgate-proxy-{}", this_platform());
    let build = sha256_file(&tree.path().join("ccgate-proxy")).unwrap();
    assert_eq!(
        sync["agent_release"]["files"][&name],
        build.as_str(),
        "{sync}"
    );
    assert_eq!(sync["agent_release"]["signed"], false);
    assert_eq!(sync["policy"]["auto_update"], true, "on unless turned off");

    // A device that says what it runs is current or behind.
    let (os, arch) = this_platform()
        .split_once('-')
        .map(|(o, a)| (o.to_owned(), a.to_owned()))
        .unwrap();
    let report = |agent_build: &str| {
        serde_json::json!({"device": {"hostname": "rae-laptop", "os": os, "arch": arch,
            "agent_version": "0.1.0", "agent_build": agent_build}})
    };
    server.agent(&token, "/sync", report(&"0".repeat(64))).await;
    assert_eq!(server.user(user_id).await["devices"][0]["update"], "behind");
    server.agent(&token, "/sync", report(&build)).await;
    assert_eq!(
        server.user(user_id).await["devices"][0]["update"],
        "current"
    );

    let (status, _) = server
        .put_settings(serde_json::json!({"auto_update": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, sync) = server.agent(&token, "/sync", serde_json::json!({})).await;
    assert_eq!(sync["policy"]["auto_update"], false);
}
