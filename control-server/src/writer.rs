//! The background writer: every event the server stores goes through it
//! (device batches, blocked prompts, counted hook prompts), so writes are
//! grouped into few transactions and the queue in front of SQLite is
//! bounded.
//!
//! - **Push back.** A request that will add rows first takes room in the
//!   queue ([`EventWriter::admit`]); when the queue is full it waits at most
//!   `event_queue_wait`, then answers 503 with `Retry-After`. Rows made
//!   without a request (lapsed hook reservations) are queued regardless.
//! - **Nothing answered is lost.** A device batch is answered only after
//!   its rows are committed ([`Ticket::submit_then`]). Rows the server
//!   already counted in memory (a blocked prompt, a counted hook prompt)
//!   are *durable*: if the database fails for a while (a full disk, a lock)
//!   they stay queued and are retried with growing delays, and they are
//!   written at shutdown.
//! - **One bad row loses nothing else.** A group of rows goes in one
//!   transaction; if it fails, every row is tried in its own, so one row the
//!   database refuses for good is reported (or logged) alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ccgate_quota::wire::SubscriptionUsage;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::db::utilization::SubscriptionClaim;
use crate::db::{self, DbError};
use crate::error::Error;
use crate::model::{AuditEntry, Event};
use crate::store::Store;

/// Rows written in one transaction at most.
const BATCH: usize = 2_000;
/// First and longest delay before durable rows that failed are tried again.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// `Retry-After` of a request turned away by a full queue.
const RETRY_AFTER_SECS: u64 = 2;

/// A row to store, with the audit entry that goes with it when it is new
/// (a tamper report, a delivery fault).
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub row: Event,
    pub audit: Option<AuditEntry>,
    /// A request's subscription and the utilization its reply carried.
    pub subscription: Option<RequestSubscription>,
}

/// What a request event says about its subscription, stored with it.
#[derive(Debug, Clone)]
pub struct RequestSubscription {
    pub claim: SubscriptionClaim,
    pub utilization: Option<SubscriptionUsage>,
}

impl From<Event> for PendingRow {
    fn from(row: Event) -> Self {
        Self {
            row,
            audit: None,
            subscription: None,
        }
    }
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowResult {
    /// Stored now.
    New,
    /// Its device sent this id before: nothing stored, nothing counted.
    Duplicate,
    /// The database refuses this row for good (a constraint, a value that
    /// does not fit); sending it again will not help.
    Refused(String),
    /// Not stored this time (a full disk, a locked database): try again.
    Failed(String),
}

/// Called with the rows of a job and what became of each.
type Done = Box<dyn FnOnce(Vec<(Event, RowResult)>) + Send>;

struct Job {
    rows: Vec<PendingRow>,
    /// Failed rows are kept and retried (the server already counted them).
    durable: bool,
    done: Option<Done>,
}

#[derive(Debug)]
struct Shared {
    /// Rows queued, being written, or waiting for a retry (plus room taken
    /// by admitted requests).
    queued: AtomicUsize,
    room: Notify,
    capacity: usize,
    wait: Duration,
    gauge: Gauge,
}

impl Shared {
    fn take_room(&self, rows: usize) -> bool {
        let mut current = self.queued.load(Ordering::Acquire);
        loop {
            // An empty queue takes any job, whatever its size.
            if current != 0 && current.saturating_add(rows) > self.capacity {
                return false;
            }
            match self.queued.compare_exchange_weak(
                current,
                current + rows,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.publish();
                    return true;
                }
                Err(now) => current = now,
            }
        }
    }

    fn add(&self, rows: usize) {
        self.queued.fetch_add(rows, Ordering::AcqRel);
        self.publish();
    }

    fn release(&self, rows: usize) {
        if rows == 0 {
            return;
        }
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(rows))
            });
        self.publish();
        self.room.notify_waiters();
    }

    fn publish(&self) {
        let queued = self.queued.load(Ordering::Acquire);
        self.gauge.set(i64::try_from(queued).unwrap_or(i64::MAX));
    }
}

#[derive(Debug, Clone)]
pub struct EventWriter {
    sender: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("rows", &self.rows.len())
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

/// Room for rows in the writer's queue, taken by [`EventWriter::admit`];
/// given back when dropped unused.
#[derive(Debug)]
pub struct Ticket {
    writer: EventWriter,
    rows: usize,
}

impl Ticket {
    fn send(mut self, rows: Vec<PendingRow>, durable: bool, done: Option<Done>) {
        let taken = std::mem::take(&mut self.rows);
        let count = rows.len();
        if count > taken {
            self.writer.shared.add(count - taken);
        } else {
            self.writer.shared.release(taken - count);
        }
        self.writer.enqueue(Job {
            rows,
            durable,
            done,
        });
    }

    /// Queues rows the server already counted: they are retried until
    /// stored (or refused for good, which is logged).
    pub fn submit(self, rows: Vec<PendingRow>) {
        self.send(rows, true, None);
    }

    /// Queues a device's rows; `done` gets what became of each once it is
    /// known (it runs even if the request is gone by then).
    pub fn submit_then(
        self,
        rows: Vec<PendingRow>,
        done: impl FnOnce(Vec<(Event, RowResult)>) + Send + 'static,
    ) {
        self.send(rows, false, Some(Box::new(done)));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.writer.shared.release(self.rows);
    }
}

impl EventWriter {
    /// Starts the writer: `capacity` rows before requests wait, at most
    /// `wait` each; `gauge` shows the rows queued. It writes what is still
    /// queued and stops when `shutdown` turns true.
    pub fn spawn(
        store: Store,
        shutdown: watch::Receiver<bool>,
        capacity: usize,
        wait: Duration,
        gauge: Gauge,
    ) -> (Self, JoinHandle<()>) {
        let (sender, receiver) = mpsc::unbounded_channel::<Job>();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            room: Notify::new(),
            capacity: capacity.max(1),
            wait,
            gauge,
        });
        let task = tokio::spawn(run(store, receiver, Arc::clone(&shared), shutdown));
        (Self { sender, shared }, task)
    }

    /// Takes room for `rows` rows, waiting while the queue is full; after
    /// the configured wait, 503 `busy` with `Retry-After`.
    pub async fn admit(&self, rows: usize) -> Result<Ticket, Error> {
        let deadline = Instant::now() + self.shared.wait;
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.take_room(rows) {
                return Ok(Ticket {
                    writer: self.clone(),
                    rows,
                });
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::busy(
                    "the server is busy writing events; try again shortly",
                    RETRY_AFTER_SECS,
                ));
            }
        }
    }

    /// Queues rows the server already counted, without waiting for room
    /// (housekeeping, which answers nobody).
    pub fn push(&self, rows: Vec<PendingRow>) {
        if rows.is_empty() {
            return;
        }
        self.shared.add(rows.len());
        self.enqueue(Job {
            rows,
            durable: true,
            done: None,
        });
    }

    fn enqueue(&self, job: Job) {
        let rows = job.rows.len();
        if let Err(error) = self.sender.send(job) {
            // Only after the writer stopped, which happens after the last request.
            tracing::error!(rows, "the event writer has stopped; rows not stored");
            self.shared.release(rows);
            drop(error);
        }
    }

    /// Rows queued now (for tests and metrics).
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }
}

async fn run(
    store: Store,
    mut receiver: mpsc::UnboundedReceiver<Job>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut retry: Vec<PendingRow> = Vec::new();
    let mut backoff = MIN_BACKOFF;
    let mut retry_at = Instant::now();
    loop {
        let first = tokio::select! {
            biased;
            job = receiver.recv() => match job {
                Some(job) => Some(job),
                None => break,
            },
            _ = tokio::time::sleep_until(retry_at), if !retry.is_empty() => None,
            _ = crate::state::stopped(&mut shutdown) => break,
        };
        let mut jobs: Vec<Job> = first.into_iter().collect();
        let mut rows: usize = jobs.iter().map(|job| job.rows.len()).sum();
        while rows < BATCH {
            match receiver.try_recv() {
                Ok(job) => {
                    rows += job.rows.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let due = !retry.is_empty() && Instant::now() >= retry_at;
        let again = if due {
            std::mem::take(&mut retry)
        } else {
            Vec::new()
        };
        let failed = write_round(&store, &shared, jobs, again).await;
        if failed.is_empty() {
            if due {
                backoff = MIN_BACKOFF;
            }
        } else {
            tracing::warn!(
                rows = failed.len(),
                retry_in_ms = backoff.as_millis() as u64,
                "the database did not take these events; they stay queued"
            );
            retry.extend(failed);
            retry_at = Instant::now() + backoff;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    // Shutdown: everything still queued, then a few last tries.
    let mut jobs = Vec::new();
    while let Ok(job) = receiver.try_recv() {
        jobs.push(job);
    }
    let mut failed = write_round(&store, &shared, jobs, std::mem::take(&mut retry)).await;
    for _ in 0..3 {
        if failed.is_empty() {
            break;
        }
        tokio::time::sleep(MIN_BACKOFF).await;
        failed = write_round(&store, &shared, Vec::new(), failed).await;
    }
    if !failed.is_empty() {
        tracing::error!(
            rows = failed.len(),
            "the database did not take these events before shutdown; they are lost"
        );
    }
}

fn result_of(outcome: Result<bool, DbError>) -> RowResult {
    match outcome {
        Ok(true) => RowResult::New,
        Ok(false) => RowResult::Duplicate,
        Err(error) if db::is_permanent(&error) => {
            RowResult::Refused(format!("could not be stored: {error}"))
        }
        Err(error) => RowResult::Failed(error.to_string()),
    }
}

/// What becomes of a durable row: kept for a retry, or logged when the
/// database refuses it for good.
fn settle_durable(row: PendingRow, result: &RowResult, keep: &mut Vec<PendingRow>) {
    match result {
        RowResult::Failed(_) => keep.push(row),
        RowResult::Refused(reason) => tracing::error!(
            event = %row.row.id,
            kind = row.row.event_type.as_str(),
            %reason,
            "an event the server counted was refused by the database; it is not stored"
        ),
        RowResult::New | RowResult::Duplicate => {}
    }
}

/// Writes `again` (durable rows to retry) and the rows of `jobs`: all in one
/// transaction, else each on its own. Hands every job its results and
/// returns the durable rows to try again later.
async fn write_round(
    store: &Store,
    shared: &Shared,
    jobs: Vec<Job>,
    again: Vec<PendingRow>,
) -> Vec<PendingRow> {
    let mut finishers = Vec::with_capacity(jobs.len());
    let mut all = again;
    let retried = all.len();
    for job in jobs {
        finishers.push((job.rows.len(), job.durable, job.done));
        all.extend(job.rows);
    }
    if all.is_empty() {
        return Vec::new();
    }
    let total = all.len();
    let all = Arc::new(all);
    let together: Result<Vec<bool>, DbError> = { store.record_events(Arc::clone(&all)).await };
    let results: Vec<RowResult> = match together {
        Ok(new) => new.into_iter().map(|new| result_of(Ok(new))).collect(),
        Err(error) => {
            tracing::warn!(%error, rows = total, "writing events together failed; writing them one by one");
            store
                .record_events_each(Arc::clone(&all))
                .await
                .into_iter()
                .map(result_of)
                .collect()
        }
    };
    let all = Arc::try_unwrap(all).unwrap_or_else(|shared| (*shared).clone());
    let mut paired = all.into_iter().zip(results);
    let mut keep = Vec::new();
    for (row, result) in paired.by_ref().take(retried) {
        settle_durable(row, &result, &mut keep);
    }
    for (count, durable, done) in finishers {
        let rows: Vec<(PendingRow, RowResult)> = paired.by_ref().take(count).collect();
        let mut answer = Vec::with_capacity(rows.len());
        for (row, result) in rows {
            if durable {
                settle_durable(row.clone(), &result, &mut keep);
            }
            answer.push((row.row, result));
        }
        if let Some(done) = done {
            // On its own task: the writer never waits for (or dies with) it.
            tokio::spawn(async move { done(answer) });
        }
    }
    shared.release(total - keep.len());
    keep
}
