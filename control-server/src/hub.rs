//! Live events for admins (`/ws`): one broadcast channel of pre-serialised
//! JSON messages `{type, …}`. Publishing never waits: a slow client misses
//! messages rather than slowing a check, and nothing is built when nobody
//! listens.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::broadcast;

const CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct Hub {
    sender: broadcast::Sender<Arc<str>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(CAPACITY),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.sender.subscribe()
    }

    /// Sends `{"type": kind, …fields}` to every listener. `fields` is only
    /// called when someone listens.
    pub fn publish(&self, kind: &str, fields: impl FnOnce() -> Value) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        let mut message = Map::new();
        message.insert("type".to_owned(), Value::String(kind.to_owned()));
        if let Value::Object(more) = fields() {
            message.extend(more);
        }
        let text: Arc<str> = Value::Object(message).to_string().into();
        // An error only means every listener left meanwhile.
        let _ = self.sender.send(text);
    }
}
