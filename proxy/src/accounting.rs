//! The daemon's books: the turn tracker and the local usage view, behind one
//! lock. Deciding offline reads both (usage so far plus prompts reserved but
//! not counted), and settling a reply changes both (the reservation becomes
//! usage), so they must move together; one lock makes that the only order
//! there is.

use std::sync::Mutex;

use ccgate_quota::wire::TokenUsage;
use ccgate_quota::{
    CompiledPolicy, Decision, GateRequest, ModelFamily, Totals, UsageReport, UsageSnapshot,
    evaluate,
};
use jiff::Timestamp;
use uuid::Uuid;

use crate::classify::RequestFacts;
use crate::ledger::{Metered, StoredUsage};
use crate::local_usage::LocalUsage;
use crate::turns::{CountedTurn, Resolution, TurnKey, TurnRules, TurnTracker};

#[derive(Debug, Default)]
struct Books {
    turns: TurnTracker,
    usage: LocalUsage,
}

#[derive(Debug, Default)]
pub struct Accounting {
    books: Mutex<Books>,
}

/// A reply that ended, as far as the books are concerned.
#[derive(Debug)]
pub struct Settlement<'a> {
    pub key: &'a TurnKey,
    /// Its prompt counts (a prompt attempt whose reply succeeded).
    pub counts: bool,
    pub usage: TokenUsage,
    pub family: ModelFamily,
    /// Credits a counted prompt of this family costs.
    pub credit_weight: u64,
    /// Tool calls the reply asked for.
    pub tool_uses: &'a [String],
    pub event_id: Uuid,
    pub at: Timestamp,
}

impl Accounting {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().expect("accounting lock")
    }

    pub fn resolve(&self, facts: &RequestFacts, rules: &TurnRules, now: Timestamp) -> Resolution {
        self.books().turns.resolve(facts, rules, now)
    }

    /// Records that the server allowed `prompt`.
    pub fn reserve(&self, prompt: &Resolution, facts: &RequestFacts, now: Timestamp) {
        self.books().turns.reserve(prompt, facts, false, now);
    }

    /// Decides from the policy and what this machine knows (usage plus
    /// prompts reserved); an allowed prompt given in `reserve` is reserved
    /// under the same lock, so two sessions cannot both take the last unit.
    pub fn decide(
        &self,
        policy: &CompiledPolicy,
        request: GateRequest,
        reserve: Option<(&Resolution, &RequestFacts)>,
    ) -> Decision {
        let mut books = self.books();
        let reserved = books.turns.reserved_usage(&policy.policy.credit_weights);
        let decision = evaluate(policy, &books.usage.source(reserved), request);
        if decision.allowed()
            && let Some((prompt, facts)) = reserve
        {
            books.turns.reserve(prompt, facts, true, request.now);
        }
        decision
    }

    pub fn report(&self, policy: &CompiledPolicy, now: Timestamp) -> UsageReport {
        let books = self.books();
        let reserved = books.turns.reserved_usage(&policy.policy.credit_weights);
        UsageReport::build(policy, &books.usage.source(reserved), now)
    }

    /// The person's shares of the subscription's windows (the server's estimate).
    pub fn window_shares(&self) -> Vec<ccgate_quota::WindowShare> {
        self.books().usage.window_shares()
    }

    /// Settles a reply: counts its prompt if it succeeded, charges its
    /// tokens and tool calls to its turn, and puts its usage in the local
    /// view, all at once. Returns the counted turn and the usage added.
    pub fn settle(&self, settlement: Settlement<'_>) -> (Option<CountedTurn>, Option<Metered>) {
        let mut books = self.books();
        let counted = if settlement.counts {
            books.turns.count(settlement.key, settlement.at)
        } else {
            None
        };
        let usage = settlement.usage;
        books.turns.add_tokens(
            settlement.key,
            usage.input_tokens + usage.cache_creation_input_tokens + usage.output_tokens,
        );
        books
            .turns
            .asked_for_tools(settlement.key, settlement.tool_uses);
        let prompt = counted.is_some();
        let totals = Totals {
            prompts: u64::from(prompt),
            credits: if prompt { settlement.credit_weight } else { 0 },
            ..Totals::from(usage)
        };
        let metered = (!totals.is_zero()).then_some(Metered {
            family: settlement.family,
            totals,
        });
        if let Some(metered) = metered {
            books
                .usage
                .add_unsaved(settlement.event_id, settlement.at, metered);
        }
        (counted, metered)
    }

    /// The ledger stored event `id` as `seq`.
    pub fn stored(&self, id: Uuid, seq: i64) {
        self.books().usage.saved(id, seq);
    }

    /// The server acknowledged events up to `included` (and these unsaved
    /// ones) and sent usage that includes them.
    pub fn acknowledged(&self, unsaved: &[Uuid], snapshot: UsageSnapshot, included: i64) {
        let mut books = self.books();
        books.usage.forget_unsaved(unsaved);
        books.usage.set_snapshot(snapshot, included);
    }

    pub fn set_snapshot(&self, snapshot: UsageSnapshot, included: i64) {
        self.books().usage.set_snapshot(snapshot, included);
    }

    /// Gives back lapsed reservations (with whether they were decided offline).
    pub fn expire(&self, now: Timestamp) -> Vec<(TurnKey, bool)> {
        self.books().turns.expire(now)
    }

    /// Restores what the ledger kept across a restart.
    pub fn restore(
        &self,
        usage: Vec<StoredUsage>,
        counted: Vec<CountedTurn>,
        tool_uses: Vec<(TurnKey, Vec<String>)>,
    ) {
        let mut books = self.books();
        for stored in usage {
            books.usage.add(stored);
        }
        for turn in counted {
            books.turns.restore_counted(turn);
        }
        for (key, ids) in tool_uses {
            books.turns.asked_for_tools(&key, &ids);
        }
    }

    pub fn snapshot_included_seq(&self) -> i64 {
        self.books().usage.included_seq()
    }
}
