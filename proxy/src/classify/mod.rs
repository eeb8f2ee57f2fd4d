//! Reads a `POST /v1/messages` request (headers and body, never modified)
//! into two things: what the client *claims* it is (request class, turn
//! origin, turn index — all fields a person can forge), and what its body
//! *shows* ([`BodyShape`]). The turn tracker ([`crate::turns`]) believes a
//! claim only where the body and its own history confirm it.

mod shape;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use shape::{Block, read_shape};
pub use shape::{
    BodyShape, COMPACTION_INSTRUCTION, CONTINUED_SESSION, Digest, LastUser, SYSTEM_REMINDER,
    TYPED_DURING_TURN,
};

pub const BILLING_PREFIX: &str = "x-anthropic-billing-header:";

/// The billing fields Claude Code puts in the text of `system[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Billing {
    pub version: Option<String>,
    pub entrypoint: Option<String>,
    pub prompt_id: Option<String>,
    pub turn_origin: Option<String>,
    pub prompt_index: Option<u64>,
    pub turn_index: Option<u64>,
    pub is_subagent: bool,
    pub workload: Option<String>,
}

impl Billing {
    /// Parses `x-anthropic-billing-header: cc_version=…; cc_turn_index=1;`.
    pub fn parse(text: &str) -> Option<Self> {
        let fields = text.trim_start().strip_prefix(BILLING_PREFIX)?;
        let mut billing = Billing::default();
        for field in fields.split(';') {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let text = || Some(value.to_owned()).filter(|v| !v.is_empty());
            match key.trim() {
                "cc_version" => billing.version = text(),
                "cc_entrypoint" => billing.entrypoint = text(),
                "cc_prompt_id" => billing.prompt_id = text(),
                "cc_turn_origin" => billing.turn_origin = text(),
                "cc_prompt_index" => billing.prompt_index = value.parse().ok(),
                "cc_turn_index" => billing.turn_index = value.parse().ok(),
                "cc_is_subagent" => billing.is_subagent = value == "true",
                "cc_workload" => billing.workload = text(),
                _ => {}
            }
        }
        Some(billing)
    }
}

/// Who started a turn, as the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starter {
    /// Origin `human` (interactive) or `sdk` (`-p`, the SDK).
    Person,
    /// Origin `task_notification`, `peer` or `scheduled`.
    Agent,
}

/// What the client's labels say a request is. Every field behind a claim can
/// be forged; [`crate::turns::TurnTracker`] decides what to believe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A request of a turn, keyed `session:turn_index` (or `session:p:prompt_id`).
    Turn {
        key: String,
        starter: Starter,
    },
    Subagent,
    Compaction,
    /// Titles, classifiers, the quota probe.
    Background,
    /// No usable turn fields (older CLIs, the SDK, curl): the body decides.
    Unlabelled,
}

/// Everything read from one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: String,
    pub stream: bool,
    /// `x-claude-code-request-class`: main, subagent, compaction, auxiliary.
    pub request_class: Option<String>,
    pub session_id: Option<String>,
    pub prompt_id: Option<String>,
    /// `x-claude-code-compaction` is present.
    pub compaction_header: bool,
    pub billing: Option<Billing>,
    pub shape: BodyShape,
    /// `account_uuid` in `metadata.user_id`: the subscription's account
    /// under a personal login (empty under an API key: then `None`).
    pub account: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    #[error("the request body is not JSON: {0}")]
    NotJson(String),
    #[error("the request body has no model")]
    NoModel,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default, borrow)]
    system: Option<&'a RawValue>,
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tools: Option<&'a RawValue>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct MetadataUser {
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    account_uuid: Option<String>,
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The text of `system[0]` (or the whole system string).
fn first_system_text(system: &RawValue) -> Option<String> {
    if let Ok(text) = serde_json::from_str::<String>(system.get()) {
        return Some(text);
    }
    let blocks: Vec<&RawValue> = serde_json::from_str(system.get()).ok()?;
    let first: Block = serde_json::from_str(blocks.first()?.get()).ok()?;
    first.text.map(Cow::into_owned)
}

impl RequestFacts {
    pub fn read(headers: &HeaderMap, body: &[u8]) -> Result<Self, BodyError> {
        let parsed: Body =
            serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
        let model = parsed
            .model
            .filter(|m| !m.trim().is_empty())
            .ok_or(BodyError::NoModel)?;
        let billing = parsed
            .system
            .and_then(first_system_text)
            .and_then(|text| Billing::parse(&text));
        let metadata_user = parsed
            .metadata
            .and_then(|m| m.user_id)
            .and_then(|user| serde_json::from_str::<MetadataUser>(&user).ok());
        let (metadata_session, account) = metadata_user.map_or((None, None), |user| {
            let present = |text: Option<String>| text.filter(|s| !s.trim().is_empty());
            (present(user.session_id), present(user.account_uuid))
        });
        let has_tools = parsed.tools.is_some_and(|t| t.get() != "[]");
        Ok(Self {
            model,
            stream: parsed.stream.unwrap_or(false),
            request_class: header(headers, "x-claude-code-request-class")
                .map(|c| c.to_ascii_lowercase()),
            session_id: header(headers, "x-claude-code-session-id").or(metadata_session),
            prompt_id: header(headers, "x-claude-code-prompt-id")
                .or_else(|| billing.as_ref().and_then(|b| b.prompt_id.clone())),
            compaction_header: headers.contains_key("x-claude-code-compaction"),
            billing,
            shape: read_shape(parsed.messages, parsed.max_tokens, has_tools),
            account,
        })
    }

    /// Whether the request carries any of Claude Code's turn fields.
    pub fn identified(&self) -> bool {
        self.request_class.is_some() || self.billing.is_some()
    }

    /// What the labels say the request is.
    pub fn claim(&self) -> Claim {
        let class = self.request_class.as_deref();
        let billing = self.billing.as_ref();
        if class == Some("subagent") || billing.is_some_and(|b| b.is_subagent) {
            return Claim::Subagent;
        }
        if class == Some("compaction") || self.compaction_header {
            return Claim::Compaction;
        }
        if class == Some("auxiliary") {
            return Claim::Background;
        }
        let starter = match billing.and_then(|b| b.turn_origin.as_deref()) {
            Some("human" | "sdk") => Starter::Person,
            Some("task_notification" | "peer" | "scheduled") => Starter::Agent,
            _ => return Claim::Unlabelled,
        };
        match self.turn_key() {
            Some(key) => Claim::Turn { key, starter },
            None => Claim::Unlabelled,
        }
    }

    /// `session:turn_index`, the key that stays the same through a turn's
    /// tool calls, retries and the non-streaming fallback.
    fn turn_key(&self) -> Option<String> {
        let session = self.session_id.as_deref()?;
        match (
            self.billing.as_ref().and_then(|b| b.turn_index),
            &self.prompt_id,
        ) {
            (Some(turn), _) => Some(format!("{session}:{turn}")),
            (None, Some(prompt)) => Some(format!("{session}:p:{prompt}")),
            (None, None) => None,
        }
    }
}
