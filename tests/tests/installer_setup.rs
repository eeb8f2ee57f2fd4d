//! Setup when things go wrong (dead server, used install code, read-only
//! directory, a daemon that does not start): a clear error and nothing
//! left half-installed. Also: re-running setup, and the rendered service
//! files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use ccgate_installer::error::InstallError;
use ccgate_installer::service;
use ccgate_installer::setup::{SetupFailed, SetupOptions};
use ccgate_proxy::config::ProxyConfig;
use ccgate_proxy::guard::manifest::Manifest;
use ccgate_proxy::paths::{Paths, Platform};
use ccgate_tests::installed::{InstalledMachine, free_port, snapshot};
use ccgate_tests::server::TestServer;
use serde_json::json;

fn limits() -> serde_json::Value {
    json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 3}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_changes_nothing_and_says_what_to_check() {
    let machine = InstalledMachine::prepare();
    let before = snapshot(machine.root());
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (outcome, _) = machine.setup(&dead, Some("code")).await;
    let failed = outcome.unwrap_err();
    assert!(
        matches!(failed.cause, InstallError::Unreachable { .. }),
        "{failed}"
    );
    let message = failed.to_string();
    assert!(
        message.contains("cannot reach the ccgate server"),
        "{message}"
    );
    assert!(message.contains("Nothing was changed"), "{message}");
    assert!(message.contains("/healthz"), "{message}");
    assert_eq!(snapshot(machine.root()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_server_elsewhere_is_refused_without_insecure() {
    let machine = InstalledMachine::prepare();
    let before = snapshot(machine.root());
    // Refused before anything is sent: the address is never contacted.
    for server in ["http://ccgate.example.test", "http://10.9.8.7:8080"] {
        let (outcome, _) = machine.setup(server, Some("code")).await;
        let failed = outcome.unwrap_err();
        assert!(matches!(failed.cause, InstallError::Invalid(_)), "{failed}");
        let message = failed.to_string();
        assert!(message.contains("plain http"), "{message}");
        assert!(message.contains("--insecure"), "{message}");
        assert!(message.contains("Nothing was changed"), "{message}");
    }
    assert_eq!(snapshot(machine.root()), before);
}

/// The server's error code of a refused setup.
fn refusal_code(failed: &SetupFailed) -> &str {
    match &failed.cause {
        InstallError::Refused {
            code: Some(code), ..
        } => code,
        _ => panic!("{failed}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_install_code_changes_nothing_and_asks_for_a_new_one() {
    let server = TestServer::start().await;
    let (_, code) = server.create_user("Alice", limits()).await;
    let first = InstalledMachine::prepare();
    let (outcome, printed) = first.setup(&server.url, Some(&code)).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));

    let second = InstalledMachine::prepare();
    let before = snapshot(second.root());
    let (outcome, _) = second.setup(&server.url, Some(&code)).await;
    let failed = outcome.unwrap_err();
    let error_code = refusal_code(&failed);
    assert_eq!(error_code, "install_code_used");
    let message = failed.to_string();
    assert!(message.contains("already used"), "{message}");
    assert!(message.contains("new install code"), "{message}");
    assert_eq!(snapshot(second.root()), before);
}

/// A code made to move a claude-code-limiter hook machine is not an
/// install code: setup refuses it, changes nothing and says what to ask for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_code_is_refused_by_setup_with_advice() {
    let server = TestServer::start().await;
    let (user_id, _) = server.create_user("Alice", limits()).await;
    let hook = server
        .post(&format!("/users/{user_id}/hook-code"), json!({}))
        .await;
    let hook_code = hook["install_code"].as_str().expect("hook code");
    let machine = InstalledMachine::prepare();
    let before = snapshot(machine.root());
    let (outcome, _) = machine.setup(&server.url, Some(hook_code)).await;
    let failed = outcome.unwrap_err();
    let error_code = refusal_code(&failed);
    assert_eq!(error_code, "install_code_wrong_kind");
    let message = failed.to_string();
    assert!(message.contains("not for ccgate setup"), "{message}");
    assert!(message.contains("--code NEW_CODE"), "{message}");
    assert_eq!(snapshot(machine.root()), before);
}

/// Makes a directory unwritable even for root (immutable), for the life of
/// the value.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> Self {
        let status = if ccgate_proxy::os::is_root() {
            Command::new("chattr").arg("+i").arg(dir).status()
        } else {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555))
                .map(|()| std::process::ExitStatus::default())
        };
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot make {} read-only (chattr +i needs an ext4/xfs/btrfs temp dir)",
            dir.display()
        );
        Self(dir.to_owned())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_directory_is_found_before_the_code_is_used() {
    let server = TestServer::start().await;
    let (_, code) = server.create_user("Alice", limits()).await;
    let machine = InstalledMachine::prepare();
    let etc = machine.root().join("etc");
    let before = snapshot(machine.root());
    let read_only = ReadOnly::new(&etc);
    let (outcome, _) = machine.setup(&server.url, Some(&code)).await;
    drop(read_only);
    let failed = outcome.unwrap_err();
    assert!(matches!(failed.cause, InstallError::Io { .. }), "{failed}");
    let message = failed.to_string();
    assert!(
        message.contains(&format!("cannot write to {}", etc.display())),
        "{message}"
    );
    assert!(message.contains("Nothing was changed"), "{message}");
    assert!(message.contains("read-only"), "{message}");
    assert_eq!(snapshot(machine.root()), before);

    // The code was not used: setup works once the directory is writable.
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_does_not_start_rolls_everything_back() {
    let server = TestServer::start().await;
    let (_, code) = server.create_user("Alice", limits()).await;
    let machine = InstalledMachine::prepare();
    let before = snapshot(machine.root());
    // Under a prefix without --no-service, setup starts the daemon detached;
    // this one fails at once.
    let tools = tempfile::tempdir().unwrap();
    let broken = tools.path().join("ccgate-proxy");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'cannot bind 127.0.0.1' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    let options = SetupOptions {
        no_service: false,
        proxy_binary: Some(broken.clone()),
        ..machine.options(&server.url, Some(&code))
    };
    let mut printed = Vec::new();
    let outcome = ccgate_installer::setup::setup(&options, &mut printed).await;
    let failed = outcome.unwrap_err();
    let message = failed.to_string();
    assert!(message.contains("the daemon did not start"), "{message}");
    assert!(message.contains("cannot bind"), "{message}");
    assert!(
        message.contains("Every change setup made was undone"),
        "{message}"
    );
    assert!(message.contains("install code is used up"), "{message}");
    assert_eq!(snapshot(machine.root()), before, "nothing half-installed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_twice_is_safe_and_a_new_code_registers_again() {
    let server = TestServer::start().await;
    let (user_id, code) = server.create_user("Alice", limits()).await;
    let machine = InstalledMachine::prepare();
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    let first = outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    let ca = std::fs::read(machine.paths.ca_cert()).unwrap();
    let original = std::fs::read(Manifest::original_settings_path(&machine.paths)).unwrap();
    let installed = snapshot(machine.root());

    // The same command again: the code is spent, the registration kept.
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    let again = outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(again.device_id, first.device_id);
    assert!(printed.contains("Keeping the registration"), "{printed}");
    assert_eq!(again.doctor.failures(), 0, "{}", again.doctor.render());
    let after = snapshot(machine.root());
    let changed: Vec<_> = installed
        .iter()
        .filter(|(path, entry)| after.get(*path) != Some(*entry))
        .map(|(path, _)| path.display().to_string())
        .collect();
    // Only the manifest's timestamp changes.
    assert_eq!(changed, ["etc/ccgate/.backup/manifest.json"], "{changed:?}");
    // And without a code it repairs the same way.
    let (outcome, printed) = machine.setup(&server.url, None).await;
    assert_eq!(outcome.unwrap().device_id, first.device_id, "{printed}");

    // A new code: a new device, the CA and the original settings kept.
    let code2 = server
        .post(&format!("/users/{user_id}/install-code"), json!({}))
        .await;
    let code2 = code2["install_code"].as_str().unwrap().to_owned();
    let (outcome, printed) = machine.setup(&server.url, Some(&code2)).await;
    let third = outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_ne!(third.device_id, first.device_id);
    let config = ProxyConfig::load(&machine.paths.config_file()).unwrap();
    assert_eq!(config.device_id, third.device_id);
    assert_eq!(std::fs::read(machine.paths.ca_cert()).unwrap(), ca);
    assert_eq!(
        std::fs::read(Manifest::original_settings_path(&machine.paths)).unwrap(),
        original,
        "the original stays the one from before the first setup"
    );
    assert_eq!(third.doctor.failures(), 0, "{}", third.doctor.render());
}

#[test]
fn the_rendered_systemd_unit_verifies() {
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path(), Platform::Linux);
    let binary = paths.daemon_binary();
    std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
    std::fs::write(&binary, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let unit = service::render_systemd(&paths, Some(Path::new("/home/alice")));
    assert!(unit.contains(&format!(
        "ExecStart={} --root {}\n",
        binary.display(),
        root.path().display()
    )));
    for line in [
        "Restart=always",
        "After=network-online.target",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(line), "{line} missing:\n{unit}");
    }
    assert!(unit.contains(&format!(
        "ReadWritePaths={} {} ",
        paths.state_dir().display(),
        paths.managed_settings().parent().unwrap().display()
    )));
    assert!(unit.contains(&format!("-{}/home/alice/.claude", root.path().display())));
    let file = root.path().join("ccgate-proxy.service");
    std::fs::write(&file, &unit).unwrap();
    let Ok(output) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&file)
        .output()
    else {
        println!("systemd-analyze is not installed: checked the text only");
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    // verify exits 0 on mere warnings; any line about our file is a problem.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ccgate-proxy"))
        .collect();
    assert!(output.status.success() && about_unit.is_empty(), "{stderr}");
}

#[test]
fn the_rendered_launchd_plist_is_well_formed() {
    let root = tempfile::tempdir().unwrap();
    let paths = Paths::new(root.path(), Platform::MacOs);
    let plist = service::render_launchd(&paths);
    for needle in [
        "<key>RunAtLoad</key>\n\t<true/>",
        "<key>KeepAlive</key>\n\t<true/>",
        "<string>dev.ccgate.proxy</string>",
    ] {
        assert!(plist.contains(needle), "{needle} missing:\n{plist}");
    }
    assert!(plist.contains(&format!(
        "<string>{}/Library/Logs/ccgate/ccgate-proxy.log</string>",
        root.path().display()
    )));
    assert!(plist.contains(&format!(
        "<string>{}</string>",
        paths.daemon_binary().display()
    )));
    let opens = plist.matches("<dict>").count() + plist.matches("<array>").count();
    let closes = plist.matches("</dict>").count() + plist.matches("</array>").count();
    assert_eq!(opens, closes);
    if cfg!(target_os = "macos") {
        let file = root.path().join("dev.ccgate.proxy.plist");
        std::fs::write(&file, &plist).unwrap();
        let status = Command::new("plutil")
            .arg("-lint")
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
