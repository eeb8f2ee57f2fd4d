//! The kill switch on an installed machine: the daemon blocks at once and
//! logs the OS user out of Claude Code (Linux: the credentials file; macOS:
//! the keychain item, through a fake `security`); the rotated device token
//! is not taken for tampering; reinstating lets the person back in.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ccgate_proxy::config::{ProxyConfig, UpstreamOverrides};
use ccgate_proxy::daemon::{self, DaemonOptions};
use ccgate_proxy::fsutil::{create_dir_with_mode, sha256_file, write_atomic};
use ccgate_proxy::guard::GuardHooks;
use ccgate_proxy::guard::logout::SystemRunner;
use ccgate_proxy::guard::manifest::{Manifest, Protected};
use ccgate_proxy::paths::{Paths, Platform};
use ccgate_quota::wire::{DeviceInfo, RegisterRequest, RegisterResponse};
use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::installed::InstalledMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::json;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

fn limits() -> serde_json::Value {
    json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 10}])
}

/// A server, a fake upstream, and a machine set up for Alice.
async fn alice_set_up() -> (TestServer, FakeAnthropic, i64, InstalledMachine) {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Alice", limits()).await;
    let machine = InstalledMachine::prepare();
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    (server, upstream, user_id, machine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_logs_alice_out_and_reinstating_lets_her_back_in() {
    let (server, upstream, user_id, machine) = alice_set_up().await;
    let paths = &machine.paths;
    let credentials = paths.claude_credentials(Path::new("/home/alice"));
    let token_before = std::fs::read(paths.device_token()).unwrap();
    let daemon = machine.start_daemon(&upstream).await;
    assert!(eventually(WAIT, async || daemon.shared.policy().is_some()).await);
    let client = ProxyClient::new(daemon.address, &paths.ca_cert());
    assert_eq!(client.send(&Turn::prompt("s", 1, "hi")).await.status, 200);
    assert!(credentials.exists());

    server
        .put(&format!("/users/{user_id}"), json!({"status": "killed"}))
        .await;
    assert!(
        eventually(WAIT, async || !credentials.exists()).await,
        "alice is still logged in"
    );
    assert!(
        credentials.parent().unwrap().exists(),
        "only the login goes"
    );
    let blocked = client.send(&Turn::prompt("s", 2, "hi")).await;
    assert_eq!(blocked.status, 400, "{}", blocked.body);

    // The server rotates the token on a kill; the daemon's manifest follows,
    // so the watchdog does not restore the old one.
    let rotated = eventually(WAIT, async || {
        std::fs::read(paths.device_token()).unwrap() != token_before
    })
    .await;
    if rotated {
        let in_manifest = eventually(WAIT, async || {
            let manifest = Manifest::load(paths).unwrap().unwrap();
            manifest.record(Protected::DeviceToken).unwrap().sha256
                == sha256_file(&paths.device_token()).unwrap()
        })
        .await;
        assert!(in_manifest);
        assert_eq!(
            std::fs::read(Protected::DeviceToken.backup_path(paths)).unwrap(),
            std::fs::read(paths.device_token()).unwrap()
        );
    } else {
        println!("observed: this server did not rotate the token on a kill");
    }

    // Reinstated: she logs in again (Claude Code writes the file) and works.
    server
        .put(&format!("/users/{user_id}"), json!({"status": "active"}))
        .await;
    assert!(
        eventually(WAIT, async || daemon
            .shared
            .policy()
            .is_some_and(
                |p| p.policy.status == ccgate_quota::UserStatus::Active
            ))
        .await
    );
    std::fs::write(&credentials, "{\"claudeAiOauth\":{}}").unwrap();
    let back = client.send(&Turn::prompt("s", 3, "hi again")).await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert!(credentials.exists(), "nothing logs her out while active");
    let tampers = server
        .get(&format!("/events?user_id={user_id}&type=tamper"))
        .await;
    assert_eq!(
        tampers["events"].as_array().unwrap().len(),
        0,
        "a rotated token is not tampering: {tampers}"
    );
    assert!(daemon.shared.integrity_problem().is_none());
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_does_not_follow_a_linked_claude_directory_and_the_admins_see_it() {
    let (server, upstream, user_id, machine) = alice_set_up().await;
    let paths = &machine.paths;
    // alice points ~/.claude at a directory that is not hers (bob's, or
    // root's), hoping the root daemon deletes a login there.
    let victim = paths.under_root("/home/bob/.claude");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join(".credentials.json"), b"bob's login").unwrap();
    let claude = paths.under_root("/home/alice/.claude");
    std::fs::remove_dir_all(&claude).ok();
    std::os::unix::fs::symlink(&victim, &claude).unwrap();
    let daemon = machine.start_daemon(&upstream).await;
    assert!(eventually(WAIT, async || daemon.shared.policy().is_some()).await);

    server
        .put(&format!("/users/{user_id}"), json!({"status": "killed"}))
        .await;
    let reported = eventually(WAIT, async || {
        let tampers = server
            .get(&format!("/events?user_id={user_id}&type=tamper"))
            .await;
        tampers["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["what"] == "login_link")
    })
    .await;
    let tampers = server
        .get(&format!("/events?user_id={user_id}&type=tamper"))
        .await;
    assert!(reported, "no tamper report: {tampers}");
    assert!(
        tampers.to_string().contains("/home/alice/.claude"),
        "{tampers}"
    );
    assert_eq!(
        std::fs::read(victim.join(".credentials.json")).unwrap(),
        b"bob's login"
    );
    // The kill itself holds: nothing goes through.
    let client = ProxyClient::new(daemon.address, &paths.ca_cert());
    assert_eq!(client.send(&Turn::prompt("s", 1, "hi")).await.status, 400);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_macos_a_kill_deletes_the_keychain_item_as_the_user() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Mac User", limits()).await;
    // A macOS layout under a temp root, registered as setup would.
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path(), Platform::MacOs);
    let registered: RegisterResponse = reqwest::Client::new()
        .post(format!("{}/api/agent/v1/register", server.url))
        .json(&RegisterRequest {
            code,
            device: DeviceInfo {
                hostname: "mac".into(),
                os: "macos".into(),
                arch: "aarch64".into(),
                agent_version: "test".into(),
                agent_build: None,
                ..DeviceInfo::default()
            },
        })
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The keychain belongs to the user the daemon switches to: here, us.
    let me = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| ccgate_proxy::os::lookup_user(u).is_some())
        .unwrap_or_else(|| "root".to_owned());
    create_dir_with_mode(&paths.state_dir(), 0o700).unwrap();
    let mut config = ProxyConfig::new(&server.url, registered.device_id);
    config.os_user = Some(me.clone());
    write_atomic(&paths.config_file(), config.to_toml().as_bytes(), 0o600).unwrap();
    write_atomic(
        &paths.device_token(),
        registered.device_token.as_bytes(),
        0o600,
    )
    .unwrap();

    // A fake `security` that records who ran it with which arguments.
    let bin = tempfile::tempdir().unwrap();
    let calls = bin.path().join("calls");
    let script = format!(
        "#!/bin/sh\nprintf '%s|' \"$(id -un)\" \"$@\" >> {calls}\necho >> {calls}\n\
         if [ -e {calls}.done ]; then exit 44; fi\ntouch {calls}.done\nexit 0\n",
        calls = calls.display()
    );
    std::fs::write(bin.path().join("security"), script).unwrap();
    std::fs::set_permissions(
        bin.path().join("security"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let mut options = DaemonOptions::new(paths.clone());
    options.overrides = UpstreamOverrides {
        connect_to: Some(upstream.connect_to()),
        ca_file: Some(upstream.ca_file()),
        refuse_other_hosts: true,
    };
    options.hooks = Box::new(GuardHooks::with_runner(Arc::new(
        SystemRunner::with_program_dir(bin.path()),
    )));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let daemon = daemon::start(options, Some(listener)).await.unwrap();
    assert!(eventually(WAIT, async || daemon.shared.policy().is_some()).await);
    assert!(!calls.exists(), "nobody is logged out before a kill");

    server
        .put(&format!("/users/{user_id}"), json!({"status": "killed"}))
        .await;
    let expected = format!("{me}|delete-generic-password|-s|Claude Code-credentials|");
    let logged_out = eventually(WAIT, async || {
        std::fs::read_to_string(&calls)
            .is_ok_and(|text| text.lines().filter(|l| *l == expected).count() == 2)
    })
    .await;
    assert!(
        logged_out,
        "{:?}",
        std::fs::read_to_string(&calls).unwrap_or_default()
    );
    daemon.stop().await.unwrap();
}
