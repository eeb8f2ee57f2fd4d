//! Test support shared by the end-to-end tests: the fake Anthropic upstream
//! and helpers that start the real parts in-process.

pub mod bundle;
pub mod claude_cli;
pub mod client;
pub mod installed;
pub mod interactive;
pub mod machine;
pub mod outage;
pub mod scenario;
pub mod server;
pub mod tmux;
pub mod tunnel;
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

/// Waits until everything the proxy saw is in its ledger and acknowledged
/// by the server (at most `limit`); returns whether it got there.
pub async fn settled(proxy: &ccgate_proxy::daemon::RunningDaemon, limit: Duration) -> bool {
    eventually(limit, async || {
        proxy.shared.pending_writes() == 0
            && proxy.shared.ledger.unacked_count().unwrap_or(1) == 0
            && proxy.shared.unsaved_count() == 0
    })
    .await
}

/// Waits until everything the proxy saw is in its ledger (sent or not).
pub async fn recorded(proxy: &ccgate_proxy::daemon::RunningDaemon, limit: Duration) -> bool {
    eventually(limit, async || proxy.shared.pending_writes() == 0).await
}
