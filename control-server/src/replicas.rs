//! Several replicas on one PostgreSQL database: what one publishes reaches
//! the others' live listeners (`/ws`, the alert engine) through
//! [`crate::postgres::fanout`], and a change to people, devices, settings or
//! subscriptions makes the others reload their copy of the record (`live`).

use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::hub::{LiveEvent, Notice};
use crate::postgres::PgDb;
use crate::postgres::fanout::Listener;
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
/// once per burst).
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
            Some(Notice::RecordChanged) => dirty.notify_one(),
            Some(Notice::Live(event)) => {
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
            Ok(directory) => state.live.refresh(directory),
            Err(error) => tracing::warn!(%error, "could not reload what another replica changed"),
        }
    }
}
