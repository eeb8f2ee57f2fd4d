//! Several replicas on one PostgreSQL database: what one publishes reaches
//! the others' live listeners (`/ws`, the alert engine) through
//! [`crate::postgres::fanout`], and a change to people, devices, settings or
//! subscriptions makes the others reload their copy of the record (`live`).

use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

use crate::hub::{LiveEvent, Notice, StoredUsage};
use crate::postgres::PgDb;
use crate::postgres::fanout::{Heard, Listener};
use crate::state::{AppState, stopped};

/// Notices waiting to leave before new ones are dropped.
pub const RELAY_QUEUE: usize = 4096;

/// Sends this replica's notices to the others until the hub is gone.
pub async fn relay(pg: PgDb, origin: Uuid, mut notices: mpsc::Receiver<Notice>) {
    while let Some(notice) = notices.recv().await {
        if let Err(error) = pg.notify(origin, &notice).await {
            tracing::warn!(%error, "a live event did not reach the other replicas");
        }
    }
}

/// Hands the other replicas' notices to this one until it shuts down: live
/// events to its listeners, changes to its copy of the record (reloaded
/// once per burst). When notices may have been missed (the listener
/// reconnected, or its queue was full), the record is reloaded and the
/// usage figures read again from the database.
pub async fn follow(state: AppState, mut listener: Listener<Notice>) {
    let dirty = Arc::new(Notify::new());
    let reloader = tokio::spawn(reload_when_told(state.clone(), Arc::clone(&dirty)));
    let mut shutdown = state.shutdown.clone();
    loop {
        let notice = tokio::select! {
            notice = listener.recv() => notice,
            () = stopped(&mut shutdown) => None,
        };
        match notice {
            None => break,
            Some(Heard::Missed) => {
                dirty.notify_one();
                // Inline, so notices heard meanwhile wait and are added to
                // the figures read, not to those they replace.
                reread_usage(&state).await;
            }
            Some(Heard::Event(Notice::RecordChanged)) => dirty.notify_one(),
            Some(Heard::Event(Notice::Usage(usage))) => add_usage(&state, usage),
            Some(Heard::Event(Notice::Live(event))) => {
                forget_removed(&state, &event);
                if event.changes_record() {
                    dirty.notify_one();
                }
                state.hub.publish_here(*event);
            }
        }
    }
    reloader.abort();
}

/// Usage another replica stored goes into this one's usage index, and the
/// reservations it settles end here too.
pub fn add_usage(state: &AppState, usage: Vec<StoredUsage>) {
    for stored in usage {
        let Some(user) = state.live.user(stored.user_id) else {
            continue;
        };
        let mut guard = user.lock();
        if let (Some(family), false, Ok(at)) = (
            stored.family,
            stored.totals.is_zero(),
            Timestamp::from_millisecond(stored.at),
        ) {
            guard.usage.add(at, family, stored.totals);
        }
        if let Some(key) = &stored.settles {
            guard.reservations.remove(key);
        }
    }
}

/// Replaces every person's usage figures with what the database holds for
/// the history the server keeps. Usage this replica stores itself while
/// the figures are read can be missing from them until the next re-read
/// or restart (the figures are for display: checks read the database).
async fn reread_usage(state: &AppState) {
    let since = state.config.history_since(state.now());
    match state.store.usage_since(since).await {
        Ok(recent) => {
            let mut indexes = recent.by_user;
            for user in state.live.all_users() {
                user.lock().usage = indexes.remove(&user.id).unwrap_or_default();
                user.notify();
            }
            tracing::info!(
                events = recent.events,
                "read the usage figures again after missing other replicas' notices"
            );
        }
        Err(error) => {
            tracing::warn!(%error, "could not read the usage figures again after missing notices");
        }
    }
}

/// A deletion or revocation on another replica ends here at once: the
/// person's or device's streams close and its token stops working.
fn forget_removed(state: &AppState, event: &LiveEvent) {
    match event {
        LiveEvent::UserDeleted { user_id, .. } => state.live.remove_user(*user_id),
        LiveEvent::DeviceRevoked(device) => {
            state.live.devices.remove(device.device_id);
            if let Some(user) = state.live.user(device.user_id) {
                user.notify();
            }
        }
        _ => {}
    }
}

async fn reload_when_told(state: AppState, dirty: Arc<Notify>) {
    loop {
        dirty.notified().await;
        match state.store.directory().await {
            Ok(directory) => {
                state.live.refresh(directory, &state.vault);
                // Alert rules and channels may have changed too.
                state.alerts.changed();
            }
            Err(error) => tracing::warn!(%error, "could not reload what another replica changed"),
        }
    }
}

/// Whether this replica is the one that raises alerts
/// ([`crate::postgres::leader`]); a lone server always is.
#[derive(Debug, Clone)]
pub struct Leadership(watch::Receiver<bool>);

impl Leadership {
    /// A server alone on its record.
    pub fn alone() -> Self {
        Self(watch::channel(true).1)
    }

    /// Led by the election whose outcome `sender` gives.
    pub fn elected() -> (watch::Sender<bool>, Self) {
        let (sender, receiver) = watch::channel(false);
        (sender, Self(receiver))
    }

    pub fn is_leading(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once this replica leads (at once if it does).
    pub async fn gained(&mut self) {
        self.until(true).await;
    }

    /// Returns once this replica no longer leads.
    pub async fn lost(&mut self) {
        self.until(false).await;
    }

    async fn until(&mut self, leading: bool) {
        // Without an election (its sender gone) nothing changes any more.
        if self.0.wait_for(|now| *now == leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
