//! Keeps the policy fresh: a sync at start and on demand, a live stream that
//! brings kill, pause and limit changes within a second, and a periodic sync
//! while the stream is down.

use std::sync::Arc;
use std::time::Duration;

use ccgate_quota::wire::{SyncRequest, SyncResponse};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::link::LinkError;
use crate::sse::SseParser;
use crate::state::Shared;

/// Sync period while the live stream is open (a safety net) and while it is not.
const SYNC_WITH_STREAM: Duration = Duration::from_secs(300);
const SYNC_WITHOUT_STREAM: Duration = Duration::from_secs(20);

pub async fn run_sync(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), SYNC_WITHOUT_STREAM);
    loop {
        let included = shared.outbox.acked_through();
        let request = SyncRequest {
            device: Some(shared.device_info()),
        };
        let wait = match shared.link.sync(&request).await {
            Ok(answer) => {
                shared.link_health.answered();
                shared.apply_sync(answer, included, true);
                backoff.reset();
                if shared.health().live_link {
                    SYNC_WITH_STREAM
                } else {
                    SYNC_WITHOUT_STREAM
                }
            }
            Err(error) => {
                tracing::warn!("sync failed: {error}");
                shared.link_health.failed(&error);
                backoff.next_delay()
            }
        };
        tokio::select! {
            _ = shared.sync_wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
    }
}

pub async fn run_stream(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));
    loop {
        tokio::select! {
            result = follow_stream(&shared, &mut backoff) => {
                shared.link_health.set_live_link(false);
                if let Err(error) = result {
                    tracing::debug!("live stream closed: {error}");
                    if matches!(error, LinkError::Unauthorized) {
                        shared.link_health.failed(&error);
                    }
                }
            }
            _ = crate::stopped(&mut shutdown) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
    }
}

fn wanted(name: &str) -> bool {
    name == "sync"
}

async fn follow_stream(shared: &Arc<Shared>, backoff: &mut Backoff) -> Result<(), LinkError> {
    let response = shared.link.open_stream().await?;
    shared.link_health.set_live_link(true);
    shared.link_health.answered();
    backoff.reset();
    let mut parser = SseParser::new(wanted, |_| false);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| LinkError::Unreachable(e.to_string()))?;
        parser.feed(&chunk, &mut |name, data| {
            if name != "sync" {
                return;
            }
            match serde_json::from_slice::<SyncResponse>(data) {
                Ok(sync) => {
                    let included = shared.outbox.acked_through();
                    shared.apply_sync(sync, included, true);
                }
                Err(error) => tracing::warn!("unreadable live update: {error}"),
            }
        });
    }
    Err(LinkError::Unreachable(
        "the server closed the live stream".into(),
    ))
}
