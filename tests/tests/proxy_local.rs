//! The proxy's own endpoints (`/ccgate/status`, `/ccgate/sync`) answer only
//! this machine's tools: a web page that rebinds its host name to 127.0.0.1
//! gets nothing, and a loop of local syncs does not become a loop of server
//! syncs.

use ccgate_tests::scenario::Scenario;
use reqwest::StatusCode;

fn direct() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_rebound_to_loopback_cannot_read_the_status() {
    let scenario = Scenario::start(5).await;
    let port = scenario.proxy.address.port();
    let url = format!("http://127.0.0.1:{port}/ccgate/status");
    let client = direct();

    let ours = client.get(&url).send().await.unwrap();
    assert_eq!(ours.status(), StatusCode::OK);
    let report: serde_json::Value = ours.json().await.unwrap();
    assert_eq!(report["listen"], format!("127.0.0.1:{port}"));

    // What a browser sends after `evil.example` resolves to 127.0.0.1.
    for host in [format!("evil.example:{port}"), "127.0.0.1".to_owned()] {
        let rebound = client.get(&url).header("host", &host).send().await.unwrap();
        assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        let body = rebound.text().await.unwrap();
        assert!(!body.contains("user"), "{host}: {body}");
        let sync = client
            .post(format!("http://127.0.0.1:{port}/ccgate/sync"))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(sync.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_sync_requests_are_spaced_out() {
    let scenario = Scenario::start(5).await;
    let url = format!("http://{}/ccgate/sync", scenario.proxy.address);
    let client = direct();
    let mut accepted = 0;
    let mut refused = 0;
    let started = std::time::Instant::now();
    for _ in 0..300 {
        let reply = client.post(&url).send().await.unwrap();
        match reply.status() {
            StatusCode::ACCEPTED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(reply.headers()["retry-after"], "2");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    // At most one wake-up per two seconds reaches the sync loop, however
    // slow this machine is; the first is taken.
    let windows = started.elapsed().as_secs() / 2 + 1;
    assert!(accepted >= 1, "{accepted}");
    assert!(
        accepted <= windows,
        "accepted {accepted} in {windows} windows, refused {refused}"
    );
}
