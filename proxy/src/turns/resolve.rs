//! How the tracker decides what a request is: the rules of the turn model
//! (see the module above), one method per kind of claim.

use ccgate_quota::wire::{CountReason, RequestKind};
use ccgate_quota::{AgentTurns, ModelFamily};
use jiff::Timestamp;

use super::{Allowance, Resolution, Turn, TurnKey, TurnRules, TurnTracker};
use crate::classify::{Claim, LastUser, RequestFacts, Starter};

impl TurnTracker {
    /// Decides what a request is. Charges it to a turn's allowance (or
    /// reserves a typed message) at once; a [`Resolution::Prompt`] changes
    /// nothing until the gate allows it and [`Self::reserve`] is called.
    pub fn resolve(
        &mut self,
        facts: &RequestFacts,
        rules: &TurnRules,
        now: Timestamp,
    ) -> Resolution {
        let family = ModelFamily::from_model_id(&facts.model);
        let request = Request {
            facts,
            rules,
            family,
            now,
        };
        let session = facts.session_id.as_deref();
        match facts.claim() {
            Claim::Turn {
                key,
                starter: Starter::Person,
            } => self.turn(&request, key, RequestKind::Prompt, CountReason::NewPrompt),
            Claim::Turn {
                key,
                starter: Starter::Agent,
            } => match rules.agent_turns {
                AgentTurns::Count => self.turn(
                    &request,
                    key,
                    RequestKind::AgentTurn,
                    CountReason::AgentTurn,
                ),
                AgentTurns::Free => self.free_turn(&request, key),
            },
            Claim::Subagent => {
                let parent = facts
                    .prompt_id
                    .as_deref()
                    .and_then(|id| self.prompt_ids.get(id))
                    .or_else(|| session.and_then(|s| self.sessions.get(s)))
                    .filter(|base| self.turns.contains_key(*base))
                    .cloned();
                match parent {
                    Some(base) => self.charge(&request, &base, RequestKind::Subagent),
                    None => self.unconfirmed(&request, RequestKind::Subagent),
                }
            }
            Claim::Compaction => {
                let turn = self.session_turn(session);
                match turn {
                    Some(base) if facts.shape.compaction_instruction => {
                        if let Some(turn) = self.turns.get_mut(&base) {
                            turn.compacted = true;
                        }
                        self.charge(&request, &base, RequestKind::Compaction)
                    }
                    _ => self.unconfirmed(&request, RequestKind::Compaction),
                }
            }
            // The label and the session id are the client's word: only a
            // one-token quota probe is free without a turn seen in its
            // session (a fresh session id per call must not buy anything).
            Claim::Background if facts.shape.quota_probe => {
                self.charge_session(&request, RequestKind::Background)
            }
            Claim::Background => match self.session_turn(session) {
                Some(base) => self.charge(&request, &base, RequestKind::Background),
                None => self.unconfirmed(&request, RequestKind::Background),
            },
            Claim::Unlabelled => {
                let key = format!("body:{}", facts.shape.fingerprint.to_hex());
                self.turn(&request, key, RequestKind::Prompt, CountReason::NewPrompt)
            }
        }
    }

    /// A request that claims to belong to turn `base`.
    fn turn(
        &mut self,
        request: &Request,
        base: String,
        kind: RequestKind,
        reason: CountReason,
    ) -> Resolution {
        if self.turns.contains_key(&base) {
            return self.known_turn(request, &base, kind);
        }
        match &request.facts.shape.last_user {
            LastUser::ToolResults { ids } | LastUser::TypedDuringTurn { ids } => {
                match self.owner_of(ids) {
                    // Results asked for by a turn seen under another key.
                    Some(owner) => self.known_turn(request, &owner, kind),
                    None => Resolution::Prompt {
                        key: TurnKey::first(base),
                        kind,
                        reason: CountReason::Unconfirmed,
                    },
                }
            }
            LastUser::Input | LastUser::Empty => Resolution::Prompt {
                key: TurnKey::first(base),
                kind,
                reason,
            },
        }
    }

    /// A request of a turn this tracker knows.
    fn known_turn(&mut self, request: &Request, base: &str, kind: RequestKind) -> Resolution {
        let shape = &request.facts.shape;
        let turn = &self.turns[base];
        let key = TurnKey {
            base: base.to_owned(),
            generation: turn.generation,
        };
        // Claude Code keeps a turn's prompt id through its tool calls and
        // retries, and gives a rewound turn a new one (even with the same text).
        let other_prompt = request
            .facts
            .prompt_id
            .as_deref()
            .is_some_and(|id| turn.prompt_id.as_deref().is_some_and(|known| known != id));
        let same_input = shape.latest_human == turn.input && !other_prompt;
        let summary_after_compaction = turn.compacted && shape.continues_compacted && !other_prompt;
        let rewritten = |key: &TurnKey| Resolution::Prompt {
            key: key.next(),
            kind,
            reason: CountReason::RewrittenTurn,
        };
        match &shape.last_user {
            LastUser::ToolResults { ids } | LastUser::TypedDuringTurn { ids }
                if !self.all_asked_by(ids, base) =>
            {
                Resolution::Prompt {
                    key: key.next(),
                    kind,
                    reason: CountReason::Unconfirmed,
                }
            }
            LastUser::TypedDuringTurn { .. } if !same_input => {
                let key = key.next();
                let reason = CountReason::TypedDuringTurn;
                let input = shape.latest_human;
                self.reserve_at(&key, request.family, input, (false, reason), request.now);
                Resolution::UngatedPrompt {
                    key,
                    reason: CountReason::TypedDuringTurn,
                }
            }
            _ if same_input || summary_after_compaction => {
                if summary_after_compaction && let Some(turn) = self.turns.get_mut(base) {
                    turn.input = shape.latest_human;
                    turn.compacted = false;
                }
                match self.turns[base].current_pending() {
                    // Another attempt at the prompt: not gated again, but it
                    // uses the allowance like any request of the turn, so
                    // copies sent side by side run into the cap.
                    Some(reason) if !self.turns[base].over(request.rules) => {
                        if let Some(turn) = self.turns.get_mut(base) {
                            turn.used.requests += 1;
                            turn.last_activity = request.now;
                        }
                        Resolution::PromptRetry { key, kind, reason }
                    }
                    Some(_) => Resolution::Prompt {
                        key: key.next(),
                        kind,
                        reason: CountReason::TurnCap,
                    },
                    None => self.charge(request, base, RequestKind::Continuation),
                }
            }
            _ => rewritten(&key),
        }
    }

    /// An agent-started turn the policy lets run without counting.
    fn free_turn(&mut self, request: &Request, base: String) -> Resolution {
        if self.turns.contains_key(&base) {
            return self.known_turn(request, &base, RequestKind::AgentTurn);
        }
        let facts = request.facts;
        let session = facts.session_id.as_deref();
        let turn = Turn::new(
            session,
            request.family,
            facts.shape.latest_human,
            request.now,
        );
        self.turns.insert(base.clone(), turn);
        self.link(&base, session, facts.prompt_id.as_deref());
        self.charge(request, &base, RequestKind::AgentTurn)
    }

    /// A request whose label did not hold up: a prompt of its own, keyed by
    /// its body so that a byte-identical retry is the same prompt.
    fn unconfirmed(&mut self, request: &Request, kind: RequestKind) -> Resolution {
        let facts = request.facts;
        let base = format!(
            "{}:u:{}",
            facts.session_id.as_deref().unwrap_or("-"),
            facts.shape.fingerprint.to_hex()
        );
        self.turn(request, base, kind, CountReason::Unconfirmed)
    }

    /// Charges a request to turn `base`, or makes it a prompt once the
    /// turn's allowance is spent.
    fn charge(&mut self, request: &Request, base: &str, kind: RequestKind) -> Resolution {
        let Some(turn) = self.turns.get_mut(base) else {
            return self.unconfirmed(request, kind);
        };
        turn.last_activity = request.now;
        let key = TurnKey {
            base: base.to_owned(),
            generation: turn.generation,
        };
        if turn.over(request.rules) {
            return Resolution::Prompt {
                key: key.next(),
                kind,
                reason: CountReason::TurnCap,
            };
        }
        turn.used.requests += 1;
        // The turn's prompt has not counted yet (its reply failed, or is
        // still streaming): this request's success counts it, so a prompt
        // whose own reply fails cannot lend its turn out for free.
        if let Some(reason) = turn.current_pending() {
            return Resolution::PromptRetry { key, kind, reason };
        }
        Resolution::Charged { key, kind }
    }

    /// Charges a side call to its session's allowance.
    fn charge_session(&mut self, request: &Request, kind: RequestKind) -> Resolution {
        let base = format!(
            "{}:session",
            request.facts.session_id.as_deref().unwrap_or("-")
        );
        self.turns.entry(base.clone()).or_insert_with(|| Turn {
            allowance: Allowance::Session,
            ..Turn::new(
                request.facts.session_id.as_deref(),
                request.family,
                None,
                request.now,
            )
        });
        self.charge(request, &base, kind)
    }

    fn session_turn(&self, session: Option<&str>) -> Option<String> {
        session
            .and_then(|s| self.sessions.get(s))
            .filter(|base| self.turns.contains_key(*base))
            .cloned()
    }

    fn owner_of(&self, ids: &[String]) -> Option<String> {
        let owner = self.tool_uses.get(ids.first()?)?;
        (self.all_asked_by(ids, owner) && self.turns.contains_key(owner)).then(|| owner.clone())
    }

    fn all_asked_by(&self, ids: &[String], base: &str) -> bool {
        !ids.is_empty()
            && ids
                .iter()
                .all(|id| self.tool_uses.get(id).is_some_and(|owner| owner == base))
    }
}

/// One request being resolved.
struct Request<'a> {
    facts: &'a RequestFacts,
    rules: &'a TurnRules,
    family: ModelFamily,
    now: Timestamp,
}
