//! The decision: may this request go to Anthropic now? First deny wins, in
//! the order status → time of day → per-model caps → credit budget → token
//! budgets. Continuations of a turn already counted only answer to status and
//! token budgets.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::message;
use crate::model::ModelFamily;
use crate::policy::{CompiledPolicy, UserStatus};
use crate::report::{
    LimitUsage, Metric, ShareLimit, UsageReport, measure, schedule_state, share_limit,
};
use crate::rules::RuleSpec;
use crate::usage::UsageSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateKind {
    /// The first request of a turn a person started: counted and gated.
    Prompt,
    /// Everything else in a turn or session: metered, gated only by status
    /// and hard token budgets.
    Continuation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateRequest {
    pub family: ModelFamily,
    pub kind: GateKind,
    pub now: Timestamp,
}

/// Why a request was refused, as a stable code for the wire and the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DenyReason {
    Killed,
    Paused,
    TimeOfDay,
    PerModel,
    Credits,
    Tokens,
    /// The proxy has never received a policy (fail closed).
    NoPolicy,
    /// A request without Claude Code's turn fields, refused by team setting.
    UnidentifiedClient,
    /// The proxy's own files were tampered with and could not be restored.
    Integrity,
    /// A method or path on Anthropic's API that ccgate does not forward.
    PathNotAllowed,
    /// In team-credential mode: the request carried some other credential,
    /// or the team credential is not available.
    Credential,
    /// Over a `share` rule: too much of the subscription's own window.
    Share,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Killed => "killed",
            Self::Paused => "paused",
            Self::TimeOfDay => "time_of_day",
            Self::PerModel => "per_model",
            Self::Credits => "credits",
            Self::Tokens => "tokens",
            Self::NoPolicy => "no_policy",
            Self::UnidentifiedClient => "unidentified_client",
            Self::Integrity => "integrity",
            Self::PathNotAllowed => "path_not_allowed",
            Self::Credential => "credential",
            Self::Share => "share",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    /// The full text a person sees: what is exhausted, when it comes back,
    /// and everything they have used.
    pub message: String,
    /// When the same request could pass again, if that is knowable.
    pub retry_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Credits the request costs if it is a prompt that gets counted.
    pub cost: u64,
    pub denial: Option<Denial>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }
}

/// What broke, with the figures the message needs.
#[derive(Debug, Clone)]
pub(crate) enum Breach {
    Status(UserStatus),
    Closed {
        rule_index: usize,
        opens_at: Option<Timestamp>,
    },
    Limit(LimitUsage),
    Share(ShareLimit),
}

pub fn evaluate(
    policy: &CompiledPolicy,
    usage: &impl UsageSource,
    request: GateRequest,
) -> Decision {
    let cost = policy.policy.credit_weights.weight(request.family);
    let breach = find_breach(policy, usage, request, cost);
    let denial = breach.map(|breach| {
        let report = UsageReport::build(policy, usage, request.now);
        let (reason, retry_at) = match &breach {
            Breach::Status(UserStatus::Paused) => (DenyReason::Paused, None),
            Breach::Status(_) => (DenyReason::Killed, None),
            Breach::Closed { opens_at, .. } => (DenyReason::TimeOfDay, *opens_at),
            Breach::Limit(line) => (
                match line.metric {
                    Metric::Prompts => DenyReason::PerModel,
                    Metric::Credits => DenyReason::Credits,
                    Metric::Tokens(_) => DenyReason::Tokens,
                },
                line.resets_at.or(line.frees_at),
            ),
            Breach::Share(share) => (DenyReason::Share, share.resets_at),
        };
        Denial {
            reason,
            message: message::block_message(policy, &report, &breach, request.family, cost),
            retry_at,
        }
    });
    Decision { cost, denial }
}

pub(crate) fn find_breach(
    policy: &CompiledPolicy,
    usage: &impl UsageSource,
    request: GateRequest,
    cost: u64,
) -> Option<Breach> {
    if policy.policy.status != UserStatus::Active {
        return Some(Breach::Status(policy.policy.status));
    }
    let applicable = || {
        policy
            .rules()
            .enumerate()
            .filter(|(_, (rule, _))| rule.spec.applies_to(request.family))
    };
    if request.kind == GateKind::Prompt {
        for (rule_index, (rule, zone)) in applicable() {
            if let RuleSpec::TimeOfDay { start, end, .. } = rule.spec {
                let (open, next_change) = schedule_state(start, end, zone, request.now);
                if !open {
                    return Some(Breach::Closed {
                        rule_index,
                        opens_at: next_change,
                    });
                }
            }
        }
        let counted = |wanted: fn(&RuleSpec) -> bool| {
            applicable()
                .filter(move |(_, (rule, _))| wanted(&rule.spec))
                .filter_map(|(_, (rule, zone))| measure(rule, zone, usage, request.now))
        };
        let prompt_cap = counted(|s| matches!(s, RuleSpec::PerModel { .. }))
            .find(|line| line.remaining.is_some_and(|left| left == 0));
        if let Some(line) = prompt_cap {
            return Some(Breach::Limit(line));
        }
        let short_of_credits = counted(|s| matches!(s, RuleSpec::Credits { .. }))
            .find(|line| line.remaining.is_some_and(|left| left < cost));
        if let Some(line) = short_of_credits {
            return Some(Breach::Limit(line));
        }
        let over_share = applicable()
            .filter_map(|(_, (rule, _))| match rule.spec {
                RuleSpec::Share { window, percent } => {
                    Some(share_limit(rule, window, percent, usage))
                }
                _ => None,
            })
            .find(ShareLimit::exceeded);
        if let Some(share) = over_share {
            return Some(Breach::Share(share));
        }
    }
    applicable()
        .filter(|(_, (rule, _))| matches!(rule.spec, RuleSpec::Tokens { .. }))
        .filter_map(|(_, (rule, zone))| measure(rule, zone, usage, request.now))
        .find(|line| line.remaining.is_some_and(|left| left == 0))
        .map(Breach::Limit)
}
