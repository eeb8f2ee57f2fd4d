//! The turn tracker: which turns this daemon has seen, what each was counted
//! for, and what every request is charged to. A client's labels (request
//! class, turn origin, turn index) are claims; the tracker believes one only
//! where the body and its own history confirm it:
//!
//! - a known turn key whose latest human input differs from what was counted
//!   under it (a rewind, a resume at an earlier message, an edited history)
//!   is a new prompt;
//! - tool results continue a turn only when this daemon saw the replies
//!   that asked for them;
//! - a message typed while a turn runs counts (without the gate: refusing it
//!   would break the running turn);
//! - subagents, compaction and background calls are charged to a turn this
//!   daemon saw in their session, else to a small per-session allowance;
//! - every turn has an allowance of requests and tokens (the policy's
//!   per-turn caps); past it, the next request counts as a new prompt.
//!
//! Pure: no I/O and no clock; the caller persists what [`TurnTracker::count`]
//! reports and restores it with [`TurnTracker::restore_counted`].

mod key;
#[cfg(test)]
mod properties;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use ccgate_quota::wire::CountReason;
use ccgate_quota::{AgentTurns, CreditWeights, ModelFamily, PerFamily, Totals, TurnLimits};
use jiff::{SignedDuration, Timestamp};

pub use key::{Resolution, TurnKey};

use crate::classify::{Digest, RequestFacts};

/// How long a gated prompt may wait for a successful reply before its
/// reservation is given back.
pub const RESERVATION_TTL: SignedDuration = SignedDuration::from_mins(10);
/// How long turns are remembered after their last request.
pub const TURN_MEMORY: SignedDuration = SignedDuration::from_hours(48);
/// What a session may spend on subagents, compaction and background calls
/// before any turn of it was seen (the quota probe, a title).
pub const SESSION_ALLOWANCE: TurnLimits = TurnLimits {
    max_requests_per_turn: 8,
    max_tokens_per_turn: 200_000,
};
/// Tool-use ids remembered at most (the oldest go first).
const MAX_TOOL_USES: usize = 100_000;

/// The policy's part in resolving requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnRules {
    pub agent_turns: AgentTurns,
    pub limits: TurnLimits,
}

/// A counted turn as it is kept on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountedTurn {
    pub key: TurnKey,
    pub family: ModelFamily,
    pub at: Timestamp,
    pub input: Option<Digest>,
    pub session: Option<String>,
    pub prompt_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Used {
    requests: u32,
    tokens: u64,
}

/// A prompt allowed but not counted yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    generation: u32,
    since: Timestamp,
    offline: bool,
    reason: CountReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowance {
    /// The policy's per-turn caps.
    Turn,
    /// [`SESSION_ALLOWANCE`]: a session's calls before any turn was seen.
    Session,
}

#[derive(Debug, Clone)]
struct Turn {
    session: Option<String>,
    prompt_id: Option<String>,
    family: ModelFamily,
    /// The latest generation allowed or counted.
    generation: u32,
    /// The human input accepted for `generation`.
    input: Option<Digest>,
    /// The last counted generation and its input, to fall back to when a
    /// later one lapses uncounted.
    counted: Option<(u32, Option<Digest>)>,
    pending: Vec<Pending>,
    allowance: Allowance,
    used: Used,
    /// A compaction ran in this turn: its next request may carry the
    /// summary in place of the person's input.
    compacted: bool,
    last_activity: Timestamp,
}

impl Turn {
    fn new(
        session: Option<&str>,
        family: ModelFamily,
        input: Option<Digest>,
        now: Timestamp,
    ) -> Self {
        Self {
            session: session.map(str::to_owned),
            prompt_id: None,
            family,
            generation: 0,
            input,
            counted: None,
            pending: Vec::new(),
            allowance: Allowance::Turn,
            used: Used::default(),
            compacted: false,
            last_activity: now,
        }
    }

    /// The reason the current generation was allowed, while it waits to count.
    fn current_pending(&self) -> Option<CountReason> {
        self.pending
            .iter()
            .find(|p| p.generation == self.generation)
            .map(|p| p.reason)
    }

    fn over(&self, rules: &TurnRules) -> bool {
        let limits = match self.allowance {
            Allowance::Turn => rules.limits,
            Allowance::Session => SESSION_ALLOWANCE,
        };
        self.used.requests >= limits.max_requests_per_turn
            || self.used.tokens >= limits.max_tokens_per_turn
    }
}

#[derive(Debug, Default)]
pub struct TurnTracker {
    turns: HashMap<String, Turn>,
    /// Each session's latest turn (what its side calls are charged to).
    sessions: HashMap<String, String>,
    /// Prompt id → turn, for subagents, which carry their parent's.
    prompt_ids: HashMap<String, String>,
    /// Tool-use id → the turn whose reply asked for it.
    tool_uses: HashMap<String, String>,
    tool_use_order: VecDeque<String>,
}

impl TurnTracker {
    pub fn new() -> Self {
        Self::default()
    }

    fn link(&mut self, base: &str, session: Option<&str>, prompt_id: Option<&str>) {
        if let Some(session) = session {
            self.sessions.insert(session.to_owned(), base.to_owned());
        }
        if let Some(prompt_id) = prompt_id {
            self.prompt_ids
                .insert(prompt_id.to_owned(), base.to_owned());
            if let Some(turn) = self.turns.get_mut(base) {
                turn.prompt_id = Some(prompt_id.to_owned());
            }
        }
    }

    fn reserve_at(
        &mut self,
        key: &TurnKey,
        family: ModelFamily,
        input: Option<Digest>,
        (offline, reason): (bool, CountReason),
        now: Timestamp,
    ) {
        let turn = self
            .turns
            .entry(key.base.clone())
            .or_insert_with(|| Turn::new(None, family, input, now));
        if key.generation > turn.generation {
            // A new prompt of the turn: its allowance starts afresh.
            turn.used = Used::default();
        }
        if key.generation >= turn.generation {
            turn.generation = key.generation;
            turn.input = input;
            turn.family = family;
        }
        if !turn.pending.iter().any(|p| p.generation == key.generation) {
            turn.pending.push(Pending {
                generation: key.generation,
                since: now,
                offline,
                reason,
            });
        }
        turn.last_activity = now;
    }

    /// Records that the gate allowed `prompt` (a [`Resolution::Prompt`]).
    pub fn reserve(
        &mut self,
        prompt: &Resolution,
        facts: &RequestFacts,
        offline: bool,
        now: Timestamp,
    ) {
        let (key, reason) = match prompt {
            Resolution::Prompt { key, reason, .. } => (key, *reason),
            _ => return,
        };
        let family = ModelFamily::from_model_id(&facts.model);
        self.reserve_at(
            key,
            family,
            facts.shape.latest_human,
            (offline, reason),
            now,
        );
        let session = facts.session_id.as_deref();
        if let Some(turn) = self.turns.get_mut(&key.base)
            && turn.session.is_none()
        {
            turn.session = session.map(str::to_owned);
        }
        self.link(&key.base, session, facts.prompt_id.as_deref());
    }

    /// Marks prompt `key` counted; true only for the call that counted it.
    pub fn count(&mut self, key: &TurnKey, now: Timestamp) -> Option<CountedTurn> {
        let turn = self.turns.get_mut(&key.base)?;
        let position = turn
            .pending
            .iter()
            .position(|p| p.generation == key.generation)?;
        turn.pending.remove(position);
        if turn
            .counted
            .is_none_or(|(generation, _)| generation <= key.generation)
        {
            let input = if key.generation == turn.generation {
                turn.input
            } else {
                None
            };
            turn.counted = Some((key.generation, input));
        }
        turn.last_activity = now;
        Some(CountedTurn {
            key: key.clone(),
            family: turn.family,
            at: now,
            input: turn.counted.and_then(|(_, input)| input),
            session: turn.session.clone(),
            prompt_id: turn.prompt_id.clone(),
        })
    }

    /// Adds a reply's tokens (as Anthropic reported them) to its turn.
    pub fn add_tokens(&mut self, key: &TurnKey, tokens: u64) {
        if let Some(turn) = self.turns.get_mut(&key.base) {
            turn.used.tokens = turn.used.tokens.saturating_add(tokens);
        }
    }

    /// Remembers that the reply to a request of turn `key` asked for these
    /// tool calls: their results continue that turn.
    pub fn asked_for_tools(&mut self, key: &TurnKey, ids: &[String]) {
        for id in ids {
            if self
                .tool_uses
                .insert(id.clone(), key.base.clone())
                .is_none()
            {
                self.tool_use_order.push_back(id.clone());
            }
        }
        while self.tool_uses.len() > MAX_TOOL_USES {
            let Some(oldest) = self.tool_use_order.pop_front() else {
                break;
            };
            self.tool_uses.remove(&oldest);
        }
    }

    /// Remembers a turn counted before a restart.
    pub fn restore_counted(&mut self, counted: CountedTurn) {
        let turn = self
            .turns
            .entry(counted.key.base.clone())
            .or_insert_with(|| {
                Turn::new(
                    counted.session.as_deref(),
                    counted.family,
                    counted.input,
                    counted.at,
                )
            });
        if counted.key.generation >= turn.generation {
            turn.generation = counted.key.generation;
            turn.input = counted.input;
            turn.counted = Some((counted.key.generation, counted.input));
            turn.last_activity = counted.at;
        }
        let base = counted.key.base.clone();
        self.link(
            &base,
            counted.session.as_deref(),
            counted.prompt_id.as_deref(),
        );
    }

    /// Gives back reservations older than [`RESERVATION_TTL`] (with whether
    /// they were decided offline) and forgets turns idle for [`TURN_MEMORY`].
    pub fn expire(&mut self, now: Timestamp) -> Vec<(TurnKey, bool)> {
        let mut released = Vec::new();
        self.turns.retain(|base, turn| {
            turn.pending.retain(|pending| {
                let lapsed = now.duration_since(pending.since) >= RESERVATION_TTL;
                if lapsed {
                    released.push((
                        TurnKey {
                            base: base.clone(),
                            generation: pending.generation,
                        },
                        pending.offline,
                    ));
                }
                !lapsed
            });
            if turn.current_pending().is_none() {
                match turn.counted {
                    Some((generation, input)) if generation < turn.generation => {
                        turn.generation = generation;
                        turn.input = input;
                    }
                    // Never counted, nothing waiting: forget it, unless it is
                    // a free agent turn still in use.
                    None if turn.allowance == Allowance::Turn
                        && turn.pending.is_empty()
                        && (turn.generation > 0 || turn.used == Used::default()) =>
                    {
                        return false;
                    }
                    _ => {}
                }
            }
            now.duration_since(turn.last_activity) < TURN_MEMORY
        });
        let turns = &self.turns;
        self.sessions.retain(|_, base| turns.contains_key(base));
        self.prompt_ids.retain(|_, base| turns.contains_key(base));
        self.tool_uses.retain(|_, base| turns.contains_key(base));
        let tool_uses = &self.tool_uses;
        self.tool_use_order.retain(|id| tool_uses.contains_key(id));
        released
    }

    /// Prompts allowed but not yet counted, as usage happening now: an
    /// offline decision must not let two sessions pass the last unit.
    pub fn reserved_usage(&self, weights: &CreditWeights) -> PerFamily<Totals> {
        let mut totals = PerFamily::<Totals>::default();
        for turn in self.turns.values() {
            for _ in &turn.pending {
                totals[turn.family] += Totals {
                    prompts: 1,
                    credits: weights.weight(turn.family),
                    ..Totals::default()
                };
            }
        }
        totals
    }

    /// How many turns are remembered (for status and tests).
    pub fn len(&self) -> usize {
        self.turns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}
