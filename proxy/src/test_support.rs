//! What the unit tests of several modules share.

use ccgate_quota::{CreditWeights, Policy, UnidentifiedClients, UserRef, UserStatus};

/// Alice's policy in UTC with `rules` (the quota crate's flat JSON) and
/// every other setting at its default.
pub fn policy(rules: serde_json::Value) -> Policy {
    Policy {
        version: 1,
        team: "Lab".into(),
        user: UserRef {
            id: 1,
            name: "Alice".into(),
            slug: "alice".into(),
        },
        status: UserStatus::Active,
        time_zone: "UTC".into(),
        credit_weights: CreditWeights::default(),
        rules: serde_json::from_value(rules).expect("rules parse"),
        unidentified_clients: UnidentifiedClients::Allow,
        agent_turns: Default::default(),
        turn_limits: Default::default(),
        personal_api_keys: Default::default(),
        credential: Default::default(),
        auto_update: true,
    }
}
