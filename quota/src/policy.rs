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

/// Whether turns the agent starts by itself (a `/loop` wake-up, a finished
/// background task, a peer's hand-back) count as prompts. They are work a
/// person set going, so by default they do, at the same weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentTurns {
    #[default]
    Count,
    /// Metered and charged to the turn that started them, not counted.
    Free,
}

/// Backstops against what no rule foresaw: past either cap, the next
/// request of a turn counts (and is gated) as a new prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TurnLimits {
    /// Requests one prompt may carry (tool calls, subagents, compaction,
    /// background calls) before the next counts as a new prompt.
    pub max_requests_per_turn: u32,
    /// Tokens one prompt may use, as Anthropic's replies report them:
    /// input, cache creation and output (cache reads are left out, since
    /// every request of a long turn re-reads the whole context).
    pub max_tokens_per_turn: u64,
}

impl TurnLimits {
    pub const DEFAULT_MAX_REQUESTS: u32 = 250;
    pub const DEFAULT_MAX_TOKENS: u64 = 2_000_000;

    pub fn validate(&self) -> Result<(), String> {
        if !(10..=100_000).contains(&self.max_requests_per_turn) {
            return Err(format!(
                "max_requests_per_turn {} must be between 10 and 100000",
                self.max_requests_per_turn
            ));
        }
        if !(10_000..=1_000_000_000).contains(&self.max_tokens_per_turn) {
            return Err(format!(
                "max_tokens_per_turn {} must be between 10000 and 1000000000",
                self.max_tokens_per_turn
            ));
        }
        Ok(())
    }
}

impl Default for TurnLimits {
    fn default() -> Self {
        Self {
            max_requests_per_turn: Self::DEFAULT_MAX_REQUESTS,
            max_tokens_per_turn: Self::DEFAULT_MAX_TOKENS,
        }
    }
}

/// In team-credential mode: whether a person's own API key may be used
/// through the proxy instead of the team's credential (metered and
/// labelled as a personal key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalApiKeys {
    #[default]
    Deny,
    Allow,
}

/// What kind of secret a subscription's credential is, which decides the
/// header it travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A long-lived subscription token (`claude setup-token`,
    /// `sk-ant-oat…`): `Authorization: Bearer`.
    OauthToken,
    /// An API key (`sk-ant-api…`): `x-api-key`.
    ApiKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OauthToken => "oauth_token",
            Self::ApiKey => "api_key",
        }
    }

    /// The kind a pasted secret has, by Anthropic's prefixes.
    pub fn detect(secret: &str) -> Option<Self> {
        if secret.starts_with("sk-ant-oat") {
            Some(Self::OauthToken)
        } else if secret.starts_with("sk-ant-api") || secret.starts_with("sk-ant-admin") {
            Some(Self::ApiKey)
        } else {
            None
        }
    }
}

/// How this person's Claude Code signs in to Anthropic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CredentialMode {
    /// Each person signs Claude Code in with their own login.
    #[default]
    PersonalLogin,
    /// The subscription's credential is held by the daemon and swapped in
    /// for a per-device placeholder; the person never holds it. The device
    /// fetches the secret (`POST /credential`) when `version` changes.
    TeamCredential {
        subscription_id: i64,
        kind: CredentialKind,
        /// Grows with every rotation.
        version: u64,
    },
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
    #[serde(default)]
    pub agent_turns: AgentTurns,
    #[serde(default)]
    pub turn_limits: TurnLimits,
    #[serde(default)]
    pub personal_api_keys: PersonalApiKeys,
    #[serde(default)]
    pub credential: CredentialMode,
    /// Whether devices install the server's signed agent release by
    /// themselves (the team's setting; on unless turned off).
    #[serde(default = "on")]
    pub auto_update: bool,
}

fn on() -> bool {
    true
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
