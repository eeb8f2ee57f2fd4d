//! The one pasted line: the server's `/install.sh`, piped to `sh` as the
//! dashboard's setup command does, under a root prefix. It downloads the
//! workspace's own builds from the server's release bundle, checks them,
//! installs them and runs setup; the daemon then runs from the installed
//! path and meters the real Claude Code CLI.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::Duration;

use ccgate_server::agent_bundle::this_platform;
use ccgate_tests::bundle::write_bundle;
use ccgate_tests::claude_cli::ClaudeCli;
use ccgate_tests::eventually;
use ccgate_tests::installed::{InstalledMachine, snapshot};
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::json;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(20);

fn opus_per_day(n: i64) -> serde_json::Value {
    json!([{"type": "per_model", "model": "opus", "window": "daily", "value": n}])
}

/// Runs `curl -fsSL <server>/install.sh | sh -s -- --code CODE …` for
/// `machine`'s prefix; returns (success, what it printed).
async fn pasted_line(
    server: &TestServer,
    code: &str,
    machine: &InstalledMachine,
) -> (bool, String) {
    let line = format!(
        "curl -fsSL {}/install.sh | sh -s -- --code {code} --root {} --no-service --user alice --port {}",
        server.url,
        machine.root().display(),
        machine.port
    );
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the install line finishes")
    .expect("sh runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// The installed daemon, started as its service would start it, against
/// the fake Anthropic.
fn start_installed_daemon(machine: &InstalledMachine, upstream: &FakeAnthropic) -> Child {
    Command::new(machine.paths.daemon_binary())
        .arg("--root")
        .arg(machine.root())
        .env("CCGATE_UPSTREAM_CONNECT_TO", upstream.connect_to())
        .env("CCGATE_UPSTREAM_CA_FILE", upstream.ca_file())
        .env("CCGATE_TUNNEL_ONLY_ANTHROPIC", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the installed daemon starts")
}

async fn has_policy(port: u16) -> bool {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let Ok(response) = http
        .get(format!("http://127.0.0.1:{port}/ccgate/status"))
        .send()
        .await
    else {
        return false;
    };
    let status: serde_json::Value = response.json().await.unwrap_or_default();
    !status["policy_version"].is_null()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pasted_line_installs_checked_binaries_and_the_cli_is_metered() {
    let bundle = tempfile::tempdir().unwrap();
    write_bundle(bundle.path(), "0.1.0", |_, _| {});
    let server = TestServer::start_with(|config| config.agent_dir = bundle.path().to_owned()).await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Alice", opus_per_day(5)).await;
    let machine = InstalledMachine::prepare();

    let (ok, printed) = pasted_line(&server, &code, &machine).await;
    assert!(ok, "{printed}");
    assert!(
        printed.contains("installed ccgate and ccgate-proxy"),
        "{printed}"
    );
    let bin = machine.root().join("usr/local/bin");
    for program in ["ccgate", "ccgate-proxy"] {
        let installed = bin.join(program);
        let served = bundle.path().join(format!("{program}-{}", this_platform()));
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(&served).unwrap(),
            "{program} is the bundle's"
        );
        let meta = std::fs::metadata(&installed).unwrap();
        assert_eq!((meta.uid(), meta.permissions().mode() & 0o777), (0, 0o755));
    }
    // Setup ran with the server the script came from.
    let user = server.get(&format!("/users/{user_id}")).await;
    assert_eq!(
        user["user"]["devices"].as_array().map(Vec::len),
        Some(1),
        "{user}"
    );

    let mut daemon = start_installed_daemon(&machine, &upstream);
    assert!(
        eventually(WAIT, async || has_policy(machine.port).await).await,
        "the installed daemon got its policy"
    );
    let cli = ClaudeCli::with_env(machine.managed_env());
    let run = cli.print("say hi", &[]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout.trim(), "hi from the fake upstream");
    assert!(
        eventually(WAIT, async || server.usage_today(user_id).await.prompts
            == 1)
        .await,
        "the prompt was counted at the server"
    );
    daemon.kill().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_that_does_not_match_its_checksum_installs_nothing() {
    let bundle = tempfile::tempdir().unwrap();
    write_bundle(bundle.path(), "0.1.0", |_, _| {});
    let server = TestServer::start_with(|config| config.agent_dir = bundle.path().to_owned()).await;
    let (user_id, code) = server.create_user("Alice", opus_per_day(5)).await;
    // Changed after the server read the bundle: as if changed on the way.
    let served = bundle
        .path()
        .join(format!("ccgate-proxy-{}", this_platform()));
    std::fs::write(&served, b"#!/bin/sh\necho not ccgate\n").unwrap();
    let machine = InstalledMachine::prepare();
    let before = snapshot(machine.root());

    let (ok, printed) = pasted_line(&server, &code, &machine).await;
    assert!(!ok, "{printed}");
    assert!(
        printed.contains("does not match the server's checksum"),
        "{printed}"
    );
    assert!(printed.contains("nothing was installed"), "{printed}");
    assert_eq!(snapshot(machine.root()), before, "nothing changed");
    let user = server.get(&format!("/users/{user_id}")).await;
    assert_eq!(
        user["user"]["devices"].as_array().map(Vec::len),
        Some(0),
        "no device was registered: {user}"
    );
}
