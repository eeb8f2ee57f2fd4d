//! Writes events produced on the check path (blocked prompts, lapsed hook
//! reservations) in batches from a background task, so a check never waits
//! for SQLite.

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::db::events::EventRow;
use crate::db::{self, Db};

const QUEUE: usize = 100_000;
const BATCH: usize = 2_000;

#[derive(Debug, Clone)]
pub struct EventWriter {
    sender: mpsc::Sender<EventRow>,
}

impl EventWriter {
    /// Starts the writer; it drains its queue and stops when `shutdown` turns true.
    pub fn spawn(db: Db, mut shutdown: watch::Receiver<bool>) -> (Self, JoinHandle<()>) {
        let (sender, mut receiver) = mpsc::channel::<EventRow>(QUEUE);
        let task = tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    biased;
                    row = receiver.recv() => row,
                    _ = crate::state::stopped(&mut shutdown) => None,
                };
                let Some(first) = first else { break };
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match receiver.try_recv() {
                        Ok(row) => batch.push(row),
                        Err(_) => break,
                    }
                }
                write(&db, batch).await;
            }
            // Whatever is still queued at shutdown.
            let mut rest = Vec::new();
            while let Ok(row) = receiver.try_recv() {
                rest.push(row);
            }
            if !rest.is_empty() {
                write(&db, rest).await;
            }
        });
        (Self { sender }, task)
    }

    /// Queues an event; drops it (with a log line) when the queue is full.
    pub fn submit(&self, row: EventRow) {
        if let Err(error) = self.sender.try_send(row) {
            tracing::warn!(%error, "event queue full or closed; event dropped");
        }
    }
}

async fn write(db: &Db, batch: Vec<EventRow>) {
    let count = batch.len();
    if let Err(error) = db.write(move |tx| db::events::insert_new(tx, &batch)).await {
        tracing::error!(%error, count, "writing queued events failed");
    }
}
