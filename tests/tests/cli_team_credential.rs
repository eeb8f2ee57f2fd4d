//! Team-credential mode with the real Claude Code CLI: `ccgate setup` under
//! a root prefix for a person on the team's subscription, the daemon with
//! its guard, and the CLI run with the managed settings the daemon wrote,
//! at their real path (private mount namespace). The person's home and
//! environment never hold the credential; Anthropic receives it, never the
//! placeholder; a copy of the person's files used elsewhere gets nothing; a
//! kill stops a running session; uninstall gives their own login back.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccgate_proxy::guard::settings::PROXY_VARIABLES;
use ccgate_tests::claude_cli::ClaudeCli;
use ccgate_tests::eventually;
use ccgate_tests::installed::InstalledMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::tunnel::Tunnel;
use ccgate_tests::upstream::{FakeAnthropic, Reply, Usage};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const REAL: &str = "sk-ant-oat01-REAL-team-token-7gK2pQ9wX4vB8nM3cL6zR1tY5hJ0dF";

/// Every file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(path),
                Ok(kind) if kind.is_file() => {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        found.push(path);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn managed_env(settings: &[u8]) -> serde_json::Map<String, Value> {
    let settings: Value = serde_json::from_slice(settings).unwrap();
    settings["env"].as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_never_holds_the_team_credential() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    upstream.set_required_credential(Some(REAL));
    let subscription_id = server.create_subscription("Team Max", REAL).await;
    let limits = json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 5}]);
    let (user_id, code) = server
        .create_team_user("Alice", limits, subscription_id)
        .await;

    // Alice signed Claude Code in herself before ccgate came.
    let machine = InstalledMachine::prepare();
    let own_login = machine.paths.claude_credentials(Path::new("/home/alice"));
    let own_login_bytes = std::fs::read(&own_login).unwrap();
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert!(printed.contains("Team credential mode"), "{printed}");
    let daemon = machine.start_daemon(&upstream).await;
    let placeholder = daemon.shared.vault.placeholder().to_owned();
    let ready = eventually(WAIT, async || {
        let settings = std::fs::read(machine.paths.managed_settings()).unwrap_or_default();
        daemon.shared.vault.holds_secret()
            && managed_env(&settings)["CLAUDE_CODE_OAUTH_TOKEN"] == placeholder.as_str()
            && !own_login.exists()
    })
    .await;
    assert!(
        ready,
        "the daemon did not take over: {}",
        String::from_utf8_lossy(&std::fs::read(machine.paths.managed_settings()).unwrap())
    );
    let settings = std::fs::read(machine.paths.managed_settings()).unwrap();
    assert_eq!(managed_env(&settings)["ANTHROPIC_API_KEY"], "");

    // Alice's shell still has an API key of her own: the managed settings
    // switch it off, and the CLI signs in with the placeholder.
    let cli = ClaudeCli::with_managed_settings(&settings, vec![]);
    let run = cli.print("say hi", &[]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout.trim(), "hi from the fake upstream");
    let seen = upstream.credentials_seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|c| c.as_deref() == Some(REAL)),
        "Anthropic saw something other than the team credential: {seen:?}"
    );

    // Nothing on Alice's side holds the credential: her home, the CLI's
    // home, the managed settings, the environment the CLI ran with.
    let alice_home = machine.root().join("home/alice");
    assert_eq!(files_holding(&alice_home, REAL), Vec::<PathBuf>::new());
    assert_eq!(files_holding(cli.home(), REAL), Vec::<PathBuf>::new());
    assert!(!String::from_utf8_lossy(&settings).contains(REAL));
    assert!(!cli.shell_command(&[]).contains(REAL));

    // A copy of everything Alice has, used on a machine without ccgate
    // (straight to Anthropic): the placeholder gets nothing.
    let tunnel = Tunnel::start(upstream.address).await;
    let mut env: Vec<(String, String)> = PROXY_VARIABLES
        .iter()
        .map(|name| (name.to_string(), tunnel.url()))
        .collect();
    env.push((
        "NODE_EXTRA_CA_CERTS".into(),
        upstream.ca_file().display().to_string(),
    ));
    env.push(("CLAUDE_CODE_OAUTH_TOKEN".into(), placeholder.clone()));
    let mut elsewhere = ClaudeCli::with_env(env);
    elsewhere.set_api_key(None);
    copy_dir(cli.home(), elsewhere.home());
    let before = upstream.credentials_seen().len();
    let stolen = elsewhere.print("say hi", &["--max-turns", "1"]).await;
    assert_ne!(stolen.code, Some(0), "{stolen:#?}");
    assert!(tunnel.anthropic_tunnels() >= 1, "{:?}", tunnel.connects());
    let tried = &upstream.credentials_seen()[before..];
    assert!(!tried.is_empty());
    assert!(
        tried.iter().all(|c| c.as_deref() != Some(REAL)),
        "{tried:?}"
    );

    // ccgate status and doctor say which login is in use.
    let (_, status) = machine.ccgate(&["status"]).await;
    assert!(
        status.contains("Login: the team's subscription, held by ccgate"),
        "{status}"
    );
    let (_, doctor) = machine.ccgate(&["doctor"]).await;
    assert!(
        doctor.contains("the daemon holds the subscription's credential"),
        "{doctor}"
    );

    // A kill stops a session that is running a long reply.
    upstream.push_reply(Reply::slow_text(
        &"word ".repeat(300),
        Usage::new(40, 300, 0, 0),
        300,
        Duration::from_millis(100),
    ));
    let sent = upstream.messages_requests().len();
    let long = tokio::spawn(async move {
        let run = cli.print("tell me a long story", &[]).await;
        (run, cli)
    });
    let started = eventually(WAIT, async || upstream.messages_requests().len() > sent).await;
    assert!(started, "the long reply never started");
    let killed_at = Instant::now();
    server
        .put(&format!("/users/{user_id}"), json!({"status": "killed"}))
        .await;
    let (run, _cli) = long.await.unwrap();
    let stopped_after = killed_at.elapsed();
    eprintln!("kill: the running session stopped {stopped_after:?} after the admin's click");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.shown().contains("revoked your Claude Code access"),
        "{run:#?}"
    );
    // The reply would have streamed for 30 s.
    assert!(stopped_after < Duration::from_secs(20), "{stopped_after:?}");

    // Uninstall gives Alice her own login back, as it was.
    daemon.stop().await.unwrap();
    let (ok, printed) = machine.ccgate(&["uninstall"]).await;
    assert!(ok, "{printed}");
    assert!(printed.contains("own Claude login back"), "{printed}");
    assert_eq!(std::fs::read(&own_login).unwrap(), own_login_bytes);
}
