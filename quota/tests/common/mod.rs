//! A person's policy for the quota crate's tests.

use ccgate_quota::{
    CompiledPolicy, CreditWeights, Policy, Rule, UnidentifiedClients, UserRef, UserStatus,
};

/// Alice's policy in team "Lab": everything not given at its default.
pub fn policy_with(
    status: UserStatus,
    time_zone: &str,
    credit_weights: CreditWeights,
    rules: Vec<Rule>,
) -> CompiledPolicy {
    CompiledPolicy::new(Policy {
        version: 1,
        team: "Lab".into(),
        user: UserRef {
            id: 1,
            name: "Alice".into(),
            slug: "alice".into(),
        },
        status,
        time_zone: time_zone.into(),
        credit_weights,
        rules,
        unidentified_clients: UnidentifiedClients::Allow,
        agent_turns: Default::default(),
        turn_limits: Default::default(),
        personal_api_keys: Default::default(),
        credential: Default::default(),
        auto_update: true,
    })
    .unwrap()
}
