//! Alerts: rules over the subscription's windows, people's limits and the
//! devices' reports ([`condition`]), evaluated by one task ([`engine`]) and
//! delivered to chat, push, e-mail and webhook channels ([`delivery`],
//! through `ccgate-alerts`).

pub mod condition;
pub mod delivery;
pub mod engine;

use ccgate_alerts::{Deliverer, InitError};
use tokio::sync::Notify;

/// What handlers share with the engine.
#[derive(Debug)]
pub struct Alerts {
    pub deliverer: Deliverer,
    reload: Notify,
}

impl Alerts {
    pub fn new() -> Result<Self, InitError> {
        Ok(Self {
            deliverer: Deliverer::new()?,
            reload: Notify::new(),
        })
    }

    /// Rules or channels changed: the engine reads them again.
    pub fn changed(&self) {
        self.reload.notify_one();
    }

    pub async fn reloaded(&self) {
        self.reload.notified().await;
    }
}
