//! What happens when things break: the server goes away, the daemon dies
//! mid-stream, there is no policy at all, the admin pulls the kill switch.

use std::time::Duration;

use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::machine::TestMachine;
use ccgate_tests::outage::Relay;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::{FakeAnthropic, Reply, Usage};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

fn opus_per_day(n: i64) -> serde_json::Value {
    json!([{"type": "per_model", "model": "opus", "window": "daily", "value": n}])
}

/// A machine whose proxy reaches the server through a relay that can fail.
async fn behind_relay(server: &TestServer, limits: serde_json::Value) -> (i64, TestMachine, Relay) {
    let (user_id, code) = server.create_user("Alice", limits).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let relay = Relay::start(server.address).await;
    machine.set_server_url(&relay.url());
    (user_id, machine, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_decides_locally_and_replays_everything_once() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, machine, relay) = behind_relay(&server, opus_per_day(3)).await;
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    assert_eq!(client.send(&Turn::prompt("s", 1, "one")).await.status, 200);
    assert!(ccgate_tests::settled(&proxy, WAIT).await);

    relay.go_down();
    assert_eq!(client.send(&Turn::prompt("s", 2, "two")).await.status, 200);
    let turn = Turn::prompt("s", 3, "please run echo lab");
    let asked = client.send(&turn).await;
    assert_eq!(asked.status, 200);
    assert_eq!(client.send(&turn.continuation(&asked)).await.status, 200);
    // Three used, offline: the fourth is refused from the cached policy.
    let blocked = client.send(&Turn::prompt("s", 4, "four")).await;
    assert_eq!(blocked.status, 400);
    assert!(
        blocked.error_message().contains("3 of 3 prompts today"),
        "{}",
        blocked.body
    );
    // Three replies and the block wait in the ledger.
    assert!(ccgate_tests::recorded(&proxy, WAIT).await);
    assert_eq!(proxy.shared.ledger.unacked_count().unwrap(), 4);
    assert_eq!(
        server.usage_today(user_id).await.prompts,
        1,
        "the server saw nothing yet"
    );

    relay.come_back();
    let replayed = ccgate_tests::settled(&proxy, Duration::from_secs(60)).await;
    assert!(replayed, "{:?}", proxy.shared.health());
    let usage = server.usage_today(user_id).await;
    assert_eq!(usage.prompts, 3);
    assert_eq!(usage.token_usage(), upstream.reported_usage());
    let events = server
        .get(&format!("/events?user_id={user_id}&type=blocked"))
        .await;
    assert!(
        events.to_string().contains("offline") || events.to_string().contains("decided_offline"),
        "{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_stream_keeps_its_ledger_and_counts_once_after_restart() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, machine, relay) = behind_relay(&server, opus_per_day(10)).await;
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    relay.go_down();
    let first = Turn::prompt("s", 1, "one");
    assert_eq!(client.send(&first).await.status, 200);
    assert!(ccgate_tests::recorded(&proxy, WAIT).await);
    assert_eq!(proxy.shared.ledger.unacked_count().unwrap(), 1);

    // A slow reply is streaming when the daemon dies.
    upstream.push_reply(Reply::slow_text(
        "a long answer",
        Usage::new(40, 9, 0, 0),
        40,
        Duration::from_millis(50),
    ));
    let second = Turn::prompt("s", 2, "two");
    let open = client.open(&second).await;
    let mut stream = open.bytes_stream();
    assert!(stream.next().await.is_some(), "the reply started");
    proxy.abort();
    while let Some(Ok(_)) = stream.next().await {}

    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    assert_eq!(
        proxy.shared.ledger.unacked_count().unwrap(),
        1,
        "the first event survived"
    );
    // The CLI retries the cut turn; a retry of the counted first turn is not a new prompt.
    assert_eq!(client.send(&second).await.status, 200);
    assert_eq!(client.send(&first).await.status, 200);
    relay.come_back();
    assert!(ccgate_tests::settled(&proxy, Duration::from_secs(60)).await);
    assert_eq!(server.usage_today(user_id).await.prompts, 2);
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_policy_prompts_are_denied_with_the_reason() {
    let upstream = FakeAnthropic::start().await;
    let machine = TestMachine::unregistered("http://127.0.0.1:9");
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    let denied = client.send(&Turn::prompt("s", 1, "hello")).await;
    assert_eq!(denied.status, 400);
    let message = denied.error_message();
    assert!(message.contains("no ccgate policy"), "{message}");
    assert!(message.contains("fails closed"), "{message}");
    assert!(message.contains("http://127.0.0.1:9"), "{message}");
    assert!(upstream.messages_requests().is_empty());
    // Background calls are refused too: there is no policy to allow them.
    let mut background = Turn::prompt("s", 1, "title");
    background.class = "auxiliary";
    assert_eq!(client.send(&background).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_cuts_a_running_reply_and_blocks_the_rest() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (user_id, code) = server.create_user("Alice", opus_per_day(10)).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    assert!(eventually(WAIT, async || proxy.shared.health().live_link).await);

    upstream.push_reply(Reply::slow_text(
        "x".repeat(200).as_str(),
        Usage::new(10, 200, 0, 0),
        200,
        Duration::from_millis(50),
    ));
    let turn = Turn::prompt("s", 1, "write a long story");
    let mut stream = client.open(&turn).await.bytes_stream();
    assert!(stream.next().await.is_some());
    server
        .put(&format!("/users/{user_id}"), json!({"status": "killed"}))
        .await;
    let mut received = String::new();
    let cut = tokio::time::timeout(WAIT, async {
        while let Some(Ok(chunk)) = stream.next().await {
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(cut.is_ok(), "the reply was not cut");
    assert!(received.contains("ccgate stopped this reply"), "{received}");
    assert!(!received.contains("message_stop"));

    // The CLI resends the turn; it is refused with the kill message.
    let refused = client.send(&turn.clone().not_streaming()).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.error_message().contains("revoked"),
        "{}",
        refused.body
    );
    let fresh = client.send(&Turn::prompt("s", 2, "hello?")).await;
    assert!(fresh.error_message().contains("revoked"));

    server
        .put(&format!("/users/{user_id}"), json!({"status": "active"}))
        .await;
    assert!(
        eventually(WAIT, async || client
            .send(&Turn::prompt("s", 3, "back"))
            .await
            .status
            == 200)
        .await
    );
}

/// Revoking one device (not its person): its next prompt is refused with a
/// message that says the server no longer accepts it, and never reaches
/// Anthropic; the person's other work is not the proxy's to decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_refuses_prompts_and_says_why() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (_, code) = server.create_user("Alice", opus_per_day(5)).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    assert_eq!(client.send(&Turn::prompt("s", 1, "one")).await.status, 200);

    server
        .delete(&format!("/devices/{}", machine.device_id))
        .await;
    let refused = client.send(&Turn::prompt("s", 2, "two")).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let message = refused.error_message();
    assert!(
        message.contains("no longer accepts this machine") && message.contains("revoked"),
        "{message}"
    );
    assert_eq!(upstream.messages_requests().len(), 1);
    assert!(
        eventually(WAIT, async || proxy.shared.link_health.get().unauthorized).await,
        "the proxy's health shows the server refusing it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_two_sessions_cannot_both_take_the_last_prompt() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (_, machine, relay) = behind_relay(&server, opus_per_day(1)).await;
    let proxy = machine.start_proxy(&upstream).await;
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    relay.go_down();
    upstream.set_responder(|_| {
        Reply::slow_text("slow", Usage::new(5, 5, 0, 0), 5, Duration::from_millis(40))
    });
    let (turn_a, turn_b) = (
        Turn::prompt("session-a", 1, "a"),
        Turn::prompt("session-b", 1, "b"),
    );
    let (a, b) = tokio::join!(client.send(&turn_a), client.send(&turn_b));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 400]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_hosts_are_tunnelled_untouched() {
    use ccgate_proxy::config::UpstreamOverrides;
    use ccgate_proxy::daemon::{DaemonOptions, start};
    let upstream = FakeAnthropic::start().await;
    let machine = TestMachine::unregistered("http://127.0.0.1:9");
    let mut options = DaemonOptions::new(machine.paths.clone());
    options.overrides = UpstreamOverrides {
        connect_to: Some(upstream.connect_to()),
        ca_file: Some(upstream.ca_file()),
        refuse_other_hosts: false,
    };
    let proxy = start(
        options,
        Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
    )
    .await
    .unwrap();
    // An echo server stands for github.com.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_address = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = echo.accept().await.unwrap();
        let (mut reader, mut writer) = socket.into_split();
        let _ = tokio::io::copy(&mut reader, &mut writer).await;
    });
    let mut tunnel = tokio::net::TcpStream::connect(proxy.address).await.unwrap();
    tunnel
        .write_all(
            format!("CONNECT {echo_address} HTTP/1.1\r\nHost: {echo_address}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = [0u8; 128];
    let n = tunnel.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    // Bytes that look like TLS pass unchanged: nothing is intercepted.
    let hello = b"\x16\x03\x01 not really TLS";
    tunnel.write_all(hello).await.unwrap();
    let mut echoed = vec![0u8; hello.len()];
    tunnel.read_exact(&mut echoed).await.unwrap();
    assert_eq!(echoed, hello);
}
