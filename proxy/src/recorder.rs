//! Turns each reply's ending into a ledger event: settles it in the books
//! (did it count its prompt, what did it use), stores it durably and wakes
//! the sender. A reply cut before its final usage is metered from what it
//! carried, and marked as estimated.

use std::sync::Arc;

use ccgate_quota::CreditWeights;
use ccgate_quota::wire::{AgentEvent, EventBody, Outcome, RequestEvent, TokenUsage};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::accounting::Settlement;
use crate::ledger::{Metered, TurnMemory};
use crate::meter::{Reading, estimated_input_tokens};
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

/// What a reply used: Anthropic's own figures when its final usage arrived;
/// otherwise an estimate (`true`) from what was carried, so that stopping a
/// reply early never makes it free.
fn metered_usage(ending: &Ending<Exchange>) -> (TokenUsage, bool) {
    let reading: &Reading = &ending.reading;
    if reading.final_usage {
        return (reading.usage, false);
    }
    if reading.started {
        let carried = reading.estimated_output_tokens();
        if carried > reading.usage.output_tokens {
            let usage = TokenUsage {
                output_tokens: carried,
                ..reading.usage
            };
            return (usage, true);
        }
        return (reading.usage, false);
    }
    // Nothing came back, but the request may have reached Anthropic: a
    // request abandoned before its first byte, or a 2xx cut before its start.
    let reached = ending.status == 0 || (200..300).contains(&ending.status);
    let abandoned = matches!(
        ending.outcome,
        Outcome::ClientAborted | Outcome::CutByCcgate | Outcome::UpstreamCut
    );
    if reached && abandoned {
        let usage = TokenUsage {
            input_tokens: estimated_input_tokens(ending.exchange.request_bytes),
            ..TokenUsage::default()
        };
        return (usage, true);
    }
    (reading.usage, false)
}

impl Shared {
    /// Stores an event without usage (a block, a tamper report, a release);
    /// if the ledger fails (disk full), keeps it in memory so it is still sent.
    pub fn store_event(&self, event: AgentEvent) {
        self.persist(event, None, &TurnMemory::default());
    }

    /// Stores an event (counted in the outbox until it is on disk) off the
    /// async workers: the ledger fsyncs.
    pub fn store_event_in_background(self: &Arc<Self>, event: AgentEvent) {
        let ticket = self.outbox.write_ticket();
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            shared.store_event(event);
            drop(ticket);
        });
    }

    /// Writes an event whose usage is already in the books.
    fn persist(&self, mut event: AgentEvent, metered: Option<Metered>, memory: &TurnMemory<'_>) {
        // Within the wire limits before it is on disk: the server takes it.
        event.fit_to_wire();
        match self.ledger.append(&event, metered, memory) {
            Ok(seq) => {
                if metered.is_some() {
                    self.accounting.stored(event.id, seq);
                }
            }
            Err(error) => {
                tracing::error!(
                    "the ledger cannot store event {}: {error}; keeping it in memory",
                    event.id
                );
                self.outbox.keep_unsaved(event);
            }
        }
        self.outbox.wake_sender();
    }

    pub fn record_ending(&self, ending: Ending<Exchange>) {
        let exchange = &ending.exchange;
        let now = self.now();
        let weights = self
            .policy()
            .map_or_else(CreditWeights::default, |p| p.policy.credit_weights);
        let (usage, estimated) = metered_usage(&ending);
        let key = exchange.resolution.key();
        let reason = exchange.resolution.count_reason();
        let event_id = uuid::Uuid::now_v7();
        // Counting the prompt drops its reservation; the books' lock covers
        // adding its usage too, so an offline decision never sees it in neither.
        let (counted, metered) = self.accounting.settle(Settlement {
            key,
            counts: reason.is_some() && reply_succeeded(&ending),
            usage,
            family: exchange.family,
            credit_weight: weights.weight(exchange.family),
            tool_uses: &ending.reading.tool_uses,
            event_id,
            at: now,
        });
        let event = AgentEvent {
            id: event_id,
            at: now,
            body: EventBody::Request(RequestEvent {
                model: exchange.model.clone(),
                kind: exchange.resolution.kind(),
                turn_key: Some(key.to_string()),
                session_id: exchange.session_id.clone(),
                prompt_counted: counted.is_some(),
                status: ending.status,
                outcome: ending.outcome,
                stop_reason: ending.reading.stop_reason.clone(),
                usage,
                duration_ms: ending.elapsed_ms,
                decided_offline: exchange.decided_offline,
                count_reason: counted.as_ref().and(reason),
                estimated,
                credential: exchange.credential,
                utilization: exchange.utilization.clone().map(Box::new),
                account: exchange.account.clone(),
            }),
        };
        tracing::debug!(
            kind = exchange.resolution.kind().as_str(),
            counted = counted.is_some(),
            status = ending.status,
            outcome = ?ending.outcome,
            elapsed_ms = ending.elapsed_ms,
            "reply ended"
        );
        let tool_uses = &ending.reading.tool_uses;
        let memory = TurnMemory {
            counted: counted.as_ref(),
            tool_uses: (!tool_uses.is_empty()).then_some((key, tool_uses.as_slice())),
        };
        self.persist(event, metered, &memory);
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
    // ending was counted in the outbox's pending writes when it was sent.
    let _ = tokio::task::spawn_blocking(move || {
        shared.record_ending(ending);
        shared.outbox.ending_written();
    })
    .await;
}
