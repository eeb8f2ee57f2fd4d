//! The real Claude Code CLI (`claude -p`) through the real proxy against the
//! fake upstream, with a temp HOME and only the proxy variables and CA a
//! managed install gives it.

use std::time::Duration;

use ccgate_tests::claude_cli::ClaudeCli;
use ccgate_tests::eventually;
use ccgate_tests::machine::TestMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prompts_pass_the_third_is_blocked_and_the_server_counts_exactly() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let limits = json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 2}]);
    let (user_id, code) = server.create_user("Alice", limits).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let proxy = machine.start_proxy(&upstream).await;
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    let cli = ClaudeCli::through_proxy(proxy.address, &machine.paths.ca_cert());

    let first = cli.print("say hi", &[]).await;
    assert_eq!(first.code, Some(0), "{first:#?}");
    assert_eq!(first.stdout.trim(), "hi from the fake upstream");

    // A tool loop: the fake asks for Bash, the CLI runs it and sends the result.
    let second = cli
        .print("please run echo lab", &["--allowedTools", "Bash(echo:*)"])
        .await;
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert_eq!(second.stdout.trim(), "The tool said lab. Done.");
    let messages = upstream.messages_requests();
    let tool_results = messages
        .iter()
        .filter(|r| r.body.windows(11).any(|w| w == b"tool_result"))
        .count();
    assert!(tool_results >= 1, "the CLI sent the tool's result back");
    let sent_before_block = messages.len();

    let third = cli.print("write a poem", &[]).await;
    assert_eq!(third.code, Some(1), "{third:#?}");
    let shown = format!("{}{}", third.stdout, third.stderr);
    assert!(shown.contains("API Error: 400"), "{shown}");
    assert!(
        shown.contains("Your daily opus limit is used up: 2 of 2 prompts today"),
        "{shown}"
    );
    assert!(shown.contains("Alice's usage: opus 2/2 today"), "{shown}");
    assert_eq!(
        upstream.messages_requests().len(),
        sent_before_block,
        "the block never left the machine"
    );

    assert!(ccgate_tests::settled(&proxy, WAIT).await);
    let usage = server.usage_today(user_id).await;
    assert_eq!(usage.prompts, 2);
    // The device reports the Claude Code version it saw.
    let version_seen = eventually(WAIT, async || {
        let user = server.get(&format!("/users/{user_id}")).await;
        user.to_string().contains("\"claude_version\":\"2.1.330\"")
    })
    .await;
    assert!(
        version_seen,
        "{}",
        server.get(&format!("/users/{user_id}")).await
    );
    assert_eq!(usage.token_usage(), upstream.reported_usage());
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_the_cli_shows_why_it_is_blocked() {
    let upstream = FakeAnthropic::start().await;
    let machine = TestMachine::unregistered("http://127.0.0.1:9");
    let proxy = machine.start_proxy(&upstream).await;
    let cli = ClaudeCli::through_proxy(proxy.address, &machine.paths.ca_cert());
    let run = cli.print("say hi", &[]).await;
    assert_eq!(run.code, Some(1), "{run:#?}");
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(shown.contains("no ccgate policy"), "{shown}");
    assert!(upstream.messages_requests().is_empty());
}
