//! What a request's body shows, whatever its labels say: who wrote the last
//! user message, which tool calls it answers, and a digest of the latest
//! human input (the same through a turn's tool calls and retries, different
//! after a rewind or an edited history).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

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

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct Block<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) text: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_use_id: Option<String>,
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

pub(super) fn read_shape(
    messages: Option<&RawValue>,
    max_tokens: Option<u64>,
    has_tools: bool,
) -> BodyShape {
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
