//! A user's policy as the server sends it, and its compiled form with time
//! zones resolved once rather than on every decision.

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::model::CreditWeights;
use crate::rules::{Rule, RuleError, RuleSpec, validate_time_zone};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: i64,
    pub name: String,
    pub slug: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    /// Blocked until resumed; usage so far is kept.
    Paused,
    /// The kill switch: blocked at once, running turns cut, logged out.
    Killed,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Killed => "killed",
        }
    }
}

impl std::str::FromStr for UserStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "active" => Ok(Self::Active),
            "paused" => Ok(Self::Paused),
            "killed" => Ok(Self::Killed),
            other => Err(format!(
                "unknown status {other:?} (expected active, paused or killed)"
            )),
        }
    }
}

/// What to do with requests that carry none of Claude Code's turn fields
/// (older CLIs, the SDK, curl): count them by the body-only rule, or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnidentifiedClients {
    #[default]
    Allow,
    Deny,
}

/// Everything a proxy needs to decide for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Grows with every change that concerns this user.
    pub version: u64,
    pub team: String,
    pub user: UserRef,
    pub status: UserStatus,
    /// The user's IANA time zone (their own, else the team's).
    pub time_zone: String,
    pub credit_weights: CreditWeights,
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub unidentified_clients: UnidentifiedClients,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("policy time zone: {0}")]
    TimeZone(RuleError),
    #[error("rule {index}: {error}")]
    Rule { index: usize, error: RuleError },
}

/// A policy with its time zones resolved.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub policy: Policy,
    pub tz: TimeZone,
    /// The zone each rule is evaluated in (a time-of-day rule may set its own).
    rule_zones: Vec<TimeZone>,
}

impl CompiledPolicy {
    pub fn new(policy: Policy) -> Result<Self, PolicyError> {
        let tz = validate_time_zone(&policy.time_zone).map_err(PolicyError::TimeZone)?;
        let rule_zones = policy
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| match &rule.spec {
                RuleSpec::TimeOfDay { tz: Some(name), .. } => {
                    validate_time_zone(name).map_err(|error| PolicyError::Rule { index, error })
                }
                _ => Ok(tz.clone()),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            policy,
            tz,
            rule_zones,
        })
    }

    /// The rules with the zone each is evaluated in.
    pub fn rules(&self) -> impl Iterator<Item = (&Rule, &TimeZone)> {
        self.policy.rules.iter().zip(&self.rule_zones)
    }

    /// Name of the zone a rule is evaluated in, for messages.
    pub fn zone_name(zone: &TimeZone) -> &str {
        zone.iana_name().unwrap_or("UTC")
    }
}
