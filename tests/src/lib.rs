//! Test support shared by the end-to-end tests: the fake Anthropic upstream
//! and helpers that start the real parts in-process.

pub mod claude_cli;
pub mod client;
pub mod installed;
pub mod machine;
pub mod outage;
pub mod server;
pub mod upstream;

use std::time::Duration;

/// Polls `check` every 20 ms until it holds or `limit` passes; returns
/// whether it held. Tests assert on the result, never on the time taken.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
