//! Periodic chores: give back reservations of prompts that never got a
//! successful reply, and prune old acknowledged events.

use std::sync::Arc;
use std::time::Duration;

use ccgate_quota::wire::{AgentEvent, EventBody};
use jiff::SignedDuration;
use tokio::sync::watch;

use crate::state::Shared;

const PERIOD: Duration = Duration::from_secs(30);
/// Acknowledged events are kept a week for diagnosis.
const KEEP_ACKED: SignedDuration = SignedDuration::from_hours(7 * 24);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PERIOD) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || chores(&shared)).await;
    }
}

fn chores(shared: &Shared) {
    let now = shared.now();
    let released = shared.accounting.expire(now);
    for (key, offline) in released {
        // The server holds a reservation only for prompts it allowed.
        if !offline {
            let event = AgentEvent {
                id: uuid::Uuid::now_v7(),
                at: now,
                body: EventBody::TurnReleased {
                    turn_key: key.to_string(),
                },
            };
            shared.store_event(event);
        }
    }
    if let Ok(before) = now.checked_sub(KEEP_ACKED)
        && let Err(error) = shared.ledger.prune(before)
    {
        tracing::warn!("cannot prune the ledger: {error}");
    }
}
