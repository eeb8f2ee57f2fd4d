//! How the link to the server is doing, and what Anthropic's replies said
//! about the subscription: kept for `ccgate status`, `doctor` and the sender.

use std::sync::Mutex;

use ccgate_quota::wire::SubscriptionUsage;
use jiff::Timestamp;

use crate::link::LinkError;
pub use ccgate_machine::local_api::ServerHealth;

#[derive(Debug, Default)]
pub struct LinkHealth {
    health: Mutex<ServerHealth>,
}

impl LinkHealth {
    pub fn get(&self) -> ServerHealth {
        self.health.lock().expect("health lock").clone()
    }

    pub fn set_live_link(&self, open: bool) {
        self.health.lock().expect("health lock").live_link = open;
    }

    pub fn synced(&self) {
        self.health.lock().expect("health lock").last_sync_at = Some(Timestamp::now());
    }

    pub fn answered(&self) {
        let mut health = self.health.lock().expect("health lock");
        health.reachable = true;
        health.unauthorized = false;
        health.last_contact_at = Some(Timestamp::now());
        health.last_error = None;
    }

    pub fn failed(&self, error: &LinkError) {
        let mut health = self.health.lock().expect("health lock");
        health.reachable = error.server_answered() && !matches!(error, LinkError::Unauthorized);
        health.unauthorized = matches!(error, LinkError::Unauthorized);
        health.last_error = Some(error.to_string());
    }
}

/// The latest subscription utilization seen in Anthropic's headers (for
/// `ccgate status`; the server gets each one with its request's event).
#[derive(Debug, Default)]
pub struct SubscriptionSeen {
    slot: Mutex<Option<SubscriptionUsage>>,
}

impl SubscriptionSeen {
    pub fn observe(&self, usage: SubscriptionUsage) {
        let mut slot = self.slot.lock().expect("subscription lock");
        if slot
            .as_ref()
            .is_none_or(|old| old.observed_at <= usage.observed_at)
        {
            *slot = Some(usage);
        }
    }

    pub fn latest(&self) -> Option<SubscriptionUsage> {
        self.slot.lock().expect("subscription lock").clone()
    }
}
