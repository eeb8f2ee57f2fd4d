//! The agent API's live stream (`GET /api/agent/v1/stream`) as a device reads it.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::TestServer;

/// Reads server-sent events, yielding each `data:` payload of a `sync` event.
pub struct SseReader {
    stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>,
    >,
    buffer: String,
    pings: usize,
}

impl SseReader {
    pub async fn open(server: &TestServer, token: &str) -> Self {
        let response = server
            .request(Method::GET, "/api/agent/v1/stream")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            pings: 0,
        }
    }

    pub async fn next_sync(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.starts_with(": ping") || block.starts_with(":ping") {
                    self.pings += 1;
                    continue;
                }
                let mut name = "";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if name == "sync" {
                    return serde_json::from_str(&data).unwrap();
                }
                continue;
            }
            let chunk = self.stream.next().await.expect("stream ended").unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

impl SseReader {
    /// The next `sync` message, or `None` if none comes within `limit`.
    pub async fn sync_within(&mut self, limit: Duration) -> Option<Value> {
        tokio::time::timeout(limit, self.next_sync()).await.ok()
    }

    /// Reads `sync` messages until one satisfies `wanted`, for up to `limit`
    /// in all; that message.
    pub async fn sync_where(&mut self, limit: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let sync = self
                .sync_within(left)
                .await
                .unwrap_or_else(|| panic!("no sync as wanted within {limit:?}"));
            if wanted(&sync) {
                return sync;
            }
        }
    }
}
