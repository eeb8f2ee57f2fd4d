//! End to end from the installer: `ccgate setup` under a root prefix
//! against the in-process server, the daemon started from that prefix, and
//! the real Claude Code CLI run with the `env` setup wrote into the
//! prefix's managed-settings.json. Prompts are metered and blocked, and a
//! user's own proxy or base URL does not get around ccgate.

use std::time::Duration;

use ccgate_proxy::guard::settings::PROXY_VARIABLES;
use ccgate_tests::claude_cli::ClaudeCli;
use ccgate_tests::eventually;
use ccgate_tests::installed::{InstalledMachine, free_port};
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_with_the_installed_settings_is_metered_and_blocked() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let limits = json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 1}]);
    let (user_id, code) = server.create_user("Alice", limits).await;
    let machine = InstalledMachine::prepare();
    let (outcome, printed) = machine.setup(&server.url, Some(&code)).await;
    outcome.unwrap_or_else(|e| panic!("{e}\n{printed}"));
    let daemon = machine.start_daemon(&upstream).await;
    assert!(eventually(WAIT, async || daemon.shared.policy().is_some()).await);

    // Exactly the env setup wrote (the admin's TEAM key rides along).
    let managed_env = machine.managed_env();
    let cli = ClaudeCli::with_env(managed_env.clone());
    let first = cli.print("say hi", &[]).await;
    assert_eq!(first.code, Some(0), "{first:#?}");
    assert_eq!(first.stdout.trim(), "hi from the fake upstream");
    let sent = upstream.messages_requests().len();

    let second = cli.print("write a poem", &[]).await;
    assert_eq!(second.code, Some(1), "{second:#?}");
    let shown = format!("{}{}", second.stdout, second.stderr);
    assert!(shown.contains("API Error: 400"), "{shown}");
    assert!(
        shown.contains("Your daily opus limit is used up: 1 of 1 prompts today"),
        "{shown}"
    );
    assert_eq!(
        upstream.messages_requests().len(),
        sent,
        "the block stayed local"
    );

    // The person's shell points every proxy variable and the base URL
    // somewhere else (a dead port). Applied on top, the managed env wins
    // key by key: every variable a user could set is one setup owns.
    let elsewhere = format!("http://127.0.0.1:{}", free_port());
    let shell: Vec<(String, String)> = PROXY_VARIABLES
        .iter()
        .chain(&["ANTHROPIC_BASE_URL"])
        .map(|name| (name.to_string(), elsewhere.clone()))
        .chain([
            ("NO_PROXY".to_owned(), "*".to_owned()),
            ("no_proxy".to_owned(), "*".to_owned()),
        ])
        .collect();
    for (name, _) in &shell {
        assert!(
            managed_env.iter().any(|(k, _)| k == name),
            "managed settings do not own {name}"
        );
    }
    // And the CLI itself applies a settings file's env over the shell's:
    // with the shell's bypass in its environment and setup's
    // managed-settings.json given as a settings file, the prompt still goes
    // to ccgate (which blocks it: the day's prompt is used).
    let settings_file = machine.paths.managed_settings().display().to_string();
    let bypassing = ClaudeCli::with_env(shell);
    let third = bypassing
        .print("write another poem", &["--settings", &settings_file])
        .await;
    assert_eq!(third.code, Some(1), "{third:#?}");
    let shown = format!("{}{}", third.stdout, third.stderr);
    assert!(
        shown.contains("Your daily opus limit is used up: 1 of 1 prompts today"),
        "the bypass reached something other than ccgate: {shown}"
    );
    assert_eq!(upstream.messages_requests().len(), sent);

    assert!(ccgate_tests::settled(&daemon, WAIT).await);
    let usage = server.usage_today(user_id).await;
    assert_eq!(usage.prompts, 1);
    assert_eq!(usage.token_usage(), upstream.reported_usage());
    daemon.stop().await.unwrap();
}
