//! The tracker against a forger: any mix of labels, session ids, prompt
//! ids, turn indexes, tool results (real ones, learnt from replies, and
//! made-up ones), shapes and failed replies. Whatever the labels say, each
//! counted prompt buys at most its turn's allowance of requests that get an
//! answer without counting; the only other uncounted answers are one-token
//! quota probes.

use ccgate_quota::{AgentTurns, TurnLimits};
use http::HeaderMap;
use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::classify::RequestFacts;

const CAP: u32 = 3;

fn rules() -> TurnRules {
    TurnRules {
        agent_turns: AgentTurns::Count,
        limits: TurnLimits {
            max_requests_per_turn: CAP,
            max_tokens_per_turn: 1_000_000,
        },
    }
}

/// What the forger puts in one request.
#[derive(Debug, Clone)]
struct Forged {
    /// Index into a few session ids, or a fresh one per request.
    session: Option<u8>,
    class: Option<&'static str>,
    origin: Option<&'static str>,
    turn_index: Option<u8>,
    prompt_id: Option<u8>,
    subagent_flag: bool,
    compaction_header: bool,
    compaction_instruction: bool,
    /// Text of the latest human input, from a few.
    text: u8,
    /// Tool results: indexes into the tool ids replies asked for so far,
    /// or (when out of range) made-up ids.
    tool_results: Vec<u16>,
    max_tokens: u32,
    tools: bool,
    model: &'static str,
    /// The reply: fails, succeeds, or succeeds asking for tools.
    reply_ok: bool,
    reply_asks: u8,
}

fn forged() -> impl Strategy<Value = Forged> {
    // Weighted towards the labels that claim to be part of something else.
    let class = prop_oneof![
        1 => Just(None),
        2 => Just(Some("main")),
        2 => Just(Some("subagent")),
        1 => Just(Some("compaction")),
        3 => Just(Some("auxiliary")),
        1 => Just(Some("MAIN")),
    ];
    let origin = prop_oneof![
        3 => Just(None),
        2 => Just(Some("human")),
        1 => Just(Some("sdk")),
        1 => Just(Some("task_notification")),
        1 => Just(Some("scheduled")),
        1 => Just(Some("other")),
    ];
    let session = prop_oneof![1 => Just(None), 2 => (0u8..3).prop_map(Some)];
    let model = prop::sample::select(vec![
        "claude-opus-5-5",
        "claude-sonnet-5",
        "claude-haiku-5-5",
    ]);
    let shape = (
        0u8..4,
        prop::collection::vec(0u16..40, 0..3),
        prop::sample::select(vec![1u32, 64, 32_000]),
        any::<bool>(),
        model,
    );
    let labels = (
        session,
        class,
        origin,
        prop::option::of(0u8..4),
        prop::option::of(0u8..3),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let reply = (prop::bool::weighted(0.7), 0u8..3);
    (labels, shape, reply).prop_map(
        |(
            (session, class, origin, turn_index, prompt_id, subagent, header, instruction),
            (text, tool_results, max_tokens, tools, model),
            (reply_ok, reply_asks),
        )| Forged {
            session,
            class,
            origin,
            turn_index,
            prompt_id,
            subagent_flag: subagent,
            compaction_header: header,
            compaction_instruction: instruction,
            text,
            tool_results,
            max_tokens,
            tools,
            model,
            reply_ok,
            reply_asks,
        },
    )
}

impl Forged {
    fn facts(&self, serial: usize, asked: &[String]) -> RequestFacts {
        let mut headers = HeaderMap::new();
        let session = match self.session {
            Some(index) => format!("session-{index}"),
            None => format!("fresh-{serial}"),
        };
        headers.insert("x-claude-code-session-id", session.parse().unwrap());
        if let Some(class) = self.class {
            headers.insert("x-claude-code-request-class", class.parse().unwrap());
        }
        if self.compaction_header {
            headers.insert("x-claude-code-compaction", "1".parse().unwrap());
        }
        let mut billing = String::from("x-anthropic-billing-header: cc_version=2.1.330;");
        if let Some(origin) = self.origin {
            billing.push_str(&format!(" cc_turn_origin={origin};"));
        }
        if let Some(turn) = self.turn_index {
            billing.push_str(&format!(" cc_turn_index={turn};"));
        }
        if let Some(prompt) = self.prompt_id {
            billing.push_str(&format!(" cc_prompt_id=p{prompt};"));
        }
        if self.subagent_flag {
            billing.push_str(" cc_is_subagent=true;");
        }
        let mut text = format!("question {}", self.text);
        if self.compaction_instruction {
            text = format!("{}\n{text}", crate::classify::COMPACTION_INSTRUCTION);
        }
        let mut messages =
            vec![json!({"role": "user", "content": [{"type": "text", "text": text}]})];
        if !self.tool_results.is_empty() {
            let ids: Vec<String> = self
                .tool_results
                .iter()
                .map(|&i| {
                    asked
                        .get(usize::from(i))
                        .cloned()
                        .unwrap_or_else(|| format!("toolu_madeup_{i}"))
                })
                .collect();
            let uses: Vec<Value> = ids
                .iter()
                .map(|id| json!({"type": "tool_use", "id": id, "name": "Bash", "input": {}}))
                .collect();
            let results: Vec<Value> = ids
                .iter()
                .map(|id| json!({"type": "tool_result", "tool_use_id": id, "content": "ok"}))
                .collect();
            messages.push(json!({"role": "assistant", "content": uses}));
            messages.push(json!({"role": "user", "content": results}));
        }
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": [{"type": "text", "text": billing}],
            "messages": messages,
        });
        if self.tools {
            body["tools"] = json!([{"name": "Bash"}]);
        }
        RequestFacts::read(&headers, body.to_string().as_bytes()).expect("a well-formed body")
    }
}

/// Runs the requests as the daemon would (the gate allows every prompt)
/// and returns (counted prompts, answered requests that counted nothing
/// and were not quota probes).
fn play(requests: &[Forged]) -> (u64, u64) {
    let mut tracker = TurnTracker::new();
    let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
    let mut asked: Vec<String> = Vec::new();
    let (mut counted, mut free) = (0, 0);
    for (serial, request) in requests.iter().enumerate() {
        let facts = request.facts(serial, &asked);
        let resolution = tracker.resolve(&facts, &rules(), now);
        if matches!(resolution, Resolution::Prompt { .. }) {
            tracker.reserve(&resolution, &facts, false, now);
        }
        if !request.reply_ok {
            continue;
        }
        let key = resolution.key().clone();
        let prompt = resolution.count_reason().is_some() && tracker.count(&key, now).is_some();
        if prompt {
            counted += 1;
        } else if !facts.shape.quota_probe {
            free += 1;
        }
        tracker.add_tokens(&key, 1_000);
        let ids: Vec<String> = (0..request.reply_asks)
            .map(|n| format!("toolu_{serial}_{n}"))
            .collect();
        tracker.asked_for_tools(&key, &ids);
        asked.extend(ids);
    }
    (counted, free)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn each_counted_prompt_buys_at_most_its_turn_allowance(
        requests in prop::collection::vec(forged(), 1..60)
    ) {
        let (counted, free) = play(&requests);
        prop_assert!(
            free <= counted * u64::from(CAP),
            "{free} answered requests counted nothing against {counted} counted prompts"
        );
    }
}

#[test]
fn a_subagent_of_a_prompt_whose_reply_failed_is_not_free() {
    let prompt = Forged {
        session: Some(0),
        class: Some("main"),
        origin: Some("human"),
        turn_index: Some(1),
        prompt_id: Some(1),
        subagent_flag: false,
        compaction_header: false,
        compaction_instruction: false,
        text: 0,
        tool_results: Vec::new(),
        max_tokens: 32_000,
        tools: true,
        model: "claude-opus-5-5",
        reply_ok: false,
        reply_asks: 0,
    };
    let subagent = Forged {
        class: Some("subagent"),
        origin: None,
        turn_index: None,
        text: 1,
        reply_ok: true,
        ..prompt.clone()
    };
    let (counted, free) = play(&[prompt, subagent.clone(), subagent]);
    assert!(
        free <= counted * u64::from(CAP),
        "free {free}, counted {counted}"
    );
}
