//! Names of turns and what the tracker decides about a request.

use ccgate_quota::wire::{CountReason, RequestKind};

/// A turn and the generation of its prompt: `base` is `session:turn_index`
/// (or a body-derived key); each later prompt under the same base (a
/// rewind, a message typed during the turn, a renewal past the per-turn
/// caps) is a new generation, written `base~N`, so the server reserves and
/// counts each one once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TurnKey {
    pub base: String,
    pub generation: u32,
}

impl TurnKey {
    pub fn first(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            generation: 0,
        }
    }

    pub fn next(&self) -> Self {
        Self {
            base: self.base.clone(),
            generation: self.generation + 1,
        }
    }

    /// Reads the written form back (`base` or `base~N`).
    pub fn parse(text: &str) -> Self {
        match text.rsplit_once('~') {
            Some((base, generation)) if !base.is_empty() => match generation.parse() {
                Ok(generation) => Self {
                    base: base.to_owned(),
                    generation,
                },
                Err(_) => Self::first(text),
            },
            _ => Self::first(text),
        }
    }
}

impl std::fmt::Display for TurnKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.generation == 0 {
            f.write_str(&self.base)
        } else {
            write!(f, "{}~{}", self.base, self.generation)
        }
    }
}

/// What a request is once the tracker has weighed its claim against the
/// body and the daemon's own history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Gate it as a prompt; it counts when a reply for it succeeds.
    Prompt {
        key: TurnKey,
        kind: RequestKind,
        reason: CountReason,
    },
    /// Another attempt at a prompt that was allowed but has not counted yet
    /// (a retry after an error): not gated again, counts if it succeeds.
    PromptRetry {
        key: TurnKey,
        kind: RequestKind,
        reason: CountReason,
    },
    /// Counts without the gate: a message typed while a turn runs (refusing
    /// it would break the running turn). Already reserved.
    UngatedPrompt { key: TurnKey, reason: CountReason },
    /// Charged to a turn's allowance; not a prompt.
    Charged { key: TurnKey, kind: RequestKind },
}

impl Resolution {
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::Prompt { kind, .. }
            | Self::PromptRetry { kind, .. }
            | Self::Charged { kind, .. } => *kind,
            Self::UngatedPrompt { .. } => RequestKind::Continuation,
        }
    }

    pub fn key(&self) -> &TurnKey {
        match self {
            Self::Prompt { key, .. }
            | Self::PromptRetry { key, .. }
            | Self::UngatedPrompt { key, .. }
            | Self::Charged { key, .. } => key,
        }
    }

    /// Why it counts a prompt if its reply succeeds; `None` when it never does.
    pub fn count_reason(&self) -> Option<CountReason> {
        match self {
            Self::Prompt { reason, .. }
            | Self::PromptRetry { reason, .. }
            | Self::UngatedPrompt { reason, .. } => Some(*reason),
            Self::Charged { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_write_and_read_back() {
        let first = TurnKey::first("s1:3");
        assert_eq!(first.to_string(), "s1:3");
        let third = first.next().next();
        assert_eq!(third.to_string(), "s1:3~2");
        assert_eq!(TurnKey::parse("s1:3~2"), third);
        assert_eq!(TurnKey::parse("s1:3"), first);
        assert_eq!(TurnKey::parse("odd~key").base, "odd~key");
    }
}
