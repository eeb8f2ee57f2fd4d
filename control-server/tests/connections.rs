//! Issue 9: slow or half-open connections cannot starve real clients.
//! Requests must send their head within the header-read timeout, a
//! connection that moves nothing is closed after the idle timeout, and at
//! most `max_connections` are served at once (more wait their turn).

mod common;

use std::time::Duration;

use common::TestServer;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn address(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Waits (bounded) until the server closes `stream` or answers on it;
/// returns what it sent before closing.
async fn closed_by_server(mut stream: TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(outcome.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn half_sent_requests_do_not_starve_a_real_client() {
    let server = TestServer::start_with(|config| {
        config.header_read_timeout = Duration::from_secs(1);
        config.max_connections = 100;
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..230 {
        let mut stream = TcpStream::connect(address(&server)).await.unwrap();
        stream.write_all(b"GET /healthz HT").await.unwrap();
        slow.push(stream);
    }
    // A real client (a fresh connection) is answered within a bounded wait.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let response = client.get(server.path("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Every half-sent request is cut off.
    for stream in slow {
        closed_by_server(stream).await;
    }
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_the_idle_timeout() {
    let server = TestServer::start_with(|config| {
        config.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(
            b"POST /api/admin/login HTTP/1.1\r\nHost: ccgate\r\nContent-Type: application/json\r\n\
              Content-Length: 200\r\n\r\n{\"password\": \"",
        )
        .await
        .unwrap();
    let answer = closed_by_server(stream).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // The server still answers.
    let response = server
        .client
        .get(server.path("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_kept_alive_connection_serves_requests_then_closes_when_idle() {
    let server = TestServer::start_with(|config| {
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: ccgate\r\n\r\n";
    for _ in 0..3 {
        stream.write_all(request).await.unwrap();
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.unwrap();
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");
    }
    // No next request: the header-read timer closes it.
    assert_eq!(closed_by_server(stream).await, "");
}
