//! Live events (`/ws` and the alert engine): one broadcast channel of typed
//! [`LiveEvent`]s, each serialised at most once, when a socket first sends
//! it. Publishing never waits: a slow listener misses events rather than
//! slowing a check, and nothing is built when nobody listens.

pub mod event;

use std::sync::{Arc, OnceLock};

use tokio::sync::{broadcast, mpsc};

use crate::live::reservations::ReservationKey;

pub use event::LiveEvent;

/// Events a listener may fall behind by before it misses some. The alert
/// engine listens to every check (thousands a second under load) for the
/// few events it alerts on; each slot is one pointer.
const CAPACITY: usize = 16 * 1024;

/// An event as listeners receive it.
#[derive(Debug)]
pub struct Published {
    pub event: LiveEvent,
    json: OnceLock<Arc<str>>,
}

impl Published {
    /// The `/ws` message, serialised once for every socket.
    pub fn json(&self) -> Arc<str> {
        Arc::clone(self.json.get_or_init(|| self.event.to_json().into()))
    }
}

#[derive(Debug)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Published>>,
    /// With several replicas: where this replica's events leave for the
    /// others (`replicas::relay` sends them on over PostgreSQL).
    relay: Option<mpsc::Sender<Notice>>,
}

/// What one replica tells the others.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "notice", content = "event", rename_all = "snake_case")]
pub enum Notice {
    /// A live event, for the other replicas' listeners.
    Live(Box<LiveEvent>),
    /// The record changed in a way no live event tells (settings, a device's
    /// token): the other replicas reload their copy.
    RecordChanged,
    /// Usage this replica stored: the others add it to their copy of the
    /// usage index (what views and hook checks read).
    Usage(Vec<StoredUsage>),
}

/// An event's usage, as another replica's usage index takes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredUsage {
    pub user_id: i64,
    /// When it happened, in ms.
    pub at: i64,
    pub family: Option<ccgate_quota::ModelFamily>,
    pub totals: ccgate_quota::Totals,
    /// The turn it settles: its reservation is gone.
    pub settles: Option<crate::live::reservations::ReservationKey>,
}

impl StoredUsage {
    /// What `row` adds and settles, if anything.
    pub fn of(row: &crate::model::Event, settles: Option<ReservationKey>) -> Option<Self> {
        let adds = row.family.is_some() && !row.totals.is_zero();
        (adds || settles.is_some()).then_some(Self {
            user_id: row.user_id,
            at: row.at.as_millisecond(),
            family: row.family,
            totals: row.totals,
            settles,
        })
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(CAPACITY),
            relay: None,
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }

    /// A hub whose events also go to `relay`, for the other replicas.
    pub fn relayed(relay: mpsc::Sender<Notice>) -> Self {
        Self {
            relay: Some(relay),
            ..Self::default()
        }
    }

    /// Sends the event to every listener (and the other replicas); `event`
    /// is only called when someone listens.
    pub fn publish(&self, event: impl FnOnce() -> LiveEvent) {
        if let Some(relay) = &self.relay {
            let event = event();
            // Full: the other replicas miss it, as a slow listener would.
            let _ = relay.try_send(Notice::Live(Box::new(event.clone())));
            self.publish_here(event);
            return;
        }
        if self.sender.receiver_count() == 0 {
            return;
        }
        self.publish_here(event());
    }

    /// Tells the other replicas of usage stored here; `usage` is only
    /// called when there are others.
    pub fn usage_stored(&self, usage: impl FnOnce() -> Vec<StoredUsage>) {
        let Some(relay) = &self.relay else {
            return;
        };
        let usage = usage();
        if !usage.is_empty() {
            // Full: the others' views miss it until they reload (the
            // check on PostgreSQL reads the database, not these).
            let _ = relay.try_send(Notice::Usage(usage));
        }
    }

    /// Tells the other replicas to reload their copy of the record.
    pub fn record_changed(&self) {
        if let Some(relay) = &self.relay {
            let _ = relay.try_send(Notice::RecordChanged);
        }
    }

    /// Sends the event to this replica's listeners only (one that another
    /// replica published).
    pub fn publish_here(&self, event: LiveEvent) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let published = Arc::new(Published {
            event,
            json: OnceLock::new(),
        });
        // An error only means every listener left meanwhile.
        let _ = self.sender.send(published);
    }
}
