//! The agent API between ccgate-proxy and ccgate-server (`/api/agent/v1/*`).
//! Both sides use these types, so a field changes in one place.
//!
//! | call | body | answer |
//! |---|---|---|
//! | `POST /register` | [`RegisterRequest`] | [`RegisterResponse`] |
//! | `POST /sync` | [`SyncRequest`] | [`SyncResponse`] |
//! | `POST /check` | [`CheckRequest`] | [`CheckResponse`] |
//! | `POST /events` | [`EventsRequest`] | [`EventsResponse`] |
//! | `POST /credential` | `{}` | [`CredentialResponse`] (team-credential mode only) |
//! | `GET /stream` | — | server-sent events: `sync` ([`SyncResponse`]) on every change, `ping` |
//!
//! Every call but `register` carries `Authorization: Bearer <device token>`.
//! Errors are `{"error": "...", "code": "..."}` with a 4xx/5xx status.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::engine::DenyReason;
use crate::policy::{CredentialKind, Policy, UserStatus};
use crate::usage::UsageSnapshot;

pub const AGENT_API_PREFIX: &str = "/api/agent/v1";

/// Upper bound for one events batch (see [`crate::limits`] for them all).
pub use crate::limits::MAX_EVENTS_PER_BATCH;

/// What a device tells the server about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub hostname: String,
    /// `linux` or `macos`.
    pub os: String,
    pub arch: String,
    #[serde(default)]
    pub os_version: Option<String>,
    /// The OS account whose Claude Code this device gates.
    #[serde(default)]
    pub os_user: Option<String>,
    #[serde(default)]
    pub claude_version: Option<String>,
    /// ccgate's own version.
    pub agent_version: String,
    /// SHA-256 (hex) of the running daemon binary: what the server compares
    /// with its release to tell whether the device is behind.
    #[serde(default)]
    pub agent_build: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub code: String,
    pub device: DeviceInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub device_id: i64,
    /// 256 random bits, hex. Shown once; the server keeps only its hash.
    pub device_token: String,
    pub sync: SyncResponse,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    #[serde(default)]
    pub device: Option<DeviceInfo>,
}

/// The policy and usage a proxy decides from, sent on every sync and pushed
/// on the live stream whenever something about the user changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub server_time: Timestamp,
    pub policy: Policy,
    pub usage: UsageSnapshot,
    /// A replacement device token (after a kill, or an admin's rotation).
    /// The proxy stores it and uses it from then on; the old one stops
    /// working as soon as the new one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_device_token: Option<String>,
    /// The agent release the server serves, if any; a daemon with
    /// auto-update on installs it when it is signed by a key it trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_release: Option<crate::release::AgentRelease>,
}

/// Asks whether a new prompt may go out. An allowed answer reserves the
/// prompt until the turn's event settles it (or it expires), so several
/// sessions cannot all pass the last unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Identifies the turn on this device: `session_id:turn_index` for Claude
    /// Code, a body hash for clients without turn fields. At most 200 bytes.
    pub turn_key: String,
    pub model: String,
    #[serde(default)]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResponse {
    pub allowed: bool,
    #[serde(default)]
    pub reason: Option<DenyReason>,
    /// The full block message when refused.
    #[serde(default)]
    pub message: Option<String>,
    /// Credits the prompt costs.
    pub cost: u64,
    /// When the reservation lapses if no event settles it.
    #[serde(default)]
    pub reservation_expires_at: Option<Timestamp>,
    pub status: UserStatus,
    pub policy_version: u64,
    pub server_time: Timestamp,
}

/// The subscription credential of a person in team-credential mode. The
/// server answers only over https (or plain http on loopback), only to an
/// active user's device, and only for the subscription the policy names;
/// the device keeps it in memory and in a root-only encrypted cache.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialResponse {
    pub subscription_id: i64,
    pub kind: CredentialKind,
    /// The policy's `credential.version` this secret belongs to.
    pub version: u64,
    pub secret: String,
}

impl std::fmt::Debug for CredentialResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialResponse")
            .field("subscription_id", &self.subscription_id)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a request counted a prompt (`prompt_counted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountReason {
    /// The first request of a turn a person started.
    NewPrompt,
    /// A turn the agent started (wake-up, task notification, hand-back),
    /// counted by policy.
    AgentTurn,
    /// A message the person typed while a turn was running (Claude Code
    /// sends it inside the next tool-result request).
    TypedDuringTurn,
    /// A turn seen before, sent again with other text (rewind, resume at
    /// an earlier message, edited history).
    RewrittenTurn,
    /// The turn went past the per-turn request or token cap.
    TurnCap,
    /// A request whose labels did not hold up (a compaction without a
    /// compaction's body, a subagent or continuation of no turn this
    /// daemon saw).
    Unconfirmed,
}

impl CountReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewPrompt => "new_prompt",
            Self::AgentTurn => "agent_turn",
            Self::TypedDuringTurn => "typed_during_turn",
            Self::RewrittenTurn => "rewritten_turn",
            Self::TurnCap => "turn_cap",
            Self::Unconfirmed => "unconfirmed",
        }
    }
}

/// Which credential a request went out with (team-credential mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialUse {
    /// The person's own login (personal-login mode).
    Personal,
    /// The team's subscription credential, swapped in by the proxy.
    Team,
    /// A person's own API key, let through by team setting.
    PersonalApiKey,
}

/// How the proxy classified a request (see the turn model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// The first request of a turn a person started: the one that counts.
    Prompt,
    /// A later request of a counted turn: tool results, retries, fallbacks.
    Continuation,
    /// A turn the agent started (task notification, peer hand-back, wake-up).
    AgentTurn,
    Subagent,
    Compaction,
    /// Titles, classifiers, the quota probe, token counting.
    Background,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Continuation => "continuation",
            Self::AgentTurn => "agent_turn",
            Self::Subagent => "subagent",
            Self::Compaction => "compaction",
            Self::Background => "background",
        }
    }
}

/// How a request ended, as seen by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The reply arrived whole.
    Completed,
    /// Anthropic answered with an error status or an SSE `error` event.
    UpstreamError,
    /// The connection to Anthropic broke mid-reply.
    UpstreamCut,
    /// The client went away (Esc, Ctrl-C) before the end.
    ClientAborted,
    /// ccgate cut the reply (kill switch).
    CutByCcgate,
}

/// Token counts as the Messages API reports them in `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl TokenUsage {
    pub fn new(input: u64, output: u64, cache_creation: u64, cache_read: u64) -> Self {
        Self {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: cache_creation,
            cache_read_input_tokens: cache_read,
        }
    }
}

impl std::ops::AddAssign for TokenUsage {
    fn add_assign(&mut self, other: TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }
}

/// One `POST /v1/messages` (or other metered call) that reached Anthropic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEvent {
    pub model: String,
    pub kind: RequestKind,
    #[serde(default)]
    pub turn_key: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    /// True on exactly one request per counted prompt.
    pub prompt_counted: bool,
    /// Upstream HTTP status.
    pub status: u16,
    pub outcome: Outcome,
    #[serde(default)]
    pub stop_reason: Option<String>,
    pub usage: TokenUsage,
    pub duration_ms: u64,
    /// The gate decision was made without the server.
    #[serde(default)]
    pub decided_offline: bool,
    /// Why it counted a prompt, when `prompt_counted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_reason: Option<CountReason>,
    /// `usage` is the proxy's estimate, not Anthropic's count: the reply was
    /// cut before its final usage arrived (output estimated from the deltas
    /// seen), or abandoned before its first byte (input estimated from the
    /// request's size).
    #[serde(default)]
    pub estimated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialUse>,
    /// The subscription's utilization in this reply's headers (Anthropic's
    /// figure: the client cannot change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<Box<SubscriptionUsage>>,
    /// The account the request named (`account_uuid` in its metadata) under
    /// a personal login. Claude Code's claim: it only says which history the
    /// utilization above belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// A request ccgate answered itself with a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedEvent {
    pub model: String,
    pub kind: RequestKind,
    #[serde(default)]
    pub turn_key: Option<String>,
    pub reason: DenyReason,
    pub message: String,
    #[serde(default)]
    pub decided_offline: bool,
}

/// A protected file was changed behind ccgate's back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TamperEvent {
    pub path: String,
    /// `modified`, `deleted`, `permissions`, `settings_key`, …
    pub what: String,
    pub restored: bool,
    #[serde(default)]
    pub detail: Option<String>,
}

/// Events the server refused (they did not fit the wire limits, or could
/// not be stored): the device keeps them aside, on disk, and says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFault {
    /// How many events are held back now.
    pub quarantined: u32,
    /// The server's reason for the latest one.
    pub reason: String,
}

/// What became of an agent release the server offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOutcome {
    /// Installed; the daemon restarts into it.
    Installed,
    /// Not installed (bad signature, checksum, download, disk): the old
    /// version keeps running.
    Failed,
}

/// The daemon tried to install the server's agent release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUpdate {
    pub from_version: String,
    /// The version offered (as signed, when the signature was read).
    pub to_version: String,
    pub outcome: UpdateOutcome,
    /// Why it failed, or what was installed.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    Request(RequestEvent),
    Blocked(BlockedEvent),
    /// A reserved prompt will not be counted (every attempt failed).
    TurnReleased {
        turn_key: String,
    },
    Tamper(TamperEvent),
    DeliveryFault(DeliveryFault),
    AgentUpdate(AgentUpdate),
}

/// An event with its idempotency key. `at` is the device's clock corrected
/// by the offset seen at the last sync; the server clamps it to sane bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub id: Uuid,
    pub at: Timestamp,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsRequest {
    pub events: Vec<AgentEvent>,
    /// The latest subscription utilization seen in Anthropic's headers.
    #[serde(default)]
    pub subscription: Option<SubscriptionUsage>,
}

/// An event of a batch the server did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedEvent {
    pub id: Uuid,
    pub reason: String,
}

/// The server's answer to a batch: every event it does not list in
/// `refused` is stored (or was already), so the device may forget it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsResponse {
    /// Newly stored.
    pub accepted: u32,
    /// Already known (a replay): acknowledged, not counted again.
    pub duplicates: u32,
    /// Not stored, for good: the device quarantines these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedEvent>,
    pub server_time: Timestamp,
    pub policy_version: u64,
    /// Usage after these events, so the proxy's offline view includes them.
    pub usage: UsageSnapshot,
}

/// Error body of every agent API failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default)]
    pub code: Option<String>,
}

/// One window of the subscription's own limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UtilizationWindow {
    /// 0.0 to 1.0 (can exceed 1.0 when over).
    #[serde(default)]
    pub utilization: Option<f64>,
    #[serde(default)]
    pub resets_at: Option<Timestamp>,
    #[serde(default)]
    pub status: Option<String>,
}

/// The subscription's real utilization, read from the
/// `anthropic-ratelimit-unified-*` headers of Anthropic's replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionUsage {
    pub observed_at: Timestamp,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub representative_claim: Option<String>,
    #[serde(default)]
    pub resets_at: Option<Timestamp>,
    /// By window name as in the headers: `5h`, `7d`, `7d_sonnet`, ….
    #[serde(default)]
    pub windows: BTreeMap<String, UtilizationWindow>,
    /// `overage-status`: whether extra usage beyond the plan is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_status: Option<String>,
    /// `overage-disabled-reason` (or `overage-reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overage_reason: Option<String>,
    /// `fallback` / `fallback-percentage`: the cheaper model Claude Code may
    /// fall back to near a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Every other `…-unified-*` header, by the rest of its name, so that a
    /// new one shows up without a release.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, String>,
}

pub const UNIFIED_HEADER_PREFIX: &str = "anthropic-ratelimit-unified-";
/// Unknown headers kept per observation (a reply cannot fill memory).
const MAX_OTHER_HEADERS: usize = 16;

impl SubscriptionUsage {
    /// Reads the unified rate-limit headers; `None` when there are none.
    /// Unknown parts are ignored so that new windows do not break parsing.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        observed_at: Timestamp,
    ) -> Option<Self> {
        let mut usage = SubscriptionUsage {
            observed_at,
            status: None,
            representative_claim: None,
            resets_at: None,
            windows: BTreeMap::new(),
            overage_status: None,
            overage_reason: None,
            fallback: None,
            other: BTreeMap::new(),
        };
        let mut seen = false;
        for (name, value) in headers {
            // Called on every reply: compare without allocating.
            let prefix = UNIFIED_HEADER_PREFIX.len();
            if name.len() <= prefix
                || !name.is_char_boundary(prefix)
                || !name[..prefix].eq_ignore_ascii_case(UNIFIED_HEADER_PREFIX)
            {
                continue;
            }
            let rest = &name[prefix..];
            let rest: std::borrow::Cow<str> = if rest.bytes().any(|b| b.is_ascii_uppercase()) {
                rest.to_ascii_lowercase().into()
            } else {
                rest.into()
            };
            seen = true;
            let value = value.trim();
            match rest.as_ref() {
                "status" => usage.status = Some(value.to_owned()),
                "representative-claim" => usage.representative_claim = Some(value.to_owned()),
                "reset" => usage.resets_at = parse_epoch(value),
                "overage-status" => usage.overage_status = Some(value.to_owned()),
                "overage-disabled-reason" | "overage-reason" => {
                    usage.overage_reason = Some(value.to_owned())
                }
                "fallback" | "fallback-percentage" => usage.fallback = Some(value.to_owned()),
                other => {
                    let window_field = other
                        .rsplit_once('-')
                        .filter(|(_, field)| matches!(*field, "utilization" | "reset" | "status"));
                    let Some((window, field)) = window_field else {
                        if usage.other.len() < MAX_OTHER_HEADERS {
                            usage.other.insert(other.to_owned(), value.to_owned());
                        }
                        continue;
                    };
                    let entry = usage.windows.entry(window.to_owned()).or_default();
                    match field {
                        "utilization" => entry.utilization = value.parse().ok(),
                        "reset" => entry.resets_at = parse_epoch(value),
                        _ => entry.status = Some(value.to_owned()),
                    }
                }
            }
        }
        usage
            .windows
            .retain(|_, w| *w != UtilizationWindow::default());
        seen.then_some(usage)
    }
}

/// The two windows every plan has.
pub const FIVE_HOUR: &str = "5h";
pub const SEVEN_DAY: &str = "7d";

impl SubscriptionUsage {
    pub fn five_hour(&self) -> Option<&UtilizationWindow> {
        self.windows.get(FIVE_HOUR)
    }

    pub fn seven_day(&self) -> Option<&UtilizationWindow> {
        self.windows.get(SEVEN_DAY)
    }

    /// Shortens every text to the wire limits and keeps at most
    /// [`crate::limits::MAX_SUBSCRIPTION_WINDOWS`] windows (the proxy does
    /// this before sending, the server again on receipt).
    pub fn fit_to_wire(&mut self) {
        use crate::limits::{MAX_LABEL_BYTES, MAX_SUBSCRIPTION_WINDOWS, fit_text};
        let fit = |slot: &mut Option<String>| {
            if let Some(text) = slot {
                *text = fit_text(text, MAX_LABEL_BYTES);
            }
        };
        fit(&mut self.status);
        fit(&mut self.representative_claim);
        fit(&mut self.overage_status);
        fit(&mut self.overage_reason);
        fit(&mut self.fallback);
        self.windows = std::mem::take(&mut self.windows)
            .into_iter()
            .filter(|(name, _)| name.len() <= MAX_LABEL_BYTES)
            .take(MAX_SUBSCRIPTION_WINDOWS)
            .map(|(name, mut window)| {
                fit(&mut window.status);
                (name, window)
            })
            .collect();
        self.other = std::mem::take(&mut self.other)
            .into_iter()
            .filter(|(name, _)| name.len() <= MAX_LABEL_BYTES)
            .take(MAX_OTHER_HEADERS)
            .map(|(name, value)| (name, fit_text(&value, MAX_LABEL_BYTES)))
            .collect();
    }
}

fn parse_epoch(value: &str) -> Option<Timestamp> {
    value
        .parse::<i64>()
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .or_else(|| value.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_headers_become_subscription_usage() {
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let headers = [
            ("Anthropic-Ratelimit-Unified-Status", "allowed_warning"),
            (
                "anthropic-ratelimit-unified-representative-claim",
                "five_hour",
            ),
            ("anthropic-ratelimit-unified-reset", "1795353600"),
            ("anthropic-ratelimit-unified-5h-utilization", "0.82"),
            ("anthropic-ratelimit-unified-5h-reset", "1795353600"),
            ("anthropic-ratelimit-unified-5h-status", "allowed_warning"),
            ("anthropic-ratelimit-unified-7d-utilization", "0.4"),
            ("anthropic-ratelimit-unified-7d-reset", "1795800000"),
            ("anthropic-ratelimit-unified-fallback-percentage", "0.5"),
            ("content-type", "text/event-stream"),
        ];
        let usage = SubscriptionUsage::from_headers(headers, now).unwrap();
        assert_eq!(usage.status.as_deref(), Some("allowed_warning"));
        assert_eq!(usage.representative_claim.as_deref(), Some("five_hour"));
        assert_eq!(usage.windows["5h"].utilization, Some(0.82));
        assert_eq!(
            usage.windows["5h"].resets_at,
            Some(Timestamp::from_second(1_795_353_600).unwrap())
        );
        assert_eq!(usage.windows["7d"].utilization, Some(0.4));
        assert!(!usage.windows.contains_key("fallback"));
        assert_eq!(usage.fallback.as_deref(), Some("0.5"));
        assert_eq!(usage.five_hour().unwrap().utilization, Some(0.82));
        assert!(SubscriptionUsage::from_headers([("content-type", "x")], now).is_none());
    }

    #[test]
    fn model_buckets_overage_and_unknown_headers_are_kept() {
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let headers = [
            ("anthropic-ratelimit-unified-7d_opus-utilization", "0.61"),
            ("anthropic-ratelimit-unified-7d_opus-reset", "1795800000"),
            ("anthropic-ratelimit-unified-overage-status", "rejected"),
            (
                "anthropic-ratelimit-unified-overage-disabled-reason",
                "org_level_disabled",
            ),
            ("anthropic-ratelimit-unified-5h-surpassed-threshold", "0.9"),
            ("anthropic-ratelimit-unified-brand-new", "yes"),
        ];
        let usage = SubscriptionUsage::from_headers(headers, now).unwrap();
        assert_eq!(usage.windows["7d_opus"].utilization, Some(0.61));
        assert_eq!(usage.overage_status.as_deref(), Some("rejected"));
        assert_eq!(usage.overage_reason.as_deref(), Some("org_level_disabled"));
        assert_eq!(usage.other["5h-surpassed-threshold"], "0.9");
        assert_eq!(usage.other["brand-new"], "yes");
        assert!(!usage.windows.contains_key("overage"));
    }

    #[test]
    fn a_fitted_observation_stays_within_the_limits() {
        let now: Timestamp = "2026-11-22T10:00:00Z".parse().unwrap();
        let long = "x".repeat(10_000);
        let mut headers: Vec<(String, String)> = (0..100)
            .map(|i| {
                (
                    format!("anthropic-ratelimit-unified-w{i}-status"),
                    long.clone(),
                )
            })
            .collect();
        headers.push(("anthropic-ratelimit-unified-status".into(), long.clone()));
        let mut usage = SubscriptionUsage::from_headers(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            now,
        )
        .unwrap();
        usage.fit_to_wire();
        assert!(usage.windows.len() <= crate::limits::MAX_SUBSCRIPTION_WINDOWS);
        assert!(usage.status.unwrap().len() <= crate::limits::MAX_LABEL_BYTES);
        assert!(usage.windows.values().all(|w| {
            w.status
                .as_ref()
                .is_none_or(|s| s.len() <= crate::limits::MAX_LABEL_BYTES)
        }));
    }

    #[test]
    fn events_carry_their_type_tag_flat() {
        let event = AgentEvent {
            id: Uuid::nil(),
            at: "2026-11-22T10:00:00Z".parse().unwrap(),
            body: EventBody::TurnReleased {
                turn_key: "s:1".into(),
            },
        };
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], "turn_released");
        assert_eq!(value["turn_key"], "s:1");
        let back: AgentEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
    }
}
