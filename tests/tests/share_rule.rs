//! The `share` rule end to end: the fake Anthropic upstream sends rising
//! utilization headers, the real proxy reports them with its requests, the
//! server attributes the window to the person and hands their share back,
//! and the proxy blocks their next prompt with the share message.

use std::time::Duration;

use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::machine::TestMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_over_their_share_of_the_window_is_blocked_by_the_proxy() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let limits = json!([{ "type": "share", "window": "five_hour", "value": 30 }]);
    let (user_id, code) = server.create_user("Alice", limits).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);

    // Each reply shows the window as the prompts before it left it: 12
    // points a prompt, and only Alice uses the subscription.
    let resets = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(3))
        .as_second()
        .to_string();
    for prompt in 0..4_u32 {
        let utilization = format!("{:.2}", f64::from(prompt) * 0.12);
        upstream.set_rate_limit_headers(&[
            ("anthropic-ratelimit-unified-status", "allowed"),
            ("anthropic-ratelimit-unified-5h-utilization", &utilization),
            ("anthropic-ratelimit-unified-5h-reset", &resets),
        ]);
        let reply = client
            .send(&Turn::prompt(&format!("sess-{prompt}"), 1, "hi"))
            .await;
        assert_eq!(reply.status, 200, "prompt {prompt}: {}", reply.body);
        // Let the reply be recorded and delivered before the next one.
        assert!(ccgate_tests::settled(&proxy, WAIT).await);
    }
    upstream.set_rate_limit_headers(&[
        ("anthropic-ratelimit-unified-5h-utilization", "0.48"),
        ("anthropic-ratelimit-unified-5h-reset", &resets),
    ]);

    // The server attributes the window to Alice and her devices learn it.
    let blocked = eventually(WAIT, async || {
        let reply = client.send(&Turn::prompt("sess-next", 1, "one more")).await;
        reply.status == 400
    })
    .await;
    assert!(blocked, "never blocked");
    let reply = client.send(&Turn::prompt("sess-last", 1, "again")).await;
    assert_eq!(reply.status, 400);
    let message = reply.error_message();
    assert!(
        message.contains("of the team's 5-hour window; the limit is 30 %; it frees up"),
        "{message}"
    );
    // `ccgate status` reads her share from the daemon.
    let status: serde_json::Value = reqwest::get(format!("http://{}/ccgate/status", proxy.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["window_shares"][0]["window"], "five_hour",
        "{status}"
    );
    assert_eq!(status["report"]["shares"][0]["percent"], 30, "{status}");
    // The admin sees her share.
    let user = server.get(&format!("/users/{user_id}")).await;
    let share = &user["user"]["window_shares"][0];
    assert_eq!(share["window"], "five_hour", "{user}");
    assert!(share["used_bp"].as_u64().unwrap() >= 3000, "{user}");
}

/// The real CLI signed in with a subscription login: it names its account
/// in every request, and is blocked once its person is over their share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_cli_is_blocked_over_its_share_with_the_share_message() {
    use ccgate_tests::claude_cli::ClaudeCli;
    const ACCOUNT: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let limits = json!([{ "type": "share", "window": "five_hour", "value": 30 }]);
    let (_, code) = server.create_user("Alice", limits).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let proxy = machine.start_proxy(&upstream).await;
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    let mut cli = ClaudeCli::through_proxy(proxy.address, &machine.paths.ca_cert());
    cli.set_api_key(None);
    cli.set_env(
        "CLAUDE_CODE_OAUTH_TOKEN",
        "sk-ant-oat01-lab-login-for-the-share-test",
    );
    std::fs::write(
        cli.home().join(".claude.json"),
        json!({
            "hasCompletedOnboarding": true,
            "oauthAccount": { "accountUuid": ACCOUNT, "emailAddress": "alice@example.com",
                              "organizationUuid": "7e57e57e-0000-4000-8000-000000000000" },
        })
        .to_string(),
    )
    .unwrap();
    let resets = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(3))
        .as_second()
        .to_string();
    for prompt in 0..2_u32 {
        let utilization = format!("{:.2}", f64::from(prompt) * 0.2);
        upstream.set_rate_limit_headers(&[
            ("anthropic-ratelimit-unified-status", "allowed"),
            ("anthropic-ratelimit-unified-5h-utilization", &utilization),
            ("anthropic-ratelimit-unified-5h-reset", &resets),
        ]);
        let run = cli.print("say hi", &[]).await;
        assert_eq!(run.code, Some(0), "prompt {prompt}: {run:#?}");
        assert!(ccgate_tests::settled(&proxy, WAIT).await);
    }
    let sent = upstream.messages_requests();
    let metadata = sent.last().unwrap().json()["metadata"]["user_id"].clone();
    assert!(metadata.to_string().contains(ACCOUNT), "{metadata}");

    // The attribution reaches the device within a second or two.
    let blocked = eventually(WAIT, async || {
        let user = server.get("/users").await.to_string();
        user.contains("\"window_shares\":[{")
    })
    .await;
    assert!(blocked, "no share reached the server's view");
    let mut shown = String::new();
    for _ in 0..10 {
        let run = cli.print("write a poem", &[]).await;
        shown = format!("{}{}", run.stdout, run.stderr);
        if run.code == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(shown.contains("API Error: 400"), "{shown}");
    assert!(
        shown.contains("of the team's 5-hour window; the limit is 30 %; it frees up"),
        "{shown}"
    );
}
