//! The proxy and the server together: a fake Anthropic upstream on
//! 127.0.0.1, real TLS through the real proxy, real HTTP to the real server.

use std::time::Duration;

use ccgate_tests::client::{LAB_ACCOUNT, ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::machine::TestMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::{FakeAnthropic, Reply, Usage};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    server: TestServer,
    upstream: FakeAnthropic,
    machine: TestMachine,
    proxy: ccgate_proxy::daemon::RunningDaemon,
    client: ProxyClient,
    user_id: i64,
}

async fn setup(limits: serde_json::Value) -> Setup {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Alice", limits).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    // The first sync gives the proxy its policy.
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    Setup {
        server,
        upstream,
        machine,
        proxy,
        client,
        user_id,
    }
}

fn opus_per_day(n: i64) -> serde_json::Value {
    json!([{"type": "per_model", "model": "opus", "window": "daily", "value": n}])
}

/// Waits until the proxy has recorded and delivered everything it saw.
async fn delivered(setup: &Setup) -> bool {
    ccgate_tests::settled(&setup.proxy, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_with_a_tool_loop_counts_once_with_exact_tokens() {
    let s = setup(opus_per_day(5)).await;
    let turn = Turn::prompt("sess-1", 1, "please run echo lab");
    let first = s.client.send(&turn).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains("tool_use"));
    let second = s.client.send(&turn.continuation(&first)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.text(), "The tool said lab. Done.");
    assert!(delivered(&s).await);

    let usage = s.server.usage_today(s.user_id).await;
    assert_eq!(usage.prompts, 1);
    assert_eq!(usage.credits, 10);
    assert_eq!(usage.token_usage(), s.upstream.reported_usage());
    assert!(usage.input_tokens > 0 && usage.cache_read_input_tokens > 0);
    // Bodies reach Anthropic byte for byte.
    let sent = s.upstream.messages_requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].body, turn.body().to_string().as_bytes());
    assert_eq!(sent[0].headers["x-claude-code-session-id"], "sess-1");
}

/// The soak's double count: Claude Code sends a tool's result as soon as it
/// has the reply's last byte, which can be before the proxy has recorded
/// that reply (and learnt its tool call). Here the result goes out while the
/// reply is still open, the same race made certain: it must continue the
/// turn, not count a second prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_result_sent_before_its_reply_is_recorded_continues_the_turn() {
    use futures_util::StreamExt;
    let s = setup(opus_per_day(5)).await;
    let hold = std::sync::Arc::new(tokio::sync::Notify::new());
    s.upstream.push_reply(Reply::HeldToolUse {
        command: "echo lab".into(),
        usage: Usage::new(10, 5, 0, 0),
        hold: hold.clone(),
    });
    let turn = Turn::prompt("sess-1", 1, "please run echo lab");
    let mut stream = s.client.open(&turn).await.bytes_stream();
    let mut received = String::new();
    let id = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(at) = received.find("toolu_fake_") {
                let digits = received[at + 11..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .count();
                if received[at + 11 + digits..].starts_with('"') {
                    return received[at..at + 11 + digits].to_owned();
                }
            }
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the tool call reached the client");
    let continuation = {
        let client = s.client.clone();
        let request = turn.with_tool_result(&id);
        tokio::spawn(async move { client.send(&request).await })
    };
    // Before the fix the result went to Anthropic at once, as a new prompt.
    let forwarded_early = ccgate_tests::eventually(Duration::from_secs(2), async || {
        s.upstream.messages_requests().len() == 2
    })
    .await;
    hold.notify_one();
    while let Some(Ok(chunk)) = stream.next().await {
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("message_stop"), "{received}");
    let second = continuation.await.unwrap();
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.text(), "The tool said lab. Done.");
    assert!(delivered(&s).await);
    let usage = s.server.usage_today(s.user_id).await;
    assert_eq!(
        usage.prompts, 1,
        "the tool result was counted as a prompt (forwarded before its reply ended: {forwarded_early})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_the_proxy_answers_400_with_the_full_message() {
    let s = setup(opus_per_day(1)).await;
    assert_eq!(
        s.client
            .send(&Turn::prompt("sess-1", 1, "hello"))
            .await
            .status,
        200
    );
    assert!(delivered(&s).await);
    let blocked = s.client.send(&Turn::prompt("sess-1", 2, "again")).await;
    assert_eq!(blocked.status, 400);
    assert_eq!(blocked.json()["error"]["type"], "invalid_request_error");
    let message = blocked.error_message();
    assert!(
        message.contains("Your daily opus limit is used up: 1 of 1 prompts today"),
        "{message}"
    );
    assert!(message.contains("Alice"), "{message}");
    assert!(!message.contains('"'));
    assert!(
        blocked
            .headers
            .keys()
            .all(|h| !h.as_str().starts_with("anthropic-ratelimit"))
    );
    assert_eq!(
        s.upstream.messages_requests().len(),
        1,
        "the block never reached Anthropic"
    );
    // Sonnet is not limited.
    let sonnet = s
        .client
        .send(&Turn::prompt("sess-2", 1, "hi").model("claude-sonnet-5-5"))
        .await;
    assert_eq!(sonnet.status, 200);
    assert!(delivered(&s).await);
    assert_eq!(s.server.usage_today(s.user_id).await.prompts, 2);
    // The block reached the server's event log.
    let events = s
        .server
        .get(&format!("/events?user_id={}", s.user_id))
        .await;
    assert!(events.to_string().contains("blocked"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_error_then_fallback_and_a_cut_stream_count_once() {
    let s = setup(opus_per_day(10)).await;
    let turn = Turn::prompt("sess-1", 1, "tell me something");
    s.upstream.push_reply(Reply::MidStreamError {
        usage: Usage::new(50, 0, 0, 0),
    });
    let failed = s.client.send(&turn).await;
    assert!(failed.body.contains("overloaded_error"));
    let fallback = s.client.send(&turn.clone().not_streaming()).await;
    assert_eq!(fallback.status, 200);
    assert!(fallback.json()["usage"]["input_tokens"].as_u64().is_some());

    let cut_turn = Turn::prompt("sess-1", 2, "and more");
    s.upstream.push_reply(Reply::Drop {
        usage: Usage::new(60, 0, 0, 0),
    });
    assert!(
        s.client
            .try_send(&cut_turn)
            .await
            .is_none_or(|a| a.text() != "hi from the fake upstream")
    );
    assert_eq!(s.client.send(&cut_turn).await.status, 200);
    assert!(delivered(&s).await);
    let usage = s.server.usage_today(s.user_id).await;
    assert_eq!(usage.prompts, 2);
    // The two cut replies never reported their final usage: their output is
    // estimated from what they carried, never less than what was reported.
    let reported = s.upstream.reported_usage();
    let metered = usage.token_usage();
    assert_eq!(metered.input_tokens, reported.input_tokens);
    assert_eq!(
        metered.cache_read_input_tokens,
        reported.cache_read_input_tokens
    );
    assert!(
        metered.output_tokens > reported.output_tokens,
        "{metered:?} {reported:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_pass_through_as_they_arrive() {
    use futures_util::StreamExt;
    let s = setup(opus_per_day(5)).await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    s.upstream.push_reply(Reply::Gated {
        first: "first words ".into(),
        rest: "and the rest".into(),
        gate: gate.clone(),
        usage: Usage::new(10, 5, 0, 0),
    });
    let mut stream = s
        .client
        .open(&Turn::prompt("sess-1", 1, "hi"))
        .await
        .bytes_stream();
    // The upstream holds the rest back until the first words reached the
    // client: a proxy that buffered the reply would never deliver them.
    let mut received = String::new();
    let first_arrived = tokio::time::timeout(WAIT, async {
        while !received.contains("first words") {
            let chunk = stream.next().await.expect("stream open").expect("chunk");
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        first_arrived.is_ok(),
        "the first chunk was held back: {received}"
    );
    assert!(!received.contains("and the rest"));
    gate.notify_one();
    while let Some(Ok(chunk)) = stream.next().await {
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("and the rest") && received.contains("message_stop"));
    assert!(delivered(&s).await);
    assert_eq!(s.server.usage_today(s.user_id).await.prompts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_cost_nothing() {
    let s = setup(opus_per_day(1)).await;
    let turn = Turn::prompt("sess-1", 1, "hello");
    s.upstream.push_reply(Reply::Error {
        status: 529,
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
    });
    assert_eq!(s.client.send(&turn).await.status, 529);
    // The retry of the same turn is allowed (the reservation stands) and counts.
    assert_eq!(s.client.send(&turn).await.status, 200);
    assert!(delivered(&s).await);
    assert_eq!(s.server.usage_today(s.user_id).await.prompts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_turn_fields_follow_the_team_setting() {
    let s = setup(opus_per_day(5)).await;
    // A curl-style request: no class header, no billing text.
    let plain = |text: &str| {
        json!({"model": "claude-opus-5-5", "max_tokens": 100,
               "messages": [{"role": "user", "content": text}]})
        .to_string()
        .into_bytes()
    };
    let allowed = s.client.send_raw(vec![], plain("hello")).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    // A byte-identical retry of the same request is the same turn.
    assert_eq!(s.client.send_raw(vec![], plain("hello")).await.status, 200);
    assert!(delivered(&s).await);
    assert_eq!(s.server.usage_today(s.user_id).await.prompts, 1);

    let version = s.proxy.shared.policy().unwrap().policy.version;
    s.server
        .put("/settings", json!({"unidentified_clients": "deny"}))
        .await;
    assert!(
        eventually(WAIT, async || s
            .proxy
            .shared
            .policy()
            .unwrap()
            .policy
            .version
            > version)
        .await
    );
    let refused = s.client.send_raw(vec![], plain("another")).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .error_message()
            .contains("does not come from Claude Code"),
        "{}",
        refused.body
    );
    // Claude Code itself is unaffected.
    assert_eq!(
        s.client.send(&Turn::prompt("sess-1", 1, "hi")).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_utilization_reaches_the_server() {
    let s = setup(opus_per_day(5)).await;
    s.upstream.set_rate_limit_headers(&[
        ("anthropic-ratelimit-unified-status", "allowed"),
        ("anthropic-ratelimit-unified-5h-utilization", "0.42"),
        ("anthropic-ratelimit-unified-5h-reset", "1795353600"),
        ("anthropic-ratelimit-unified-7d-utilization", "0.17"),
    ]);
    assert_eq!(
        s.client.send(&Turn::prompt("sess-1", 1, "hi")).await.status,
        200
    );
    let seen = eventually(WAIT, async || {
        let subscription = s.server.get("/subscription").await;
        subscription.to_string().contains("0.42")
    })
    .await;
    assert!(seen, "{}", s.server.get("/subscription").await);
    // Kept with the account the request named, as that subscription's history.
    let subscriptions = s.server.get("/subscriptions").await;
    let account = &subscriptions["subscriptions"][0];
    assert_eq!(account["account_uuid"], LAB_ACCOUNT, "{subscriptions}");
    assert_eq!(account["origin"], "seen");
    assert_eq!(account["latest"]["windows"]["7d"]["utilization"], 0.17);
    let history = s
        .server
        .get(&format!(
            "/subscriptions/{}/history?range=3h",
            account["id"]
        ))
        .await;
    assert_eq!(history["points"][0]["five_hour"], 0.42, "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_huge_bodies_are_refused_cleanly() {
    let s = setup(opus_per_day(5)).await;
    let headers = vec![("x-claude-code-request-class".to_owned(), "main".to_owned())];
    let broken = s
        .client
        .send_raw(headers.clone(), b"{\"model\": \"claude-opus\", ".to_vec())
        .await;
    assert_eq!(broken.status, 400);
    assert!(
        broken
            .error_message()
            .contains("could not read this request"),
        "{}",
        broken.body
    );
    // Anthropic takes 32 MB; so does ccgate by default.
    let huge = vec![b'x'; 33 * 1024 * 1024];
    let refused = s.client.send_raw(headers, huge).await;
    assert_eq!(refused.status, 413);
    assert!(refused.error_message().contains("larger than 32 MB"));
    assert!(s.upstream.messages_requests().is_empty());
    // The daemon is still serving.
    assert_eq!(
        s.client.send(&Turn::prompt("sess-1", 1, "hi")).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_endpoint_reports_usage_and_server_health() {
    let s = setup(opus_per_day(3)).await;
    assert_eq!(
        s.client.send(&Turn::prompt("sess-1", 1, "hi")).await.status,
        200
    );
    assert!(delivered(&s).await);
    let status: serde_json::Value =
        reqwest::get(format!("http://{}/ccgate/status", s.proxy.address))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(status["server"]["reachable"], true);
    assert_eq!(status["pending_events"], 0);
    let limits = &status["report"]["limits"][0];
    assert_eq!(
        (limits["used"].as_u64(), limits["remaining"].as_u64()),
        (Some(1), Some(2))
    );
    let _ = &s.machine;
}
