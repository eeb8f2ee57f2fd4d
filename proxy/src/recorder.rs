//! Turns each reply's ending into a ledger event: decides whether it counted
//! the turn's prompt, stores the event durably, updates the local usage view
//! and wakes the sender.

use ccgate_quota::wire::{AgentEvent, EventBody, Outcome, RequestEvent};
use ccgate_quota::{CreditWeights, Totals};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::ledger::{Metered, StoredUsage};
use crate::state::{Exchange, Shared};
use crate::tap::Ending;

/// Whether the model produced a reply the person received (in part or whole).
fn reply_succeeded(ending: &Ending<Exchange>) -> bool {
    let ok_status = (200..300).contains(&ending.status);
    let ended_well = !matches!(
        ending.outcome,
        Outcome::UpstreamError | Outcome::UpstreamCut
    );
    // A non-streaming 2xx arrives after generation finished.
    ok_status && ended_well && (ending.reading.started || !ending.exchange.stream)
}

impl Shared {
    /// Stores an event durably; if the ledger fails (disk full), keeps it in
    /// memory so it is still sent and counted.
    pub fn store_event(
        &self,
        event: AgentEvent,
        metered: Option<Metered>,
        counted_turn: Option<&str>,
    ) {
        match self.ledger.append(&event, metered, counted_turn) {
            Ok(seq) => {
                if let Some(metered) = metered {
                    self.usage.lock().expect("usage lock").add(StoredUsage {
                        seq,
                        at: event.at,
                        metered,
                    });
                }
            }
            Err(error) => {
                tracing::error!(
                    "the ledger cannot store event {}: {error}; keeping it in memory",
                    event.id
                );
                if let Some(metered) = metered {
                    self.usage
                        .lock()
                        .expect("usage lock")
                        .add_unsaved(event.id, event.at, metered);
                }
                self.unsaved.lock().expect("unsaved lock").push(event);
            }
        }
        self.sender_wakeup.notify_one();
    }

    pub fn record_ending(&self, ending: Ending<Exchange>) {
        let exchange = &ending.exchange;
        let now = self.now();
        let counted = exchange.prompt_attempt
            && reply_succeeded(&ending)
            && exchange.turn_key.as_deref().is_some_and(|key| {
                self.turns
                    .lock()
                    .expect("turns lock")
                    .count(key, exchange.family, now)
            });
        let weights = self
            .policy()
            .map_or_else(CreditWeights::default, |p| p.policy.credit_weights);
        let usage = ending.reading.usage;
        let totals = Totals {
            prompts: u64::from(counted),
            credits: if counted {
                weights.weight(exchange.family)
            } else {
                0
            },
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
        };
        let event = AgentEvent {
            id: uuid::Uuid::now_v7(),
            at: now,
            body: EventBody::Request(RequestEvent {
                model: exchange.model.clone(),
                kind: exchange.kind,
                turn_key: exchange.turn_key.clone(),
                session_id: exchange.session_id.clone(),
                prompt_counted: counted,
                status: ending.status,
                outcome: ending.outcome,
                stop_reason: ending.reading.stop_reason.clone(),
                usage,
                duration_ms: ending.elapsed_ms,
                decided_offline: exchange.decided_offline,
            }),
        };
        tracing::debug!(
            kind = exchange.kind.as_str(),
            counted,
            status = ending.status,
            outcome = ?ending.outcome,
            elapsed_ms = ending.elapsed_ms,
            "reply ended"
        );
        let metered = Metered {
            family: exchange.family,
            totals,
        };
        self.store_event(
            event,
            (!totals.is_zero()).then_some(metered),
            counted.then_some(exchange.turn_key.as_deref()).flatten(),
        );
    }
}

/// Records endings until shutdown, then drains what is left.
pub async fn run(
    shared: std::sync::Arc<Shared>,
    mut endings: UnboundedReceiver<Ending<Exchange>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            ending = endings.recv() => match ending {
                Some(ending) => record(&shared, ending).await,
                None => return,
            },
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
    while let Ok(ending) = endings.try_recv() {
        record(&shared, ending).await;
    }
}

async fn record(shared: &std::sync::Arc<Shared>, ending: Ending<Exchange>) {
    let shared = shared.clone();
    // The ledger writes with fsync: keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || {
        shared.record_ending(ending);
        shared
            .pending_writes
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    })
    .await;
}
