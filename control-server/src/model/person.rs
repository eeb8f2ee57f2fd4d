//! A person ccgate governs, as every part of the server sees them
//! (whatever backend stores them).

use ccgate_quota::{AgentTurns, Rule, UserStatus};
use jiff::Timestamp;

/// A person ccgate governs: their limits and how they sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub status: UserStatus,
    /// `None`: the team's zone.
    pub time_zone: Option<String>,
    pub policy_version: u64,
    pub created_at: Timestamp,
    /// In order, with their row ids.
    pub rules: Vec<Rule>,
    /// The subscription whose credential this user's devices swap in;
    /// `None`: the person signs in with their own login.
    pub subscription_id: Option<i64>,
    /// `None`: the team's setting.
    pub agent_turns: Option<AgentTurns>,
}

/// Changes to a person; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct PersonChanges {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub status: Option<UserStatus>,
    /// `Some(None)` returns the user to the team's zone.
    pub time_zone: Option<Option<String>>,
    pub rules: Option<Vec<Rule>>,
    /// `Some(None)` returns the user to their own login.
    pub subscription_id: Option<Option<i64>>,
    /// `Some(None)` returns the user to the team's setting.
    pub agent_turns: Option<Option<AgentTurns>>,
}

impl PersonChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.slug.is_none()
            && self.status.is_none()
            && self.time_zone.is_none()
            && self.rules.is_none()
            && self.subscription_id.is_none()
            && self.agent_turns.is_none()
    }
}
