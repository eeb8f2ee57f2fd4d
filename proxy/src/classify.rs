//! Reads a `POST /v1/messages` request (headers and body, never modified) and
//! says what it is in the turn model: a request of a turn a person started,
//! or an agent-driven turn, a subagent, a compaction or a background call.
//! Whether a person's request is the prompt or a continuation depends on
//! what came before; [`crate::turns`] decides that.

use ccgate_quota::wire::RequestKind;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

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

/// Everything the classifier reads from one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: String,
    pub stream: bool,
    /// `x-claude-code-request-class`: main, subagent, compaction, auxiliary.
    pub request_class: Option<String>,
    pub session_id: Option<String>,
    pub prompt_id: Option<String>,
    /// `x-claude-code-compaction` is present.
    pub compaction: bool,
    pub billing: Option<Billing>,
    /// The last `user` message holds something other than `tool_result`
    /// blocks (text, an image): what a person typed or pasted.
    pub last_user_has_input: bool,
    /// The last `user` message holds only `tool_result` blocks.
    pub last_user_only_tool_results: bool,
    /// SHA-256 of the `messages` array: set only when the body-only rule
    /// needs it (no usable turn fields and a person's input), so Claude
    /// Code's requests are not hashed whole on the request path.
    pub messages_digest: Option<String>,
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
    #[serde(default, borrow)]
    system: Option<&'a RawValue>,
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
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
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default)]
    role: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    text: Option<String>,
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
    first.text
}

/// What the last `user` message holds: (has a person's input, only tool results).
fn last_user_message_shape(messages: &RawValue) -> (bool, bool) {
    let Ok(messages) = serde_json::from_str::<Vec<&RawValue>>(messages.get()) else {
        return (false, false);
    };
    let last_user = messages.iter().rev().find_map(|raw| {
        let message: Message = serde_json::from_str(raw.get()).ok()?;
        (message.role.as_deref() == Some("user")).then_some(message.content)
    });
    let Some(Some(content)) = last_user else {
        return (false, false);
    };
    if let Ok(text) = serde_json::from_str::<String>(content.get()) {
        return (!text.trim().is_empty(), false);
    }
    let Ok(blocks) = serde_json::from_str::<Vec<Block>>(content.get()) else {
        return (false, false);
    };
    let tool_results = blocks
        .iter()
        .filter(|b| b.kind.as_deref() == Some("tool_result"))
        .count();
    let input = blocks.len() - tool_results;
    (input > 0, tool_results > 0 && input == 0)
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
        let metadata_session = parsed
            .metadata
            .and_then(|m| m.user_id)
            .and_then(|user| serde_json::from_str::<MetadataUser>(&user).ok())
            .and_then(|user| user.session_id)
            .filter(|s| !s.is_empty());
        let (last_user_has_input, last_user_only_tool_results) = parsed
            .messages
            .map(last_user_message_shape)
            .unwrap_or((false, false));
        let mut facts = Self {
            model,
            stream: parsed.stream.unwrap_or(false),
            request_class: header(headers, "x-claude-code-request-class")
                .map(|c| c.to_ascii_lowercase()),
            session_id: header(headers, "x-claude-code-session-id").or(metadata_session),
            prompt_id: header(headers, "x-claude-code-prompt-id")
                .or_else(|| billing.as_ref().and_then(|b| b.prompt_id.clone())),
            compaction: headers.contains_key("x-claude-code-compaction"),
            billing,
            last_user_has_input,
            last_user_only_tool_results,
            messages_digest: None,
        };
        if facts.last_user_has_input && by_turn_fields(&facts).is_none() {
            let messages = parsed.messages.map_or("", |m| m.get());
            facts.messages_digest = Some(crate::fsutil::sha256_hex(messages.as_bytes()));
        }
        Ok(facts)
    }

    /// Whether the request carries any of Claude Code's turn fields.
    pub fn identified(&self) -> bool {
        self.request_class.is_some() || self.billing.is_some()
    }
}

/// What a request is, before the turn table says prompt or continuation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// A request of a turn a person started (`main`, origin human or sdk, or
    /// a client without turn fields whose last message holds input). The
    /// first request of each `turn_key` is the prompt.
    PersonTurn {
        turn_key: String,
        /// The last user message holds only tool results: a continuation
        /// even when its turn was not seen (e.g. after a daemon restart).
        only_tool_results: bool,
    },
    /// Never a prompt; metered and attributed to the session.
    NotAPrompt(RequestKind),
}

/// Origins of turns a person started.
const PERSON_ORIGINS: [&str; 2] = ["human", "sdk"];
/// Origins of turns the agent started.
const AGENT_ORIGINS: [&str; 3] = ["task_notification", "peer", "scheduled"];

pub fn classify(facts: &RequestFacts) -> Class {
    by_turn_fields(facts).unwrap_or_else(|| body_only(facts))
}

/// The class Claude Code's own fields give, if they are there and usable.
fn by_turn_fields(facts: &RequestFacts) -> Option<Class> {
    let billing = facts.billing.as_ref();
    if facts.request_class.as_deref() == Some("subagent") || billing.is_some_and(|b| b.is_subagent)
    {
        return Some(Class::NotAPrompt(RequestKind::Subagent));
    }
    if facts.request_class.as_deref() == Some("compaction") || facts.compaction {
        return Some(Class::NotAPrompt(RequestKind::Compaction));
    }
    if facts.request_class.as_deref() == Some("auxiliary") {
        return Some(Class::NotAPrompt(RequestKind::Background));
    }
    let origin = billing.and_then(|b| b.turn_origin.as_deref())?;
    if AGENT_ORIGINS.contains(&origin) {
        return Some(Class::NotAPrompt(RequestKind::AgentTurn));
    }
    if !PERSON_ORIGINS.contains(&origin) {
        return None;
    }
    claude_code_turn_key(facts).map(|turn_key| Class::PersonTurn {
        turn_key,
        only_tool_results: facts.last_user_only_tool_results,
    })
}

/// `session:turn_index`, the key that stays the same through tool
/// continuations, retries, the non-streaming fallback and compaction.
fn claude_code_turn_key(facts: &RequestFacts) -> Option<String> {
    let session = facts.session_id.as_deref()?;
    match (
        facts.billing.as_ref().and_then(|b| b.turn_index),
        &facts.prompt_id,
    ) {
        (Some(turn), _) => Some(format!("{session}:{turn}")),
        (None, Some(prompt)) => Some(format!("{session}:p:{prompt}")),
        (None, None) => None,
    }
}

/// The rule for clients without (usable) turn fields: the request is a
/// person's turn when its last user message holds input; byte-identical
/// retries share a key.
fn body_only(facts: &RequestFacts) -> Class {
    match (facts.last_user_has_input, &facts.messages_digest) {
        (true, Some(digest)) => Class::PersonTurn {
            turn_key: format!("body:{}", &digest[..32]),
            only_tool_results: false,
        },
        _ => Class::NotAPrompt(RequestKind::Continuation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_text_parses_every_field() {
        let billing = Billing::parse(
            "x-anthropic-billing-header: cc_version=2.1.330.8c4; cc_entrypoint=cli; cch=a066b; \
             cc_is_subagent=true; cc_prompt_id=5eb6; cc_turn_origin=human; cc_prompt_index=2; \
             cc_turn_index=3; cc_workload=cron;",
        )
        .unwrap();
        assert_eq!(billing.entrypoint.as_deref(), Some("cli"));
        assert_eq!(billing.prompt_id.as_deref(), Some("5eb6"));
        assert_eq!(
            (billing.prompt_index, billing.turn_index),
            (Some(2), Some(3))
        );
        assert!(billing.is_subagent);
        assert_eq!(billing.workload.as_deref(), Some("cron"));
        assert_eq!(Billing::parse("You are Claude Code"), None);
    }

    #[test]
    fn bodies_that_are_not_messages_are_refused() {
        let headers = HeaderMap::new();
        assert!(matches!(
            RequestFacts::read(&headers, b"{not json"),
            Err(BodyError::NotJson(_))
        ));
        assert_eq!(
            RequestFacts::read(&headers, br#"{"messages":[]}"#),
            Err(BodyError::NoModel)
        );
    }

    #[test]
    fn claude_code_requests_are_not_hashed_whole() {
        let mut headers = HeaderMap::new();
        headers.insert("x-claude-code-session-id", "s1".parse().unwrap());
        let body = br#"{"model":"m","system":[{"type":"text","text":"x-anthropic-billing-header: cc_turn_origin=sdk; cc_turn_index=1;"}],"messages":[{"role":"user","content":"hi"}]}"#;
        let facts = RequestFacts::read(&headers, body).unwrap();
        assert_eq!(facts.messages_digest, None);
        assert!(
            matches!(classify(&facts), Class::PersonTurn { turn_key, .. } if turn_key == "s1:1")
        );
    }

    #[test]
    fn clients_without_turn_fields_fall_back_to_the_body() {
        let headers = HeaderMap::new();
        let prompt = br#"{"model":"claude-sonnet-5","messages":[{"role":"user","content":"hi"}]}"#;
        let facts = RequestFacts::read(&headers, prompt).unwrap();
        assert!(!facts.identified());
        let Class::PersonTurn { turn_key, .. } = classify(&facts) else {
            panic!("a curl prompt is a person's turn");
        };
        // A byte-identical retry has the same key.
        let again = classify(&RequestFacts::read(&headers, prompt).unwrap());
        assert!(matches!(again, Class::PersonTurn { turn_key: k, .. } if k == turn_key));
        let tool = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"x"}]}]}"#;
        assert_eq!(
            classify(&RequestFacts::read(&headers, tool).unwrap()),
            Class::NotAPrompt(RequestKind::Continuation)
        );
        let image = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#;
        assert!(matches!(
            classify(&RequestFacts::read(&headers, image).unwrap()),
            Class::PersonTurn { .. }
        ));
    }
}
