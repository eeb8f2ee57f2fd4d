//! A prompt's decision as bounds on usage, for a store that decides and
//! reserves in one statement (PostgreSQL): `evaluate` allows a prompt
//! exactly when nothing but usage stands in its way (`open`) and every cap
//! holds. The store checks the caps against the usage it reads under the
//! person's lock; `evaluate` on the same figures then writes the answer.

use jiff::Timestamp;

use crate::engine::{GateKind, GateRequest, find_breach};
use crate::model::ModelFamily;
use crate::policy::CompiledPolicy;
use crate::report::{Metric, counter};
use crate::share::WindowShare;
use crate::usage::{UsageIndex, UsageSource, WithShares};

/// What a prompt needs of the usage to be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptCaps {
    /// Nothing but usage refuses the prompt: the person is active, no
    /// schedule is closed, no share is over and no cap is below one prompt.
    pub open: bool,
    /// Credits the prompt costs.
    pub cost: u64,
    pub caps: Vec<UsageCap>,
}

/// One bound: the usage of `family` (all when `None`) at or after `since`,
/// pending prompts included, must be at most `most`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageCap {
    pub since: Timestamp,
    pub family: Option<ModelFamily>,
    pub metric: Metric,
    pub most: u64,
}

impl UsageCap {
    pub fn holds(&self, usage: &impl UsageSource) -> bool {
        self.metric.of(&usage.totals_since(self.family, self.since)) <= self.most
    }
}

impl PromptCaps {
    /// Whether `evaluate` would allow the prompt with `usage`.
    pub fn allow(&self, usage: &impl UsageSource) -> bool {
        self.open && self.caps.iter().all(|cap| cap.holds(usage))
    }
}

/// The caps a prompt of `family` meets at `now`, with the person's
/// estimated `shares` of the subscription's windows.
pub fn prompt_caps(
    policy: &CompiledPolicy,
    family: ModelFamily,
    now: Timestamp,
    shares: &[WindowShare],
) -> PromptCaps {
    let request = GateRequest {
        family,
        kind: GateKind::Prompt,
        now,
    };
    let cost = policy.policy.credit_weights.weight(family);
    // With no usage at all, only status, schedules, shares and caps too
    // small for one prompt can refuse.
    let mut open = find_breach(
        policy,
        &WithShares(UsageIndex::new(), shares),
        request,
        cost,
    )
    .is_none();
    let mut caps = Vec::new();
    for (rule, zone) in policy.rules() {
        if !rule.spec.applies_to(family) {
            continue;
        }
        let Some((counted, window, limit, metric)) = counter(&rule.spec) else {
            continue;
        };
        let Some(cap) = limit.cap() else { continue };
        // A credit budget lets a prompt through while what is left covers
        // its cost; the other caps while anything is left.
        let most = match metric {
            Metric::Credits if cost == 0 => continue,
            Metric::Credits => cap.checked_sub(cost),
            Metric::Prompts | Metric::Tokens(_) => cap.checked_sub(1),
        };
        let Some(most) = most else {
            open = false;
            continue;
        };
        caps.push(UsageCap {
            since: window.bounds(now, zone).start,
            family: counted,
            metric,
            most,
        });
    }
    PromptCaps { open, cost, caps }
}
