//! Reads a `POST /v1/messages` request (headers and body, never modified)
//! into two things: what the client *claims* it is (request class, turn
//! origin, turn index — all fields a person can forge), and what its body
//! *shows* (who wrote the last message, which tool results it answers, a
//! digest of the latest human input). The turn tracker ([`crate::turns`])
//! believes a claim only where the body and its own history confirm it.

use std::borrow::Cow;

use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

pub const BILLING_PREFIX: &str = "x-anthropic-billing-header:";
/// Claude Code wraps its own notes to the model in these; they are not
/// something a person typed.
pub const SYSTEM_REMINDER: &str = "<system-reminder>";
/// The opening of the instruction Claude Code sends to compact a session.
pub const COMPACTION_INSTRUCTION: &str = "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools.";
/// The opening of the summary a compacted session continues from.
pub const CONTINUED_SESSION: &str = "This session is being continued from a previous conversation";
/// How Claude Code passes on a message typed while a turn runs: a text block
/// in the next tool-result request.
pub const TYPED_DURING_TURN: &str = "The user sent a new message while you were working:";

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

/// 128 bits of SHA-256: enough to tell contents apart, small to keep.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 16]);

impl Digest {
    pub fn of(pieces: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for piece in pieces {
            hasher.update((piece.len() as u64).to_le_bytes());
            hasher.update(piece);
        }
        let full = hasher.finalize();
        let mut short = [0u8; 16];
        short.copy_from_slice(&full[..16]);
        Self(short)
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        hex::decode(text).ok()?.try_into().ok().map(Self)
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..8])
    }
}

/// What the last `user` message holds (Claude Code's own reminders aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastUser {
    /// Something a person typed or pasted (possibly next to tool results,
    /// as after a blocked continuation).
    Input,
    /// Only results of the tool calls with these ids.
    ToolResults { ids: Vec<String> },
    /// Tool results and a message the person typed while the turn ran.
    TypedDuringTurn { ids: Vec<String> },
    /// Nothing (or no user message at all).
    Empty,
}

/// What the body shows, whatever the labels say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyShape {
    pub last_user: LastUser,
    /// The latest user message that holds human input, digested: the same
    /// through a turn's tool calls and retries, different after a rewind,
    /// a resume at an earlier message or an edited history.
    pub latest_human: Option<Digest>,
    /// That input continues a compacted session (its summary).
    pub continues_compacted: bool,
    /// The last user message is Claude Code's compaction instruction.
    pub compaction_instruction: bool,
    /// At most one output token and no tools: Claude Code's quota probe.
    pub quota_probe: bool,
    /// The last user message and the number of messages: the same for a
    /// byte-identical retry, different for the next request.
    pub fingerprint: Digest,
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
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_use_id: Option<String>,
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

/// One user message as the classifier sees it.
#[derive(Default)]
struct UserContent<'a> {
    /// What a person wrote or pasted: texts (trimmed) and media (raw JSON).
    human: Vec<Cow<'a, str>>,
    tool_result_ids: Vec<String>,
}

impl UserContent<'_> {
    fn digest(&self) -> Option<Digest> {
        if self.human.is_empty() {
            return None;
        }
        let pieces: Vec<&[u8]> = self.human.iter().map(|p| p.as_bytes()).collect();
        Some(Digest::of(&pieces))
    }

    fn starts_with(&self, prefix: &str) -> bool {
        self.human.iter().any(|piece| piece.starts_with(prefix))
    }
}

fn read_user_content(content: &RawValue) -> UserContent<'_> {
    let mut read = UserContent::default();
    if let Ok(text) = serde_json::from_str::<Cow<str>>(content.get()) {
        let text = trimmed(text);
        if !text.is_empty() && !text.starts_with(SYSTEM_REMINDER) {
            read.human.push(text);
        }
        return read;
    }
    let Ok(blocks) = serde_json::from_str::<Vec<&RawValue>>(content.get()) else {
        return read;
    };
    for raw in blocks {
        let Ok(block) = serde_json::from_str::<Block>(raw.get()) else {
            continue;
        };
        match block.kind.as_deref() {
            Some("tool_result") => {
                read.tool_result_ids
                    .push(block.tool_use_id.unwrap_or_default());
            }
            Some("text") => {
                let text = trimmed(block.text.unwrap_or_default());
                if !text.is_empty() && !text.starts_with(SYSTEM_REMINDER) {
                    read.human.push(text);
                }
            }
            // Images, documents and anything new: a person's input.
            _ => read.human.push(Cow::Borrowed(raw.get())),
        }
    }
    read
}

fn trimmed(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    }
}

fn user_content(raw: &RawValue) -> Option<UserContent<'_>> {
    let message: Message = serde_json::from_str(raw.get()).ok()?;
    if message.role.as_deref() != Some("user") {
        return None;
    }
    Some(message.content.map(read_user_content).unwrap_or_default())
}

fn read_shape(messages: Option<&RawValue>, max_tokens: Option<u64>, has_tools: bool) -> BodyShape {
    let messages: Vec<&RawValue> = messages
        .and_then(|m| serde_json::from_str(m.get()).ok())
        .unwrap_or_default();
    let mut users = messages
        .iter()
        .enumerate()
        .rev()
        .filter_map(|(index, raw)| user_content(raw).map(|content| (index, raw, content)));
    let last = users.next();
    let (last_user, compaction_instruction, fingerprint) = match &last {
        Some((index, raw, content)) => {
            let ids = &content.tool_result_ids;
            let typed = !content.human.is_empty()
                && content
                    .human
                    .iter()
                    .all(|p| p.starts_with(TYPED_DURING_TURN));
            let kind = match (ids.is_empty(), content.human.is_empty()) {
                (true, true) => LastUser::Empty,
                (true, false) => LastUser::Input,
                (false, true) => LastUser::ToolResults { ids: ids.clone() },
                (false, false) if typed => LastUser::TypedDuringTurn { ids: ids.clone() },
                (false, false) => LastUser::Input,
            };
            let instruction = content
                .human
                .first()
                .is_some_and(|p| p.starts_with(COMPACTION_INSTRUCTION));
            let count = (messages.len() as u64).to_le_bytes();
            let position = (*index as u64).to_le_bytes();
            let fingerprint = Digest::of(&[raw.get().as_bytes(), &count, &position]);
            (kind, instruction, fingerprint)
        }
        None => (
            LastUser::Empty,
            false,
            Digest::of(&[&(messages.len() as u64).to_le_bytes()]),
        ),
    };
    let latest = last
        .into_iter()
        .chain(users)
        .find(|(_, _, content)| !content.human.is_empty());
    BodyShape {
        last_user,
        latest_human: latest.as_ref().and_then(|(_, _, c)| c.digest()),
        continues_compacted: latest
            .as_ref()
            .is_some_and(|(_, _, c)| c.starts_with(CONTINUED_SESSION)),
        compaction_instruction,
        quota_probe: max_tokens.is_some_and(|m| m <= 1) && !has_tools,
        fingerprint,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(headers: &[(&str, &str)], body: serde_json::Value) -> RequestFacts {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        RequestFacts::read(&map, body.to_string().as_bytes()).unwrap()
    }

    fn billing(origin: &str, turn: u64) -> serde_json::Value {
        serde_json::json!([{"type": "text", "text": format!("{BILLING_PREFIX} cc_turn_origin={origin}; cc_turn_index={turn};")}])
    }

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
    fn labels_become_claims() {
        let session = [("x-claude-code-session-id", "s1")];
        let turn = facts(
            &session,
            serde_json::json!({"model": "m", "system": billing("sdk", 1), "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(
            turn.claim(),
            Claim::Turn {
                key: "s1:1".into(),
                starter: Starter::Person
            }
        );
        let wakeup = facts(
            &session,
            serde_json::json!({"model": "m", "system": billing("scheduled", 2), "messages": []}),
        );
        assert!(matches!(
            wakeup.claim(),
            Claim::Turn {
                starter: Starter::Agent,
                ..
            }
        ));
        let forged = facts(
            &[("x-claude-code-compaction", "1")],
            serde_json::json!({"model": "m", "system": billing("sdk", 1), "messages": []}),
        );
        assert_eq!(forged.claim(), Claim::Compaction);
        assert!(!forged.shape.compaction_instruction);
        let curl = facts(
            &[],
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        );
        assert_eq!(curl.claim(), Claim::Unlabelled);
        assert!(!curl.identified());
    }

    #[test]
    fn the_latest_human_input_survives_the_cli_reshaping_it() {
        // Claude Code sends the same prompt as blocks with a reminder, then
        // as a plain string once the turn continues with tool results.
        let prompt = facts(
            &[],
            serde_json::json!({"model": "m", "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>\nnotes\n</system-reminder>"},
                    {"type": "text", "text": "run echo lab", "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": "env"}]}),
        );
        let continuation = facts(
            &[],
            serde_json::json!({"model": "m", "messages": [
                {"role": "user", "content": "run echo lab"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "lab"}]}]}),
        );
        assert_eq!(prompt.shape.last_user, LastUser::Input);
        assert_eq!(
            continuation.shape.last_user,
            LastUser::ToolResults {
                ids: vec!["toolu_1".into()]
            }
        );
        assert!(prompt.shape.latest_human.is_some());
        assert_eq!(prompt.shape.latest_human, continuation.shape.latest_human);
        assert_ne!(prompt.shape.fingerprint, continuation.shape.fingerprint);

        let rewritten = facts(
            &[],
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "something else"}]}),
        );
        assert_ne!(rewritten.shape.latest_human, prompt.shape.latest_human);
    }

    #[test]
    fn a_message_typed_during_a_turn_rides_with_tool_results() {
        let typed = facts(
            &[],
            serde_json::json!({"model": "m", "messages": [
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"},
                    {"type": "text", "text": format!("{TYPED_DURING_TURN} also check the logs")}]}]}),
        );
        assert_eq!(
            typed.shape.last_user,
            LastUser::TypedDuringTurn {
                ids: vec!["toolu_9".into()]
            }
        );
        // Other text next to tool results is a person's new input.
        let merged = facts(
            &[],
            serde_json::json!({"model": "m", "messages": [
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"},
                    {"type": "text", "text": "hello again"}]}]}),
        );
        assert_eq!(merged.shape.last_user, LastUser::Input);
    }

    #[test]
    fn compaction_and_the_quota_probe_have_shapes() {
        let compaction = facts(
            &[],
            serde_json::json!({"model": "m", "tools": [{"name": "Bash"}], "messages": [
                {"role": "user", "content": "say hello"},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
                {"role": "user", "content": format!("{COMPACTION_INSTRUCTION}\n\nYour task is to create a detailed summary")}]}),
        );
        assert!(compaction.shape.compaction_instruction);
        assert!(!compaction.shape.quota_probe);
        let probe = facts(
            &[],
            serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}),
        );
        assert!(probe.shape.quota_probe);
    }
}
