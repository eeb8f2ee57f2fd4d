//! The tracker's rules, one bypass or one legitimate flow per test, on
//! requests shaped like Claude Code's (see `tests/classifier.rs` for the
//! replay of real captures).

use ccgate_quota::wire::{CountReason, RequestKind};
use ccgate_quota::{AgentTurns, CreditWeights, ModelFamily, TurnLimits};
use http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;
use crate::classify::{COMPACTION_INSTRUCTION, CONTINUED_SESSION, RequestFacts, TYPED_DURING_TURN};

fn now() -> Timestamp {
    "2026-12-02T10:00:00Z".parse().unwrap()
}

fn rules() -> TurnRules {
    TurnRules::default()
}

/// A request as Claude Code builds it: class header, billing fields, session.
struct Req {
    class: &'static str,
    origin: Option<&'static str>,
    turn: Option<u64>,
    prompt_id: Option<&'static str>,
    headers: Vec<(&'static str, &'static str)>,
    messages: Vec<Value>,
    max_tokens: u64,
    tools: bool,
}

impl Req {
    fn main(turn: u64, messages: Vec<Value>) -> Self {
        Self {
            class: "main",
            origin: Some("sdk"),
            turn: Some(turn),
            prompt_id: None,
            headers: Vec::new(),
            messages,
            max_tokens: 32000,
            tools: true,
        }
    }

    fn facts(&self) -> RequestFacts {
        let mut headers = HeaderMap::new();
        headers.insert("x-claude-code-session-id", "s1".parse().unwrap());
        headers.insert("x-claude-code-request-class", self.class.parse().unwrap());
        for (name, value) in &self.headers {
            headers.insert(*name, value.parse().unwrap());
        }
        let mut billing = String::from("x-anthropic-billing-header: cc_version=2.1.330;");
        if let Some(origin) = self.origin {
            billing.push_str(&format!(" cc_turn_origin={origin};"));
        }
        if let Some(turn) = self.turn {
            billing.push_str(&format!(" cc_turn_index={turn};"));
        }
        if let Some(prompt) = self.prompt_id {
            billing.push_str(&format!(" cc_prompt_id={prompt};"));
        }
        if self.class == "subagent" {
            billing.push_str(" cc_is_subagent=true;");
        }
        let mut body = json!({
            "model": "claude-opus-5-5",
            "max_tokens": self.max_tokens,
            "system": [{"type": "text", "text": billing}],
            "messages": self.messages,
        });
        if self.tools {
            body["tools"] = json!([{"name": "Bash"}]);
        }
        RequestFacts::read(&headers, body.to_string().as_bytes()).unwrap()
    }
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\nnotes\n</system-reminder>"},
        {"type": "text", "text": text}]})
}

fn asks(ids: &[&str]) -> Value {
    let blocks: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "tool_use", "id": id, "name": "Bash", "input": {}}))
        .collect();
    json!({"role": "assistant", "content": blocks})
}

fn results(ids: &[&str]) -> Value {
    let blocks: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "tool_result", "tool_use_id": id, "content": "ok"}))
        .collect();
    json!({"role": "user", "content": blocks})
}

/// A prompt of turn `turn` that goes through the gate and succeeds.
fn counted_prompt(tracker: &mut TurnTracker, turn: u64, text: &str) -> TurnKey {
    let facts = Req::main(turn, vec![user(text)]).facts();
    let resolution = tracker.resolve(&facts, &rules(), now());
    let Resolution::Prompt { key, .. } = &resolution else {
        panic!("expected a prompt: {resolution:?}");
    };
    let key = key.clone();
    tracker.reserve(&resolution, &facts, false, now());
    assert!(tracker.count(&key, now()).is_some());
    key
}

fn resolve(tracker: &mut TurnTracker, request: &Req) -> Resolution {
    tracker.resolve(&request.facts(), &rules(), now())
}

/// Resolves, lets the gate allow it, and lets its reply succeed.
fn pass(tracker: &mut TurnTracker, request: &Req) -> Resolution {
    let facts = request.facts();
    let resolution = tracker.resolve(&facts, &rules(), now());
    if matches!(resolution, Resolution::Prompt { .. }) {
        tracker.reserve(&resolution, &facts, false, now());
    }
    if resolution.count_reason().is_some() {
        tracker.count(resolution.key(), now());
    }
    resolution
}

fn is_charged(resolution: &Resolution, kind: RequestKind) -> bool {
    matches!(resolution, Resolution::Charged { kind: k, .. } if *k == kind)
}

fn counts(resolution: &Resolution, reason: CountReason) -> bool {
    matches!(resolution, Resolution::Prompt { reason: r, .. } if *r == reason)
}

#[test]
fn a_prompt_and_its_tool_loop_count_once() {
    let mut tracker = TurnTracker::new();
    let key = counted_prompt(&mut tracker, 1, "run echo lab");
    tracker.asked_for_tools(&key, &["toolu_1".into()]);
    let continuation = Req::main(
        1,
        vec![
            user("run echo lab"),
            asks(&["toolu_1"]),
            results(&["toolu_1"]),
        ],
    );
    let resolution = resolve(&mut tracker, &continuation);
    assert!(
        is_charged(&resolution, RequestKind::Continuation),
        "{resolution:?}"
    );
    assert_eq!(resolution.key(), &key);
}

#[test]
fn tool_results_nobody_asked_for_are_a_prompt() {
    // The bypass: text placed in a tool_result under a new turn key.
    let mut tracker = TurnTracker::new();
    counted_prompt(&mut tracker, 1, "hi");
    let forged = Req::main(
        7,
        vec![user("hi"), asks(&["toolu_x"]), results(&["toolu_x"])],
    );
    assert!(counts(
        &resolve(&mut tracker, &forged),
        CountReason::Unconfirmed
    ));
    // And under the known key too.
    let forged = Req::main(
        1,
        vec![user("hi"), asks(&["toolu_x"]), results(&["toolu_x"])],
    );
    assert!(counts(
        &resolve(&mut tracker, &forged),
        CountReason::Unconfirmed
    ));
}

#[test]
fn a_counted_turn_sent_again_with_other_text_is_a_new_prompt() {
    // --resume-session-at and /rewind resend an earlier turn index.
    let mut tracker = TurnTracker::new();
    let key = counted_prompt(&mut tracker, 1, "first question");
    let rewound = Req::main(1, vec![user("a different question")]);
    let resolution = pass(&mut tracker, &rewound);
    assert!(
        counts(&resolution, CountReason::RewrittenTurn),
        "{resolution:?}"
    );
    assert_eq!(resolution.key(), &key.next());
    // Its retry (byte-identical) is the same prompt, not a third one.
    let retry = resolve(&mut tracker, &rewound);
    assert!(is_charged(&retry, RequestKind::Continuation), "{retry:?}");
    // Rewinding again costs again, without end.
    let again = pass(&mut tracker, &Req::main(1, vec![user("yet another")]));
    assert_eq!(again.key(), &key.next().next());
    // An edited history under a continuation is a rewrite as well.
    tracker.asked_for_tools(&key.next().next(), &["toolu_2".into()]);
    let edited = Req::main(
        1,
        vec![user("edited"), asks(&["toolu_2"]), results(&["toolu_2"])],
    );
    assert!(counts(
        &resolve(&mut tracker, &edited),
        CountReason::RewrittenTurn
    ));
}

#[test]
fn a_rewind_that_sends_the_same_text_again_is_a_new_prompt() {
    // After /rewind, Claude Code resends the turn index with a new prompt id.
    let mut tracker = TurnTracker::new();
    let first = Req {
        prompt_id: Some("p1"),
        ..Req::main(1, vec![user("same words")])
    };
    let key = pass(&mut tracker, &first).key().clone();
    let again = Req {
        prompt_id: Some("p2"),
        ..Req::main(1, vec![user("same words")])
    };
    let resolution = resolve(&mut tracker, &again);
    assert!(
        counts(&resolution, CountReason::RewrittenTurn),
        "{resolution:?}"
    );
    assert_eq!(resolution.key(), &key.next());
    // The original prompt's own retry (same prompt id) is no new prompt.
    assert!(is_charged(
        &resolve(&mut tracker, &first),
        RequestKind::Continuation
    ));
}

#[test]
fn a_retry_of_an_uncounted_prompt_is_not_gated_again() {
    let mut tracker = TurnTracker::new();
    let request = Req::main(1, vec![user("hi")]);
    let facts = request.facts();
    let first = tracker.resolve(&facts, &rules(), now());
    tracker.reserve(&first, &facts, false, now());
    // The reply failed; the CLI sends the same turn again.
    let retry = resolve(&mut tracker, &request);
    assert!(matches!(retry, Resolution::PromptRetry { .. }), "{retry:?}");
    assert!(tracker.count(retry.key(), now()).is_some());
    assert!(tracker.count(retry.key(), now()).is_none(), "counted once");
}

#[test]
fn compaction_needs_the_compaction_body_and_a_turn_of_its_session() {
    let mut tracker = TurnTracker::new();
    // The bypass: a compaction header on an ordinary prompt.
    let mut forged = Req::main(1, vec![user("write a poem")]);
    forged.headers.push(("x-claude-code-compaction", "1"));
    assert!(counts(
        &resolve(&mut tracker, &forged),
        CountReason::Unconfirmed
    ));

    let key = counted_prompt(&mut tracker, 1, "say hello");
    let compaction = Req {
        class: "compaction",
        origin: None,
        turn: None,
        headers: vec![("x-claude-code-compaction", "auto")],
        ..Req::main(
            0,
            vec![
                user("say hello"),
                json!({"role": "user", "content": format!("{COMPACTION_INSTRUCTION}\nsummarise")}),
            ],
        )
    };
    let resolution = resolve(&mut tracker, &compaction);
    assert!(
        is_charged(&resolution, RequestKind::Compaction),
        "{resolution:?}"
    );
    // The turn goes on from the summary; that is not a rewrite.
    tracker.asked_for_tools(&key, &["toolu_c".into()]);
    let summary = format!("{CONTINUED_SESSION}. Summary: …");
    let after = Req::main(
        1,
        vec![user(&summary), asks(&["toolu_c"]), results(&["toolu_c"])],
    );
    let resolution = resolve(&mut tracker, &after);
    assert!(
        is_charged(&resolution, RequestKind::Continuation),
        "{resolution:?}"
    );
}

#[test]
fn a_subagent_needs_a_parent_turn_this_daemon_saw() {
    let mut tracker = TurnTracker::new();
    let subagent = Req {
        class: "subagent",
        origin: None,
        turn: None,
        prompt_id: Some("p1"),
        ..Req::main(0, vec![user("sub task")])
    };
    assert!(counts(
        &resolve(&mut tracker, &subagent),
        CountReason::Unconfirmed
    ));

    let mut tracker = TurnTracker::new();
    let parent = Req {
        prompt_id: Some("p1"),
        ..Req::main(1, vec![user("delegate")])
    };
    pass(&mut tracker, &parent);
    let resolution = resolve(&mut tracker, &subagent);
    assert!(
        is_charged(&resolution, RequestKind::Subagent),
        "{resolution:?}"
    );
}

#[test]
fn a_message_typed_during_a_turn_counts_without_the_gate() {
    let mut tracker = TurnTracker::new();
    let key = counted_prompt(&mut tracker, 1, "refactor it");
    tracker.asked_for_tools(&key, &["toolu_1".into()]);
    let typed = json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"},
        {"type": "text", "text": format!("{TYPED_DURING_TURN} also fix the tests")}]});
    let request = Req::main(
        1,
        vec![user("refactor it"), asks(&["toolu_1"]), typed.clone()],
    );
    let resolution = resolve(&mut tracker, &request);
    let Resolution::UngatedPrompt {
        key: typed_key,
        reason,
    } = &resolution
    else {
        panic!("expected an ungated prompt: {resolution:?}");
    };
    assert_eq!(*reason, CountReason::TypedDuringTurn);
    assert_eq!(typed_key, &key.next());
    // Its retry does not count it twice; its success counts it once.
    assert!(matches!(
        resolve(&mut tracker, &request),
        Resolution::PromptRetry { .. }
    ));
    assert!(tracker.count(typed_key, now()).is_some());
    // The turn goes on: later tool results are continuations again.
    tracker.asked_for_tools(typed_key, &["toolu_2".into()]);
    let next = Req::main(
        1,
        vec![
            user("refactor it"),
            asks(&["toolu_1"]),
            typed,
            asks(&["toolu_2"]),
            results(&["toolu_2"]),
        ],
    );
    assert!(is_charged(
        &resolve(&mut tracker, &next),
        RequestKind::Continuation
    ));
}

#[test]
fn agent_started_turns_count_unless_the_policy_frees_them() {
    let wakeup = Req {
        origin: Some("scheduled"),
        ..Req::main(
            2,
            vec![user(
                "<command-message>loop</command-message> check the build",
            )],
        )
    };
    let mut tracker = TurnTracker::new();
    let resolution = resolve(&mut tracker, &wakeup);
    assert!(
        matches!(
            resolution,
            Resolution::Prompt {
                kind: RequestKind::AgentTurn,
                reason: CountReason::AgentTurn,
                ..
            }
        ),
        "{resolution:?}"
    );

    let free = TurnRules {
        agent_turns: AgentTurns::Free,
        ..rules()
    };
    let mut tracker = TurnTracker::new();
    let resolution = tracker.resolve(&wakeup.facts(), &free, now());
    assert!(
        is_charged(&resolution, RequestKind::AgentTurn),
        "{resolution:?}"
    );
    // One prompt cannot buy an unlimited loop: the turn's caps still hold.
    let mut last = resolution;
    for _ in 0..TurnLimits::DEFAULT_MAX_REQUESTS {
        last = tracker.resolve(&wakeup.facts(), &free, now());
    }
    assert!(counts(&last, CountReason::TurnCap), "{last:?}");
}

#[test]
fn past_the_per_turn_caps_the_next_request_is_a_new_prompt() {
    let limits = TurnRules {
        limits: TurnLimits {
            max_requests_per_turn: 3,
            max_tokens_per_turn: 1_000_000,
        },
        ..rules()
    };
    let mut tracker = TurnTracker::new();
    let key = counted_prompt(&mut tracker, 1, "long task");
    tracker.asked_for_tools(&key, &["toolu_1".into()]);
    let continuation = Req::main(
        1,
        vec![user("long task"), asks(&["toolu_1"]), results(&["toolu_1"])],
    );
    for _ in 0..3 {
        let resolution = tracker.resolve(&continuation.facts(), &limits, now());
        assert!(
            is_charged(&resolution, RequestKind::Continuation),
            "{resolution:?}"
        );
    }
    let renewal = tracker.resolve(&continuation.facts(), &limits, now());
    assert!(counts(&renewal, CountReason::TurnCap), "{renewal:?}");
    tracker.reserve(&renewal, &continuation.facts(), false, now());
    // The renewal buys a fresh allowance at once: requests sent while its
    // reply is on the way are more attempts at it and use that allowance
    // (they do not ride free on the renewal).
    for _ in 0..3 {
        let resolution = tracker.resolve(&continuation.facts(), &limits, now());
        assert!(
            matches!(resolution, Resolution::PromptRetry { .. }),
            "{resolution:?}"
        );
    }
    let next = tracker.resolve(&continuation.facts(), &limits, now());
    assert!(counts(&next, CountReason::TurnCap), "{next:?}");
    assert_eq!(next.key(), &renewal.key().next());
    assert!(tracker.count(renewal.key(), now()).is_some());

    // Tokens, as Anthropic reports them, are capped the same way.
    let mut tracker = TurnTracker::new();
    let key = counted_prompt(&mut tracker, 1, "big task");
    tracker.asked_for_tools(&key, &["toolu_1".into()]);
    tracker.add_tokens(&key, TurnLimits::DEFAULT_MAX_TOKENS);
    let continuation = Req::main(
        1,
        vec![user("big task"), asks(&["toolu_1"]), results(&["toolu_1"])],
    );
    assert!(counts(
        &resolve(&mut tracker, &continuation),
        CountReason::TurnCap
    ));
}

#[test]
fn copies_of_a_waiting_prompt_use_up_its_allowance() {
    // Many copies of one prompt sent side by side while it waits for its
    // reply: each is another attempt, none is gated, but together they run
    // into the per-turn cap like any requests of the turn.
    let limits = TurnRules {
        limits: TurnLimits {
            max_requests_per_turn: 10,
            max_tokens_per_turn: 1_000_000,
        },
        ..rules()
    };
    let mut tracker = TurnTracker::new();
    let request = Req::main(1, vec![user("the same question")]);
    let first = tracker.resolve(&request.facts(), &limits, now());
    tracker.reserve(&first, &request.facts(), false, now());
    for _ in 0..10 {
        let copy = tracker.resolve(&request.facts(), &limits, now());
        assert!(matches!(copy, Resolution::PromptRetry { .. }), "{copy:?}");
    }
    let beyond = tracker.resolve(&request.facts(), &limits, now());
    assert!(counts(&beyond, CountReason::TurnCap), "{beyond:?}");
    assert_eq!(beyond.key(), &first.key().next());
}

#[test]
fn background_calls_before_any_turn_have_a_small_allowance() {
    let mut tracker = TurnTracker::new();
    let probe = Req {
        class: "auxiliary",
        origin: None,
        turn: None,
        max_tokens: 1,
        tools: false,
        ..Req::main(0, vec![json!({"role": "user", "content": "quota"})])
    };
    for _ in 0..SESSION_ALLOWANCE.max_requests_per_turn {
        assert!(is_charged(
            &resolve(&mut tracker, &probe),
            RequestKind::Background
        ));
    }
    assert!(counts(&resolve(&mut tracker, &probe), CountReason::TurnCap));

    // Once the session has a turn, titles and classifiers are charged to it.
    let mut tracker = TurnTracker::new();
    let key = counted_prompt(&mut tracker, 1, "hi");
    let title = Req {
        class: "auxiliary",
        origin: None,
        turn: None,
        tools: false,
        ..Req::main(0, vec![user("<session> hi </session>")])
    };
    let resolution = resolve(&mut tracker, &title);
    assert!(is_charged(&resolution, RequestKind::Background));
    assert_eq!(resolution.key(), &key);
}

#[test]
fn clients_without_turn_fields_follow_the_body() {
    let mut tracker = TurnTracker::new();
    let curl = |messages: Vec<Value>| {
        let body = json!({"model": "claude-sonnet-5", "messages": messages});
        RequestFacts::read(&HeaderMap::new(), body.to_string().as_bytes()).unwrap()
    };
    let prompt = curl(vec![json!({"role": "user", "content": "hi"})]);
    let resolution = tracker.resolve(&prompt, &rules(), now());
    assert!(
        counts(&resolution, CountReason::NewPrompt),
        "{resolution:?}"
    );
    tracker.reserve(&resolution, &prompt, false, now());
    tracker.count(resolution.key(), now());
    tracker.asked_for_tools(resolution.key(), &["toolu_9".into()]);
    let tool_loop = curl(vec![
        json!({"role": "user", "content": "hi"}),
        asks(&["toolu_9"]),
        results(&["toolu_9"]),
    ]);
    assert!(is_charged(
        &tracker.resolve(&tool_loop, &rules(), now()),
        RequestKind::Continuation
    ));
    let forged = curl(vec![results(&["toolu_nobody"])]);
    assert!(counts(
        &tracker.resolve(&forged, &rules(), now()),
        CountReason::Unconfirmed
    ));
}

#[test]
fn lapsed_reservations_are_given_back_and_old_turns_forgotten() {
    let mut tracker = TurnTracker::new();
    let key = counted_prompt(&mut tracker, 1, "hi");
    let rewound = Req::main(1, vec![user("other")]);
    let facts = rewound.facts();
    let resolution = tracker.resolve(&facts, &rules(), now());
    tracker.reserve(&resolution, &facts, true, now());
    assert_eq!(
        tracker
            .reserved_usage(&CreditWeights::default())
            .opus
            .prompts,
        1
    );
    let later = now().checked_add(RESERVATION_TTL).unwrap();
    assert_eq!(tracker.expire(later), vec![(key.next(), true)]);
    assert_eq!(
        tracker
            .reserved_usage(&CreditWeights::default())
            .opus
            .prompts,
        0
    );
    // The counted turn is as it was: its own input is not a rewrite.
    tracker.asked_for_tools(&key, &["toolu_1".into()]);
    let continuation = Req::main(
        1,
        vec![user("hi"), asks(&["toolu_1"]), results(&["toolu_1"])],
    );
    assert!(is_charged(
        &resolve(&mut tracker, &continuation),
        RequestKind::Continuation
    ));

    let much_later = later.checked_add(TURN_MEMORY).unwrap();
    tracker.expire(much_later);
    assert!(tracker.is_empty());
}

#[test]
fn counted_turns_and_tool_calls_survive_a_restart() {
    let mut before = TurnTracker::new();
    let key = counted_prompt(&mut before, 1, "hi");
    let facts = Req::main(1, vec![user("hi")]).facts();
    let resolution = before.resolve(&facts, &rules(), now());
    assert!(!matches!(resolution, Resolution::Prompt { .. }));
    let counted = CountedTurn {
        key: key.clone(),
        family: ModelFamily::Opus,
        at: now(),
        input: facts.shape.latest_human,
        session: Some("s1".into()),
        prompt_id: None,
    };
    let mut after = TurnTracker::new();
    after.restore_counted(counted);
    after.asked_for_tools(&key, &["toolu_1".into()]);
    let continuation = Req::main(
        1,
        vec![user("hi"), asks(&["toolu_1"]), results(&["toolu_1"])],
    );
    assert!(is_charged(
        &resolve(&mut after, &continuation),
        RequestKind::Continuation
    ));
    let rewound = Req::main(1, vec![user("not hi")]);
    assert!(counts(
        &resolve(&mut after, &rewound),
        CountReason::RewrittenTurn
    ));
    // Time passes on restored turns like any other.
    let late = now()
        .checked_add(TURN_MEMORY + SignedDuration::from_secs(1))
        .unwrap();
    after.expire(late);
    assert!(after.is_empty());
}
