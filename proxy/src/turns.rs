//! The turn table: which person-started turns were gated and which were
//! counted. The first request of a turn key is the prompt; it is counted once,
//! when a reply for the turn first succeeds. Every later request with the same
//! key (tool results, retries, the non-streaming fallback) is a continuation.

use std::collections::HashMap;

use ccgate_quota::wire::RequestKind;
use ccgate_quota::{CreditWeights, ModelFamily, PerFamily, Totals};
use jiff::{SignedDuration, Timestamp};

use crate::classify::Class;

/// How long a gated prompt may wait for a successful reply before its
/// reservation is given back.
pub const RESERVATION_TTL: SignedDuration = SignedDuration::from_mins(10);
/// How long counted turns are remembered (a turn never lasts that long).
pub const COUNTED_MEMORY: SignedDuration = SignedDuration::from_hours(48);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnState {
    /// Allowed by the gate, not yet counted (no reply has succeeded).
    Reserved {
        offline: bool,
    },
    Counted,
}

#[derive(Debug, Clone, Copy)]
struct Turn {
    state: TurnState,
    family: ModelFamily,
    since: Timestamp,
}

/// What a request is once the table has been consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The first request of a person's turn: gate it as a prompt.
    NewPrompt { turn_key: String },
    /// Another attempt at a prompt that was allowed but not counted yet
    /// (a retry after an error): no new gate, counted if it succeeds.
    PromptRetry { turn_key: String },
    /// Not a prompt; `turn_key` is set for continuations of a person's turn.
    Other {
        kind: RequestKind,
        turn_key: Option<String>,
    },
}

impl Resolution {
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::NewPrompt { .. } | Self::PromptRetry { .. } => RequestKind::Prompt,
            Self::Other { kind, .. } => *kind,
        }
    }

    pub fn turn_key(&self) -> Option<&str> {
        match self {
            Self::NewPrompt { turn_key } | Self::PromptRetry { turn_key } => Some(turn_key),
            Self::Other { turn_key, .. } => turn_key.as_deref(),
        }
    }
}

#[derive(Debug, Default)]
pub struct TurnTable {
    turns: HashMap<String, Turn>,
}

impl TurnTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn resolve(&self, class: &Class) -> Resolution {
        match class {
            Class::NotAPrompt(kind) => Resolution::Other {
                kind: *kind,
                turn_key: None,
            },
            Class::PersonTurn {
                turn_key,
                only_tool_results,
            } => match self.turns.get(turn_key).map(|t| t.state) {
                Some(TurnState::Counted) => Resolution::Other {
                    kind: RequestKind::Continuation,
                    turn_key: Some(turn_key.clone()),
                },
                Some(TurnState::Reserved { .. }) => Resolution::PromptRetry {
                    turn_key: turn_key.clone(),
                },
                // Tool results of a turn this table never saw (the daemon
                // restarted mid-turn): the prompt was the turn's first request.
                None if *only_tool_results => Resolution::Other {
                    kind: RequestKind::Continuation,
                    turn_key: Some(turn_key.clone()),
                },
                None => Resolution::NewPrompt {
                    turn_key: turn_key.clone(),
                },
            },
        }
    }

    /// Records that the gate allowed the prompt of `turn_key`.
    pub fn reserve(&mut self, turn_key: &str, family: ModelFamily, offline: bool, now: Timestamp) {
        self.turns.entry(turn_key.to_owned()).or_insert(Turn {
            state: TurnState::Reserved { offline },
            family,
            since: now,
        });
    }

    /// Marks the turn counted; true only for the call that counted it.
    pub fn count(&mut self, turn_key: &str, family: ModelFamily, now: Timestamp) -> bool {
        let turn = self.turns.entry(turn_key.to_owned()).or_insert(Turn {
            state: TurnState::Reserved { offline: false },
            family,
            since: now,
        });
        if turn.state == TurnState::Counted {
            return false;
        }
        *turn = Turn {
            state: TurnState::Counted,
            family,
            since: now,
        };
        true
    }

    /// Remembers turns counted before a restart.
    pub fn remember_counted(&mut self, turn_key: String, family: ModelFamily, at: Timestamp) {
        self.turns.insert(
            turn_key,
            Turn {
                state: TurnState::Counted,
                family,
                since: at,
            },
        );
    }

    /// Forgets reservations older than [`RESERVATION_TTL`] and counted turns
    /// older than [`COUNTED_MEMORY`]; returns the reservations given back,
    /// with whether they were decided offline.
    pub fn expire(&mut self, now: Timestamp) -> Vec<(String, bool)> {
        let mut released = Vec::new();
        self.turns.retain(|key, turn| {
            let age = now.duration_since(turn.since);
            match turn.state {
                TurnState::Reserved { offline } if age >= RESERVATION_TTL => {
                    released.push((key.clone(), offline));
                    false
                }
                TurnState::Counted => age < COUNTED_MEMORY,
                TurnState::Reserved { .. } => true,
            }
        });
        released
    }

    /// Prompts allowed but not yet counted, as usage happening now: an
    /// offline decision must not let two sessions pass the last unit.
    pub fn reserved_usage(&self, weights: &CreditWeights) -> PerFamily<Totals> {
        let mut totals = PerFamily::<Totals>::default();
        for turn in self.turns.values() {
            if let TurnState::Reserved { .. } = turn.state {
                totals[turn.family] += Totals {
                    prompts: 1,
                    credits: weights.weight(turn.family),
                    ..Totals::default()
                };
            }
        }
        totals
    }
}
