//! A local process cannot push the root daemon out of memory: request
//! bodies being read share one budget, and a request that finds no room
//! within the wait gets a 503 Claude Code retries, instead of the daemon
//! buffering every body it is sent.

use std::time::Duration;

use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::machine::TestMachine;
use ccgate_tests::scenario::SETTLE;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_holding_the_budget_makes_others_wait_then_503() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let limits = json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 9}]);
    let (_, code) = server.create_user("Alice", limits).await;
    let machine = TestMachine::register(&server.url, &code).await;
    // One megabyte of bodies at a time: one unsized body takes it all.
    machine.edit_config(|config| {
        config.max_request_mb = 1;
        config.max_buffered_mb = 1;
        config.buffer_wait_ms = 500;
    });
    let proxy = machine.start_proxy(&upstream).await;
    assert!(eventually(SETTLE, async || proxy.shared.policy().is_some()).await);
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());

    // A client that starts a body of unknown length and stops sending.
    let (feed, chunks) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    feed.send(Ok(
        b"{\"model\": \"claude-opus-4-1\", \"messages\": [".to_vec()
    ))
    .await
    .unwrap();
    let stalled = {
        let client = client.clone();
        let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(chunks));
        tokio::spawn(async move { client.send_streamed(body).await })
    };
    let budget = &proxy.shared.body_budget;
    assert!(
        eventually(Duration::from_secs(10), async || budget.free_bytes() == 0).await,
        "the stalled body holds no room: {} bytes free",
        budget.free_bytes()
    );

    let refused = client.send(&Turn::prompt("s", 1, "hi")).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(
        refused.error_message().contains("too many large requests"),
        "{}",
        refused.body
    );
    assert!(upstream.messages_requests().is_empty());

    // The stalled client gives up; its room comes back and prompts flow.
    drop(feed);
    let ended = stalled
        .await
        .unwrap()
        .expect("the stalled request gets an answer");
    assert_eq!(ended.status, 400, "{}", ended.body);
    assert!(budget.free_bytes() > 0);
    assert_eq!(client.send(&Turn::prompt("s", 1, "hi")).await.status, 200);
}
