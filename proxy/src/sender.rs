//! Delivers ledger events to the server in order, with backoff while it is
//! down. The server dedupes by event id, so a batch resent after a lost
//! acknowledgement is counted once. Batches stay within the wire limits (in
//! events and in bytes), and an event the server refuses for good is set
//! aside on disk (quarantined) and reported, so it never holds up the rest.

use std::sync::Arc;
use std::time::Duration;

use ccgate_quota::limits::{MAX_BATCH_BYTES, MAX_EVENTS_PER_BATCH};
use ccgate_quota::wire::{AgentEvent, DeliveryFault, EventBody, EventsRequest, EventsResponse};
use jiff::Timestamp;
use tokio::sync::watch;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::state::Shared;

/// How often the sender looks for work even without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// Room kept in a batch for its envelope.
const ENVELOPE_BYTES: usize = 8 * 1024;

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
                Err(asked) => {
                    // The server's Retry-After, when it gave one, is the least wait.
                    let wait = backoff.next_delay().max(asked.unwrap_or_default());
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

/// One batch: events from memory first, then from the ledger, in order,
/// each fitted to the wire limits, until the batch is full in events or
/// bytes.
struct Batch {
    events: Vec<AgentEvent>,
    /// Ledger sequence number of each event (`None`: kept in memory).
    seqs: Vec<Option<i64>>,
    bytes: usize,
}

impl Batch {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            seqs: Vec::new(),
            bytes: ENVELOPE_BYTES,
        }
    }

    /// Adds `event` unless the batch is full; false when it did not fit.
    fn push(&mut self, mut event: AgentEvent, seq: Option<i64>) -> bool {
        event.fit_to_wire();
        let size = serde_json::to_vec(&event).map_or(0, |bytes| bytes.len()) + 1;
        let full = self.events.len() >= MAX_EVENTS_PER_BATCH || self.bytes + size > MAX_BATCH_BYTES;
        if full && !self.events.is_empty() {
            return false;
        }
        self.bytes += size;
        self.events.push(event);
        self.seqs.push(seq);
        true
    }

    fn ledger_seqs(&self) -> impl Iterator<Item = i64> + '_ {
        self.seqs.iter().flatten().copied()
    }

    fn memory_ids(&self) -> Vec<Uuid> {
        self.events
            .iter()
            .zip(&self.seqs)
            .filter(|(_, seq)| seq.is_none())
            .map(|(event, _)| event.id)
            .collect()
    }
}

/// Sends the oldest pending events; `Ok(true)` when something was
/// delivered; on failure, the wait the server asked for (if any).
async fn send_one_batch(shared: &Arc<Shared>) -> Result<bool, Option<Duration>> {
    let mut batch = Batch::new();
    for event in shared.outbox.unsaved() {
        if !batch.push(event, None) {
            break;
        }
    }
    let room = MAX_EVENTS_PER_BATCH.saturating_sub(batch.events.len());
    let stored = blocking(shared, move |shared| shared.ledger.unacked(room))
        .await
        .map_err(|()| None)?;
    let stored = match stored {
        Ok(stored) => stored,
        Err(error) => {
            tracing::error!("cannot read the ledger: {error}");
            return Err(None);
        }
    };
    if !stored.damaged.is_empty() {
        report_fault(shared, &stored.damaged[0].1).await;
    }
    for (seq, event) in stored.events {
        if !batch.push(event, Some(seq)) {
            break;
        }
    }
    if batch.events.is_empty() {
        return Ok(false);
    }
    // Utilization travels inside the request events it came with.
    let request = EventsRequest {
        events: std::mem::take(&mut batch.events),
        subscription: None,
    };
    match shared.link.send_events(&request).await {
        Ok(answer) => {
            shared.link_health.answered();
            delivered(shared, &batch, &request, answer).await;
            Ok(true)
        }
        Err(error) => {
            tracing::warn!("events not delivered, will retry: {error}");
            shared.link_health.failed(&error);
            Err(error.retry_after())
        }
    }
}

/// The server answered: what it took is acknowledged, what it refused is
/// quarantined (and reported), and the usage it sent becomes the snapshot.
async fn delivered(
    shared: &Arc<Shared>,
    batch: &Batch,
    request: &EventsRequest,
    answer: EventsResponse,
) {
    let refused: Vec<(Uuid, String)> = answer
        .refused
        .iter()
        .map(|r| (r.id, r.reason.clone()))
        .collect();
    let Outcome { acked, quarantine } = outcome(&request.events, &batch.seqs, &refused);
    let now = Timestamp::now();
    let written = blocking(shared, {
        let (acked, quarantine) = (acked.clone(), quarantine.clone());
        move |shared| {
            shared.ledger.quarantine(&quarantine, now)?;
            shared.ledger.ack(&acked, now)
        }
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        // They will be sent again and deduplicated by the server.
        tracing::error!("cannot mark events as sent: {written:?}");
    }
    let included = batch
        .ledger_seqs()
        .last()
        .unwrap_or_else(|| shared.outbox.acked_through());
    shared.outbox.advance_acked(included);
    let memory_ids = batch.memory_ids();
    shared.outbox.forget_unsaved(&memory_ids);
    shared
        .accounting
        .acknowledged(&memory_ids, answer.usage, included);
    if answer.policy_version > shared.policy_state.version() {
        shared.sync_wakeup.notify_one();
    }
    // A refused report of a fault would only repeat itself.
    let faults_only = refused.iter().all(|(id, _)| {
        request
            .events
            .iter()
            .any(|e| e.id == *id && matches!(e.body, EventBody::DeliveryFault(_)))
    });
    if !refused.is_empty() {
        tracing::error!(
            refused = refused.len(),
            "the server refused events; they are kept aside in the ledger: {}",
            refused[0].1
        );
        if !faults_only {
            report_fault(shared, &refused[0].1).await;
        }
    }
    tracing::debug!(
        accepted = answer.accepted,
        duplicates = answer.duplicates,
        refused = refused.len(),
        "events delivered"
    );
}

/// What the server's answer means for each event of the batch.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Ledger events the server has: acknowledged.
    acked: Vec<i64>,
    /// Ledger events it refused: set aside, with why.
    quarantine: Vec<(i64, String)>,
}

fn outcome(events: &[AgentEvent], seqs: &[Option<i64>], refused: &[(Uuid, String)]) -> Outcome {
    let reason_of = |id: &Uuid| {
        refused
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, why)| why.clone())
    };
    let mut outcome = Outcome {
        acked: Vec::new(),
        quarantine: Vec::new(),
    };
    for (event, seq) in events.iter().zip(seqs) {
        match (seq, reason_of(&event.id)) {
            (Some(seq), Some(reason)) => outcome.quarantine.push((*seq, reason)),
            (Some(seq), None) => outcome.acked.push(*seq),
            // Kept in memory (the disk was full): nowhere to set it aside.
            (None, Some(reason)) => {
                tracing::error!(id = %event.id, "the server refused an event kept in memory: {reason}");
            }
            (None, None) => {}
        }
    }
    outcome
}

/// Tells the admins that this device holds events back.
async fn report_fault(shared: &Arc<Shared>, reason: &str) {
    let quarantined = blocking(shared, |shared| shared.ledger.quarantined_count())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(1);
    let event = AgentEvent {
        id: Uuid::now_v7(),
        at: shared.now(),
        body: EventBody::DeliveryFault(DeliveryFault {
            quarantined: u32::try_from(quarantined).unwrap_or(u32::MAX),
            reason: reason.to_owned(),
        }),
    };
    shared.store_event_in_background(event);
}

/// Runs ledger work (it fsyncs) off the async workers.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    work: impl FnOnce(&Shared) -> T + Send + 'static,
) -> Result<T, ()> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || work(&shared))
        .await
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use ccgate_quota::wire::TamperEvent;

    use super::*;

    fn event(detail: &str) -> AgentEvent {
        AgentEvent {
            id: Uuid::now_v7(),
            at: Timestamp::now(),
            body: EventBody::Tamper(TamperEvent {
                path: "/etc/ccgate/config.toml".into(),
                what: "modified".into(),
                restored: true,
                detail: Some(detail.to_owned()),
            }),
        }
    }

    #[test]
    fn refused_events_are_set_aside_and_the_rest_acknowledged() {
        let events = [event("a"), event("b"), event("c")];
        let seqs = [None, Some(7), Some(8)];
        let refused = [(events[1].id, "too odd".to_owned())];
        assert_eq!(
            outcome(&events, &seqs, &refused),
            Outcome {
                acked: vec![8],
                quarantine: vec![(7, "too odd".into())],
            }
        );
    }

    #[test]
    fn batches_stop_at_the_byte_limit_but_always_take_one_event() {
        let mut batch = Batch::new();
        let big = "x".repeat(ccgate_quota::limits::MAX_TEXT_BYTES);
        let mut taken = 0;
        while batch.push(event(&big), Some(taken)) {
            taken += 1;
        }
        let bytes = serde_json::to_vec(&batch.events).unwrap().len();
        assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
        assert!(taken > 10);
        // An event is fitted on the way in, so even a huge one goes alone.
        let mut alone = Batch::new();
        assert!(alone.push(event(&"y".repeat(10 * MAX_BATCH_BYTES)), Some(1)));
        let EventBody::Tamper(t) = &alone.events[0].body else {
            unreachable!()
        };
        assert!(t.detail.as_ref().unwrap().len() <= ccgate_quota::limits::MAX_TEXT_BYTES);
    }
}
