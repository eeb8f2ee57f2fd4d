//! Keeps the team credential the policy names in the vault: fetched at
//! start, after every rotation (the policy's credential version changes)
//! and, while the server cannot be reached, retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::state::Shared;

/// A safety net: look even without a wake-up.
const RECHECK: Duration = Duration::from_secs(300);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    loop {
        let wait = match fetch_if_needed(&shared).await {
            Ok(()) => {
                backoff.reset();
                RECHECK
            }
            Err(()) => backoff.next_delay(),
        };
        tokio::select! {
            _ = shared.vault.wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
    }
}

async fn fetch_if_needed(shared: &Shared) -> Result<(), ()> {
    let Some(policy) = shared.policy() else {
        return Ok(());
    };
    let mode = policy.policy.credential;
    if !shared.vault.needs_fetch(&mode) {
        return Ok(());
    }
    match shared.link.credential().await {
        Ok(fetched) => {
            tracing::info!(
                subscription = fetched.subscription_id,
                version = fetched.version,
                "received the team credential"
            );
            if let Err(error) = shared.vault.store(fetched) {
                // Held in memory all the same; only a restart offline suffers.
                tracing::error!("cannot cache the team credential: {error}");
            }
            Ok(())
        }
        Err(error) => {
            tracing::warn!("cannot fetch the team credential: {error}");
            shared.link_health.failed(&error);
            Err(())
        }
    }
}
