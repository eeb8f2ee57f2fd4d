//! The one pasted line: the server's `/install.sh`, piped to `sh` as the
//! dashboard's setup command does, under a root prefix. It downloads the
//! workspace's own builds from the server's release bundle, checks them,
//! installs them and runs setup; the daemon then runs from the installed
//! path and meters the real Claude Code CLI.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::Duration;

use ccgate_server::agent_bundle::this_platform;
use ccgate_tests::bundle::{write_bundle, write_signed_bundle};
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

/// The device's entry on its user's page.
async fn device_of(server: &TestServer, user_id: i64) -> serde_json::Value {
    server.get(&format!("/users/{user_id}")).await["user"]["devices"][0].clone()
}

/// v1 installed by the pasted line; the server then serves a signed v2
/// and the device is on it by itself, manifest and backup included; a v3
/// signed by a key the machine does not trust is refused and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_release_installs_itself_and_a_badly_signed_one_is_refused() {
    let (public, secret) = ccgate_release::generate_keypair().unwrap();
    let v1 = tempfile::tempdir().unwrap();
    write_signed_bundle(v1.path(), "0.1.0", &secret, |_, _| {});
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::launch(data.path(), None, |config| {
        config.agent_dir = v1.path().to_owned();
    })
    .await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Alice", opus_per_day(5)).await;
    let machine = InstalledMachine::prepare();
    let (ok, printed) = pasted_line(&server, &code, &machine).await;
    assert!(ok, "{printed}");
    // The admin trusts the team's release key on this machine.
    let keys = machine.paths.release_keys();
    std::fs::write(&keys, &public).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut daemon = start_installed_daemon(&machine, &upstream);
    assert!(eventually(WAIT, async || has_policy(machine.port).await).await);
    assert!(
        eventually(WAIT, async || device_of(&server, user_id).await["update"]
            == "current")
        .await,
        "{}",
        device_of(&server, user_id).await
    );

    // The server is restarted with a v2 bundle: a different build, signed.
    let v2 = tempfile::tempdir().unwrap();
    write_signed_bundle(v2.path(), "0.2.0", &secret, |_, bytes| {
        bytes.extend_from_slice(b"\nccgate test build 0.2.0\n");
    });
    let daemon_file = format!("ccgate-proxy-{}", this_platform());
    let v2_daemon = std::fs::read(v2.path().join(&daemon_file)).unwrap();
    let v2_build = ccgate_server::agent_bundle::sha256_file(&v2.path().join(&daemon_file)).unwrap();
    let address = server.address;
    server.stop().await;
    let server = TestServer::launch(data.path(), Some(address), |config| {
        config.agent_dir = v2.path().to_owned();
    })
    .await;
    let on_v2 = eventually(Duration::from_secs(60), async || {
        let device = device_of(&server, user_id).await;
        device["agent_build"] == v2_build.as_str() && device["update"] == "current"
    })
    .await;
    assert!(on_v2, "{}", device_of(&server, user_id).await);
    assert_eq!(
        std::fs::read(machine.paths.daemon_binary()).unwrap(),
        v2_daemon
    );
    let cli = std::fs::read(machine.root().join("usr/local/bin/ccgate")).unwrap();
    assert!(cli.ends_with(b"ccgate test build 0.2.0\n"));
    // The watchdog knows the new binary as ccgate's own.
    let manifest = ccgate_proxy::guard::manifest::Manifest::load(&machine.paths)
        .unwrap()
        .expect("manifest");
    let record = manifest
        .record(ccgate_proxy::guard::manifest::Protected::DaemonBinary)
        .expect("daemon record");
    assert_eq!(record.sha256, v2_build);
    let backup = ccgate_proxy::guard::manifest::Protected::DaemonBinary.backup_path(&machine.paths);
    assert_eq!(std::fs::read(backup).unwrap(), v2_daemon);
    // Stored before the restart, delivered by the new process.
    let reported = eventually(WAIT, async || {
        server
            .events(user_id, "agent_update")
            .await
            .iter()
            .any(|e| e["detail"]["outcome"] == "installed" && e["detail"]["to_version"] == "0.2.0")
    })
    .await;
    assert!(
        reported,
        "{:?}",
        server.events(user_id, "agent_update").await
    );
    // The restarted daemon still meters.
    let run = ClaudeCli::with_env(machine.managed_env())
        .print("say hi", &[])
        .await;
    assert_eq!(run.code, Some(0), "{run:#?}");

    // v3, signed by a key this machine does not trust.
    let (_, stranger) = ccgate_release::generate_keypair().unwrap();
    let v3 = tempfile::tempdir().unwrap();
    write_signed_bundle(v3.path(), "0.3.0", &stranger, |_, bytes| {
        bytes.extend_from_slice(b"\nnot from the team\n");
    });
    server.stop().await;
    let server = TestServer::launch(data.path(), Some(address), |config| {
        config.agent_dir = v3.path().to_owned();
    })
    .await;
    let refused = eventually(Duration::from_secs(60), async || {
        server
            .events(user_id, "agent_update")
            .await
            .iter()
            .any(|e| e["detail"]["outcome"] == "failed" && e["detail"]["to_version"] == "0.3.0")
    })
    .await;
    let updates = server.events(user_id, "agent_update").await;
    assert!(refused, "{updates:?}");
    assert!(
        updates.iter().any(|e| e["detail"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not signed by a key this machine trusts"))),
        "{updates:?}"
    );
    assert_eq!(
        std::fs::read(machine.paths.daemon_binary()).unwrap(),
        v2_daemon
    );
    assert_eq!(device_of(&server, user_id).await["update"], "behind");
    daemon.kill().await.ok();
}

/// A machine that already trusts the team's release key (an admin put it
/// in place, or it is built into the released binaries) installs only a
/// bundle signed with it: one signed by another key, or not signed at all,
/// installs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_trusted_key_only_a_bundle_signed_with_it_installs() {
    let (team_key, _) = ccgate_release::generate_keypair().unwrap();
    let (_, stranger) = ccgate_release::generate_keypair().unwrap();
    let forged = tempfile::tempdir().unwrap();
    write_signed_bundle(forged.path(), "0.1.0", &stranger, |_, _| {});
    let unsigned = tempfile::tempdir().unwrap();
    write_bundle(unsigned.path(), "0.1.0", |_, _| {});
    for (bundle, why) in [
        (forged.path(), "not signed by a key this machine trusts"),
        (unsigned.path(), "is not signed"),
    ] {
        let server = TestServer::start_with(|config| config.agent_dir = bundle.to_owned()).await;
        let (user_id, code) = server.create_user("Alice", opus_per_day(5)).await;
        let machine = InstalledMachine::prepare();
        let keys = machine.paths.release_keys();
        std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
        std::fs::write(&keys, &team_key).unwrap();
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).unwrap();
        let before = snapshot(machine.root());

        let (ok, printed) = pasted_line(&server, &code, &machine).await;
        assert!(!ok, "{printed}");
        assert!(printed.contains(why), "{printed}");
        assert!(printed.contains("nothing was installed"), "{printed}");
        assert_eq!(snapshot(machine.root()), before, "nothing changed");
        let user = server.get(&format!("/users/{user_id}")).await;
        assert_eq!(user["user"]["devices"].as_array().map(Vec::len), Some(0));
    }
}
