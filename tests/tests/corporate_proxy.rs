//! A developer machine that reaches the internet only through the
//! network's HTTP proxy: `ccgate setup --upstream-proxy URL --extra-ca FILE`,
//! then the daemon reaches Anthropic through that proxy (CONNECT), trusting
//! the proxy's CA, and tunnels Claude Code's other hosts through it too.
//! The "corporate proxy" is a CONNECT proxy on 127.0.0.1 that opens only
//! api.anthropic.com:443 (to the fake Anthropic) and records every target.

use std::time::Duration;

use ccgate_installer::setup::setup;
use ccgate_proxy::config::{ProxyConfig, UpstreamOverrides};
use ccgate_proxy::daemon::{self, DaemonOptions};
use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::installed::InstalledMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::tunnel::Tunnel;
use ccgate_tests::upstream::FakeAnthropic;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_corporate_proxy_everything_goes_through_it() {
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let corporate = Tunnel::start(upstream.connect_to().parse().unwrap()).await;
    let limits = json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 5}]);
    let (user_id, code) = server.create_user("Alice", limits).await;
    let machine = InstalledMachine::prepare();
    let mut options = machine.options(&server.url, Some(&code));
    options.upstream_proxy = Some(corporate.url());
    // The proxy inspects TLS: its CA (here the fake Anthropic's) is trusted.
    options.extra_ca = Some(upstream.ca_file());
    let mut printed = Vec::new();
    setup(&options, &mut printed)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", String::from_utf8_lossy(&printed)));
    let config = ProxyConfig::load(&machine.paths.config_file()).unwrap();
    assert_eq!(
        config.upstream_proxy.as_deref(),
        Some(corporate.url().as_str())
    );
    let installed_ca = machine.paths.extra_ca();
    assert_eq!(config.extra_ca.as_deref(), Some(installed_ca.as_path()));
    assert_eq!(
        std::fs::read(&installed_ca).unwrap(),
        std::fs::read(upstream.ca_file()).unwrap()
    );

    // The daemon as installed: no test dial override, only the config.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", machine.port))
        .await
        .unwrap();
    let mut daemon_options = DaemonOptions::new(machine.paths.clone());
    daemon_options.overrides = UpstreamOverrides::default();
    let proxy = daemon::start(daemon_options, Some(listener)).await.unwrap();
    assert!(eventually(WAIT, async || proxy.shared.policy().is_some()).await);
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert());
    let answer = client.send(&Turn::prompt("s", 1, "hello")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        corporate.anthropic_tunnels() >= 1,
        "{:?}",
        corporate.connects()
    );
    assert!(ccgate_tests::settled(&proxy, WAIT).await);
    assert_eq!(server.usage_today(user_id).await.prompts, 1);

    // A tunnel Claude Code opens to another host goes through it as well
    // (`.invalid` never resolves: nothing here could reach the internet).
    let mut stream = tokio::net::TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(b"CONNECT other.invalid:443 HTTP/1.1\r\nHost: other.invalid:443\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..read])
    );
    let asked = eventually(WAIT, async || {
        corporate
            .connects()
            .iter()
            .any(|t| t == "other.invalid:443")
    })
    .await;
    assert!(asked, "{:?}", corporate.connects());
    proxy.stop().await.unwrap();
}
