//! Delivers ledger events to the server in order, with backoff while it is
//! down. The server dedupes by event id, so a batch resent after a lost
//! acknowledgement is counted once.

use std::sync::Arc;
use std::time::Duration;

use ccgate_quota::wire::{EventsRequest, MAX_EVENTS_PER_BATCH};
use jiff::Timestamp;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::state::Shared;

/// How often the sender looks for work even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(5);

pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shared.outbox.woken() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = crate::stopped(&mut shutdown) => return,
        }
        loop {
            match send_one_batch(&shared).await {
                Ok(true) => {
                    backoff.reset();
                    continue;
                }
                Ok(false) => break,
                Err(()) => {
                    let wait = backoff.next_delay();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = crate::stopped(&mut shutdown) => return,
                    }
                    break;
                }
            }
        }
    }
}

/// Sends the oldest pending events; `Ok(true)` when something was delivered.
async fn send_one_batch(shared: &Arc<Shared>) -> Result<bool, ()> {
    let unsaved = shared.outbox.unsaved();
    let room = MAX_EVENTS_PER_BATCH.saturating_sub(unsaved.len());
    let stored = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.ledger.unacked(room))
            .await
            .map_err(|_| ())?
    };
    let stored = match stored {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!("cannot read the ledger: {error}");
            return Err(());
        }
    };
    let subscription = shared.subscription.take_unsent();
    if stored.is_empty() && unsaved.is_empty() && subscription.is_none() {
        return Ok(false);
    }
    let seqs: Vec<i64> = stored.iter().map(|(seq, _)| *seq).collect();
    let unsaved_ids: Vec<_> = unsaved.iter().map(|e| e.id).collect();
    let request = EventsRequest {
        events: unsaved
            .into_iter()
            .chain(stored.into_iter().map(|(_, event)| event))
            .collect(),
        subscription,
    };
    match shared.link.send_events(&request).await {
        Ok(answer) => {
            shared.link_health.answered();
            let acked = {
                let shared = shared.clone();
                let seqs = seqs.clone();
                tokio::task::spawn_blocking(move || shared.ledger.ack(&seqs, Timestamp::now()))
                    .await
                    .map_err(|_| ())?
            };
            if let Err(error) = acked {
                // They will be sent again and deduplicated by the server.
                tracing::error!("cannot mark events as sent: {error}");
            }
            let included = seqs
                .last()
                .copied()
                .unwrap_or_else(|| shared.outbox.acked_through());
            shared.outbox.advance_acked(included);
            shared.outbox.forget_unsaved(&unsaved_ids);
            shared
                .accounting
                .acknowledged(&unsaved_ids, answer.usage, included);
            if answer.policy_version > shared.policy_state.version() {
                shared.sync_wakeup.notify_one();
            }
            tracing::debug!(
                accepted = answer.accepted,
                duplicates = answer.duplicates,
                "events delivered"
            );
            Ok(true)
        }
        Err(error) => {
            if request.subscription.is_some() {
                shared.subscription.resend();
            }
            tracing::warn!("events not delivered, will retry: {error}");
            shared.link_health.failed(&error);
            Err(())
        }
    }
}
