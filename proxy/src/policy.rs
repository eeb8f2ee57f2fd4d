//! The policy in force and the server's clock: what a sync brings, kept
//! behind narrow accessors so every stage reads the same version.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use ccgate_quota::CompiledPolicy;
use jiff::{SignedDuration, Timestamp};

use crate::turns::TurnRules;

#[derive(Debug, Default)]
pub struct PolicyState {
    current: RwLock<Option<Arc<CompiledPolicy>>>,
    /// Server time minus local time, in ms, from the last answer.
    clock_offset_ms: AtomicI64,
}

impl PolicyState {
    pub fn current(&self) -> Option<Arc<CompiledPolicy>> {
        self.current.read().expect("policy lock").clone()
    }

    pub fn version(&self) -> u64 {
        self.current().map_or(0, |p| p.policy.version)
    }

    /// Installs `policy` unless a newer one is already in force (a late
    /// push); returns the one it replaced, or `Err` when it was refused.
    pub fn install(
        &self,
        policy: Arc<CompiledPolicy>,
    ) -> Result<Option<Arc<CompiledPolicy>>, Arc<CompiledPolicy>> {
        let mut slot = self.current.write().expect("policy lock");
        if slot
            .as_ref()
            .is_some_and(|old| old.policy.version > policy.policy.version)
        {
            return Err(policy);
        }
        Ok(slot.replace(policy))
    }

    /// The turn rules of the policy in force (the defaults without one).
    pub fn turn_rules(&self) -> TurnRules {
        self.current()
            .map(|p| TurnRules {
                agent_turns: p.policy.agent_turns,
                limits: p.policy.turn_limits,
            })
            .unwrap_or_default()
    }

    pub fn set_server_time(&self, server_time: Timestamp) {
        let offset = server_time.duration_since(Timestamp::now());
        self.clock_offset_ms
            .store(offset.as_millis() as i64, Ordering::Relaxed);
    }

    pub fn clock_offset(&self) -> SignedDuration {
        SignedDuration::from_millis(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Now, by the server's clock as seen at the last answer.
    pub fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.clock_offset())
            .unwrap_or_else(|_| Timestamp::now())
    }
}
