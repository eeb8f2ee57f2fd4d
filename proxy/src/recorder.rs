//! Turns each reply's ending into a ledger event: decides whether it counted
//! the turn's prompt, stores the event durably, updates the local usage view
//! and wakes the sender.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ccgate_quota::wire::{AgentEvent, EventBody, Outcome, RequestEvent};
use ccgate_quota::{CreditWeights, Totals};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::ledger::Metered;
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
    /// Stores an event durably (counting its usage locally at once); if the
    /// ledger fails (disk full), keeps it in memory so it is still sent.
    pub fn store_event(
        &self,
        event: AgentEvent,
        metered: Option<Metered>,
        counted_turn: Option<&str>,
    ) {
        if let Some(metered) = metered {
            self.usage
                .lock()
                .expect("usage lock")
                .add_unsaved(event.id, event.at, metered);
        }
        self.persist(event, metered, counted_turn);
    }

    /// Stores an event without metered usage off the async workers (the
    /// ledger fsyncs); counted in `pending_writes` until it is on disk.
    pub fn store_event_in_background(self: &Arc<Self>, event: AgentEvent) {
        self.pending_writes.fetch_add(1, Ordering::AcqRel);
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            shared.store_event(event, None, None);
            shared.pending_writes.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Writes an event whose usage is already in the local view.
    fn persist(&self, event: AgentEvent, metered: Option<Metered>, counted_turn: Option<&str>) {
        match self.ledger.append(&event, metered, counted_turn) {
            Ok(seq) => {
                if metered.is_some() {
                    self.usage.lock().expect("usage lock").saved(event.id, seq);
                }
            }
            Err(error) => {
                tracing::error!(
                    "the ledger cannot store event {}: {error}; keeping it in memory",
                    event.id
                );
                self.unsaved.lock().expect("unsaved lock").push(event);
            }
        }
        self.sender_wakeup.notify_one();
    }

    pub fn record_ending(&self, ending: Ending<Exchange>) {
        let exchange = &ending.exchange;
        let now = self.now();
        let weights = self
            .policy()
            .map_or_else(CreditWeights::default, |p| p.policy.credit_weights);
        let usage = ending.reading.usage;
        // Counting the turn drops its reservation; the same lock covers
        // adding the prompt to the local view, so an offline decision never
        // sees it in neither.
        let mut turns = self.turns.lock().expect("turns lock");
        let counted = exchange.prompt_attempt
            && reply_succeeded(&ending)
            && exchange
                .turn_key
                .as_deref()
                .is_some_and(|key| turns.count(key, exchange.family, now));
        let totals = Totals {
            prompts: u64::from(counted),
            credits: if counted {
                weights.weight(exchange.family)
            } else {
                0
            },
            ..Totals::from(usage)
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
                count_reason: counted.then_some(ccgate_quota::wire::CountReason::NewPrompt),
                estimated: false,
                credential: None,
            }),
        };
        let metered = (!totals.is_zero()).then_some(Metered {
            family: exchange.family,
            totals,
        });
        if let Some(metered) = metered {
            self.usage
                .lock()
                .expect("usage lock")
                .add_unsaved(event.id, event.at, metered);
        }
        drop(turns);
        tracing::debug!(
            kind = exchange.kind.as_str(),
            counted,
            status = ending.status,
            outcome = ?ending.outcome,
            elapsed_ms = ending.elapsed_ms,
            "reply ended"
        );
        self.persist(
            event,
            metered,
            counted.then_some(exchange.turn_key.as_deref()).flatten(),
        );
    }
}

/// Records endings until shutdown, then drains what is left.
pub async fn run(
    shared: Arc<Shared>,
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

async fn record(shared: &Arc<Shared>, ending: Ending<Exchange>) {
    let shared = Arc::clone(shared);
    // The ledger writes with fsync: keep it off the async workers. The
    // ending was counted in `pending_writes` when it was sent.
    let _ = tokio::task::spawn_blocking(move || {
        shared.record_ending(ending);
        shared.pending_writes.fetch_sub(1, Ordering::AcqRel);
    })
    .await;
}
