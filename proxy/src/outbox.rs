//! Events on their way to the server: those the ledger could not store
//! (kept in memory, still sent), how many are seen but not yet written,
//! how far the server has acknowledged, and the sender's wake-up.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ccgate_quota::wire::AgentEvent;
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Outbox {
    /// Replies ended and blocks decided whose events are not in the ledger yet.
    pending_writes: Arc<AtomicUsize>,
    /// Events the ledger could not store, sent from memory.
    unsaved: Mutex<Vec<AgentEvent>>,
    /// Every ledger event up to this sequence number is acknowledged.
    acked_through: AtomicI64,
    wakeup: Notify,
}

impl Outbox {
    /// The counter shared with whoever hands endings over (see [`crate::tap::EndingSink`]).
    pub fn pending_writes_counter(&self) -> Arc<AtomicUsize> {
        self.pending_writes.clone()
    }

    /// Events seen but not yet in the ledger. Zero means all is on disk.
    pub fn pending_writes(&self) -> usize {
        self.pending_writes.load(Ordering::Acquire)
    }

    /// Counts a write about to happen off the request path; the guard
    /// uncounts it when dropped.
    pub fn write_ticket(&self) -> WriteTicket {
        self.pending_writes.fetch_add(1, Ordering::AcqRel);
        WriteTicket(self.pending_writes.clone())
    }

    /// An ending handed over through the sink is in the ledger now.
    pub fn ending_written(&self) {
        self.pending_writes.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn keep_unsaved(&self, event: AgentEvent) {
        self.unsaved.lock().expect("unsaved lock").push(event);
    }

    pub fn unsaved(&self) -> Vec<AgentEvent> {
        self.unsaved.lock().expect("unsaved lock").clone()
    }

    pub fn unsaved_count(&self) -> usize {
        self.unsaved.lock().expect("unsaved lock").len()
    }

    pub fn forget_unsaved(&self, ids: &[Uuid]) {
        self.unsaved
            .lock()
            .expect("unsaved lock")
            .retain(|e| !ids.contains(&e.id));
    }

    pub fn acked_through(&self) -> i64 {
        self.acked_through.load(Ordering::Acquire)
    }

    pub fn set_acked_through(&self, seq: i64) {
        self.acked_through.store(seq, Ordering::Release);
    }

    pub fn advance_acked(&self, seq: i64) {
        self.acked_through.fetch_max(seq, Ordering::AcqRel);
    }

    pub fn wake_sender(&self) {
        self.wakeup.notify_one();
    }

    pub async fn woken(&self) {
        self.wakeup.notified().await;
    }
}

/// A write counted in [`Outbox::pending_writes`] until dropped.
#[derive(Debug)]
pub struct WriteTicket(Arc<AtomicUsize>);

impl Drop for WriteTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
