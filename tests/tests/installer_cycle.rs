//! The whole life of an install under a root prefix: the real `ccgate setup`
//! against the in-process server, status and sync through the daemon,
//! tampering with every protected file and with the managed settings
//! (restored and reported to the server), and an uninstall that leaves the
//! prefix exactly as it was.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ccgate_installer::doctor::Verdict;
use ccgate_proxy::fsutil::sha256_file;
use ccgate_proxy::guard::manifest::{Manifest, Protected, ServiceKind};
use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::installed::{ADMIN_SETTINGS, InstalledMachine, snapshot};
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn opus_per_day(n: i64) -> Value {
    json!([{"type": "per_model", "model": "opus", "window": "daily", "value": n}])
}

/// The tamper events the server holds for `user_id`.
async fn tamper_events(server: &TestServer, user_id: i64) -> Vec<Value> {
    server
        .get(&format!("/events?user_id={user_id}&type=tamper"))
        .await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn reported(server: &TestServer, user_id: i64, path: &str, what: &str) -> bool {
    tamper_events(server, user_id).await.iter().any(|e| {
        e["detail"]["path"] == path
            && e["detail"]["what"] == what
            && e["detail"]["restored"] == true
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_tamper_and_uninstall_leave_the_prefix_as_it_was() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Alice", opus_per_day(5)).await;
    let machine = InstalledMachine::prepare();
    let before = snapshot(machine.root());

    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(outcome.service, ServiceKind::None);
    assert!(printed.contains("What alice will see"), "{printed}");
    assert!(printed.contains("--no-service"), "{printed}");
    let doctor = &outcome.doctor;
    assert_eq!(doctor.failures(), 0, "{}", doctor.render());
    assert_eq!(doctor.check("proxy").unwrap().verdict, Verdict::Warn);
    for name in [
        "installed",
        "own files",
        "CA",
        "managed settings",
        "server",
        "token",
        "clock",
    ] {
        let check = doctor
            .check(name)
            .unwrap_or_else(|| panic!("no {name} check"));
        assert_eq!(check.verdict, Verdict::Pass, "{}", doctor.render());
    }

    // The files, root-only where they hold secrets.
    let paths = &machine.paths;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&paths.device_token()), 0o600);
    assert_eq!(mode(&paths.config_file()), 0o600);
    assert_eq!(mode(&paths.ca_key()), 0o600);
    assert_eq!(mode(&paths.daemon_binary()), 0o755);
    assert_eq!(mode(&paths.backup_dir()), 0o700);
    let env: std::collections::BTreeMap<_, _> = machine.managed_env().into_iter().collect();
    let proxy_url = format!("http://127.0.0.1:{}", machine.port);
    for name in ccgate_proxy::guard::settings::PROXY_VARIABLES {
        assert_eq!(env[name], proxy_url);
    }
    assert_eq!(env["NO_PROXY"], "localhost,127.0.0.1,::1");
    assert_eq!(env["ANTHROPIC_BASE_URL"], "https://api.anthropic.com");
    assert_eq!(
        env["NODE_EXTRA_CA_CERTS"],
        paths.ca_cert().display().to_string()
    );
    assert_eq!(env["TEAM"], "blue", "the admin's own keys stay");

    // Status and sync through the daemon started from the prefix.
    let (ok, text) = machine.ccgate(&["status"]).await;
    assert!(!ok && text.contains("not running"), "{text}");
    let daemon = machine.start_daemon(&upstream).await;
    assert!(eventually(WAIT, async || daemon.shared.policy().is_some()).await);
    let client = ProxyClient::new(daemon.address, &paths.ca_cert());
    assert_eq!(client.send(&Turn::prompt("s", 1, "hi")).await.status, 200);
    let (ok, text) = machine.ccgate(&["sync"]).await;
    assert!(ok, "{text}");
    assert!(text.contains("Synced"), "{text}");
    let (ok, text) = machine.ccgate(&["status"]).await;
    assert!(ok, "{text}");
    assert!(text.contains("Alice"), "{text}");
    assert!(text.contains("opus"), "{text}");
    assert!(text.contains("prompts daily"), "{text}");
    assert!(text.contains("reachable"), "{text}");
    let (ok, text) = machine.ccgate(&["status", "--json"]).await;
    assert!(ok, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["report"]["limits"][0]["used"], 1);
    assert_eq!(report["report"]["limits"][0]["limit"], 5);
    let (ok, text) = machine.ccgate(&["doctor"]).await;
    assert!(ok, "{text}");

    // Tamper with each protected file: restored and reported.
    let manifest = Manifest::load(paths).unwrap().unwrap();
    let mut slowest = Duration::ZERO;
    for file in [
        Protected::DaemonBinary,
        Protected::Config,
        Protected::DeviceToken,
        Protected::CaCert,
        Protected::CaKey,
    ] {
        let path = file.path(paths);
        let expected = manifest.record(file).unwrap().sha256.clone();
        let changed_at = Instant::now();
        std::fs::write(&path, b"tampered\n").unwrap();
        let restored = eventually(WAIT, async || {
            sha256_file(&path).ok().as_deref() == Some(expected.as_str())
        })
        .await;
        slowest = slowest.max(changed_at.elapsed());
        assert!(restored, "{} was not restored", path.display());
        let system = paths.to_system(&path).display().to_string();
        assert!(
            eventually(WAIT, async || reported(
                &server, user_id, &system, "modified"
            )
            .await)
            .await,
            "no tamper event for {system}: {:?}",
            tamper_events(&server, user_id).await
        );
    }
    // Deleted, and loosened permissions.
    std::fs::remove_file(paths.config_file()).unwrap();
    assert!(eventually(WAIT, async || paths.config_file().exists()).await);
    std::fs::set_permissions(paths.device_token(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(eventually(WAIT, async || mode(&paths.device_token()) == 0o600).await);
    assert!(reported_eventually(&server, user_id, "/etc/ccgate/device.token", "permissions").await);

    // Managed settings: ccgate's keys come back, the admin's edits stay.
    let settings = paths.managed_settings();
    let mut value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    value["env"]["HTTPS_PROXY"] = "http://127.0.0.1:9".into();
    value["env"]
        .as_object_mut()
        .unwrap()
        .remove("NODE_EXTRA_CA_CERTS");
    value["cleanupPeriodDays"] = 9.into();
    let changed_at = Instant::now();
    std::fs::write(&settings, serde_json::to_vec(&value).unwrap()).unwrap();
    let settings_whole = async || {
        let Ok(bytes) = std::fs::read(&settings) else {
            return false;
        };
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        value["env"]["HTTPS_PROXY"] == proxy_url.as_str()
            && value["env"]["NODE_EXTRA_CA_CERTS"] == paths.ca_cert().display().to_string()
    };
    assert!(eventually(WAIT, settings_whole).await);
    slowest = slowest.max(changed_at.elapsed());
    let value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(
        value["cleanupPeriodDays"], 9,
        "other keys are the admin's business"
    );
    assert!(
        reported_eventually(
            &server,
            user_id,
            "/etc/claude-code/managed-settings.json",
            "settings_key"
        )
        .await
    );
    // Deleted: back as setup wrote it (later edits went with the file).
    std::fs::remove_file(&settings).unwrap();
    assert!(eventually(WAIT, settings_whole).await);
    // The admin adds a key the proper way (ccgate's keys untouched).
    let mut value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    value["cleanupPeriodDays"] = 9.into();
    std::fs::write(&settings, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    println!("observed: slowest restore after a change took {slowest:?}");

    assert!(daemon.shared.integrity_problem().is_none());
    assert_eq!(
        client
            .send(&Turn::prompt("s", 2, "still fine"))
            .await
            .status,
        200
    );

    // Uninstall refuses while a daemon it did not start still runs (its
    // watchdog would put everything back) and changes nothing.
    let installed = snapshot(machine.root());
    let (ok, text) = machine.ccgate(&["uninstall"]).await;
    assert!(!ok && text.contains("stop it first"), "{text}");
    let now: Vec<_> = snapshot(machine.root()).into_keys().collect();
    assert!(
        installed.keys().all(|k| now.contains(k)),
        "nothing was removed"
    );
    // Stopped (as the service would be), uninstall leaves the prefix byte
    // for byte as it was, the admin's settings included.
    daemon.stop().await.unwrap();
    let (ok, text) = machine.ccgate(&["uninstall"]).await;
    assert!(ok, "{text}");
    let value: Value = serde_json::from_slice(&std::fs::read(&settings).unwrap()).unwrap();
    assert_eq!(
        value["cleanupPeriodDays"], 9,
        "keys added since setup are kept"
    );
    assert_eq!(value["env"]["TEAM"], "blue");
    assert!(value["env"].get("HTTPS_PROXY").is_none());
    // Without the admin's later key, the file is the original again.
    std::fs::write(&settings, ADMIN_SETTINGS).unwrap();
    assert_eq!(snapshot(machine.root()), before);
}

async fn reported_eventually(server: &TestServer, user_id: i64, path: &str, what: &str) -> bool {
    eventually(WAIT, async || reported(server, user_id, path, what).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_gives_back_the_exact_bytes_when_nothing_else_changed() {
    let server = TestServer::start().await;
    let (_, code) = server.create_user("Bob", opus_per_day(5)).await;
    let machine = InstalledMachine::prepare();
    // Unusual formatting and key order must survive byte for byte.
    let original = b"{\"z\":1,   \"env\":{\"B\":\"2\",\"A\":\"1\"},\n\"a\":[3,2,1]}";
    std::fs::write(machine.paths.managed_settings(), original).unwrap();
    let before = snapshot(machine.root());
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_ne!(
        std::fs::read(machine.paths.managed_settings()).unwrap(),
        original
    );
    let (ok, text) = machine.ccgate(&["uninstall"]).await;
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(machine.paths.managed_settings()).unwrap(),
        original
    );
    assert_eq!(snapshot(machine.root()), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_backup_prompts_are_blocked_until_the_files_are_whole() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Alice", opus_per_day(5)).await;
    let machine = InstalledMachine::prepare();
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    let daemon = machine.start_daemon(&upstream).await;
    assert!(eventually(WAIT, async || daemon.shared.policy().is_some()).await);
    let paths = &machine.paths;
    let client = ProxyClient::new(daemon.address, &paths.ca_cert());

    let config = std::fs::read(paths.config_file()).unwrap();
    std::fs::remove_file(Protected::Config.backup_path(paths)).unwrap();
    std::fs::write(
        paths.config_file(),
        b"server_url = \"http://evil.example\"\n",
    )
    .unwrap();
    assert!(eventually(WAIT, async || daemon.shared.integrity_problem().is_some()).await);
    let blocked = client.send(&Turn::prompt("s", 1, "hi")).await;
    assert_eq!(blocked.status, 400);
    let message = blocked.error_message();
    assert!(message.contains("/etc/ccgate/config.toml"), "{message}");
    assert!(message.contains("backup"), "{message}");
    assert!(message.contains("sudo ccgate setup"), "{message}");
    assert!(upstream.messages_requests().is_empty());
    let events = tamper_events(&server, user_id).await;
    let unrestored = eventually(WAIT, async || {
        tamper_events(&server, user_id).await.iter().any(|e| {
            e["detail"]["path"] == "/etc/ccgate/config.toml" && e["detail"]["restored"] == false
        })
    })
    .await;
    assert!(unrestored, "{events:?}");
    let (ok, text) = machine.ccgate(&["doctor"]).await;
    assert!(!ok, "{text}");
    assert!(text.contains("fix: sudo ccgate setup --server"), "{text}");

    // Whole again (an admin put the file back): prompts pass again.
    std::fs::write(paths.config_file(), &config).unwrap();
    assert!(eventually(WAIT, async || daemon.shared.integrity_problem().is_none()).await);
    assert_eq!(client.send(&Turn::prompt("s", 2, "hi")).await.status, 200);
    daemon.stop().await.unwrap();
}
