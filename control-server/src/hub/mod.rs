//! Live events (`/ws` and the alert engine): one broadcast channel of typed
//! [`LiveEvent`]s, each serialised at most once, when a socket first sends
//! it. Publishing never waits: a slow listener misses events rather than
//! slowing a check, and nothing is built when nobody listens.

pub mod event;

use std::sync::{Arc, OnceLock};

use tokio::sync::broadcast;

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
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(CAPACITY),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }

    /// Sends the event to every listener; `event` is only called when
    /// someone listens.
    pub fn publish(&self, event: impl FnOnce() -> LiveEvent) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let published = Arc::new(Published {
            event: event(),
            json: OnceLock::new(),
        });
        // An error only means every listener left meanwhile.
        let _ = self.sender.send(published);
    }
}
