//! The classifier and the turn tracker over request data that reproduces the
//! structure of every kind of request real Claude Code sends
//! (`tests/data/requests`, derived from captures by
//! `scripts/derive-classifier-data.py`). Each scenario replays requests in the
//! order the CLI sent them and says what a person would call each one and
//! what counts. Captures that begin mid-turn show the tracker failing
//! closed: what it cannot confirm, it counts.

use ccgate_proxy::classify::RequestFacts;
use ccgate_proxy::turns::{CountedTurn, Resolution, TurnKey, TurnRules, TurnTracker};
use ccgate_quota::wire::RequestKind::{self, *};
use ccgate_quota::{AgentTurns, ModelFamily};
use http::{HeaderMap, HeaderName, HeaderValue};

/// How the reply to a request went, as far as counting is concerned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reply {
    Succeeds,
    Fails,
}

struct Step {
    file: &'static str,
    kind: RequestKind,
    reply: Reply,
    /// Tool calls the reply asked for (prefixes of their ids).
    asks: &'static [&'static str],
}

fn step(file: &'static str, kind: RequestKind) -> Step {
    Step {
        file,
        kind,
        reply: Reply::Succeeds,
        asks: &[],
    }
}

fn failing(file: &'static str, kind: RequestKind) -> Step {
    Step {
        reply: Reply::Fails,
        ..step(file, kind)
    }
}

impl Step {
    fn asks(self, asks: &'static [&'static str]) -> Self {
        Self { asks, ..self }
    }
}

fn load(file: &str) -> (HeaderMap, Vec<u8>) {
    let path = format!(
        "{}/tests/data/requests/{file}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let request: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut headers = HeaderMap::new();
    for pair in request["headers"].as_array().unwrap() {
        let name =
            HeaderName::from_bytes(pair[0].as_str().unwrap().to_lowercase().as_bytes()).unwrap();
        headers.append(
            name,
            HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
        );
    }
    (headers, serde_json::to_vec(&request["body"]).unwrap())
}

fn facts(file: &str) -> RequestFacts {
    let (headers, body) = load(file);
    RequestFacts::read(&headers, &body).unwrap()
}

/// Every tool-use id in the scenario's files that starts with `prefix`.
fn tool_ids(steps: &[Step], prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for step in steps {
        let (_, body) = load(step.file);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for message in body["messages"].as_array().unwrap() {
            for block in message["content"].as_array().into_iter().flatten() {
                if let Some(id) = block["id"].as_str().filter(|id| id.starts_with(prefix))
                    && !ids.iter().any(|known| known == id)
                {
                    ids.push(id.to_owned());
                }
            }
        }
    }
    assert!(!ids.is_empty(), "no tool use {prefix}");
    ids
}

/// Replays a scenario; returns the number of prompts counted. `seen`: turns
/// this daemon saw before the capture began (`file`'s session, turn 1).
fn replay_with(rules: TurnRules, seen: &[&str], steps: &[Step]) -> u32 {
    let mut tracker = TurnTracker::new();
    let now = jiff::Timestamp::now();
    for file in seen {
        let session = facts(file).session_id.unwrap();
        tracker.restore_counted(CountedTurn {
            key: TurnKey::first(format!("{session}:1")),
            family: ModelFamily::Opus,
            at: now,
            input: None,
            session: Some(session),
            prompt_id: None,
        });
    }
    let mut counted = 0;
    for step in steps {
        let facts = facts(step.file);
        let resolution = tracker.resolve(&facts, &rules, now);
        assert_eq!(
            resolution.kind(),
            step.kind,
            "{}: {resolution:?}",
            step.file
        );
        if matches!(resolution, Resolution::Prompt { .. }) {
            tracker.reserve(&resolution, &facts, false, now);
        }
        if step.reply == Reply::Succeeds {
            if resolution.count_reason().is_some() {
                counted += u32::from(tracker.count(resolution.key(), now).is_some());
            }
            for prefix in step.asks {
                tracker.asked_for_tools(resolution.key(), &tool_ids(steps, prefix));
            }
        }
    }
    counted
}

fn replay(steps: &[Step]) -> u32 {
    replay_with(TurnRules::default(), &[], steps)
}

fn agent_turns_free() -> TurnRules {
    TurnRules {
        agent_turns: AgentTurns::Free,
        ..TurnRules::default()
    }
}

#[test]
fn sdk_prompt_with_a_tool_call_counts_once() {
    let counted = replay(&[
        step("p_fresh_prompt_apikey", Prompt).asks(&["toolu_lab2a1a4"]),
        step("p_tool_continuation_apikey", Continuation),
    ]);
    assert_eq!(counted, 1);
}

#[test]
fn tool_results_the_daemon_never_saw_asked_for_count() {
    // The same continuation without its prompt's reply: it cannot be
    // confirmed, so it is a prompt of its own.
    assert_eq!(replay(&[step("p_tool_continuation_apikey", Prompt)]), 1);
}

#[test]
fn continue_flag_starts_a_new_prompt() {
    assert_eq!(replay(&[step("p_continue_flag_second_turn", Prompt)]), 1);
}

#[test]
fn interactive_session_with_a_background_title() {
    let counted = replay(&[
        step("i_fresh_prompt_interactive", Prompt),
        step("i_title_haiku_background", Background),
        // The CLI resends a blocked prompt's text together with the next one.
        step("i_failed_prompt_merged_into_next", Prompt),
    ]);
    assert_eq!(counted, 2);
}

#[test]
fn subscription_login_prompt_and_its_quota_probe() {
    let counted = replay(&[
        step("o_quota_probe_oauth", Background),
        step("o_fresh_prompt_oauth_p", Prompt),
    ]);
    assert_eq!(counted, 1);
}

#[test]
fn background_classifiers_and_titles_of_a_seen_turn_are_never_prompts() {
    for file in [
        "bg_automode_classifier_cron",
        "bg_automode_classifier_handback_severity",
        "bg_automode_classifier_stage1",
        "bg_automode_classifier_stage2",
        "bg_title_haiku_i",
        "q5_i_title_background",
    ] {
        let counted = replay_with(TurnRules::default(), &[file], &[step(file, Background)]);
        assert_eq!(counted, 0, "{file}");
        // Without a turn seen in its session, the label is only a claim (a
        // fresh session id per call would make every call free): it counts.
        assert_eq!(replay(&[step(file, Background)]), 1, "{file}");
    }
}

#[test]
fn sdk_subagents_add_no_prompt_and_the_notification_turn_counts_by_policy() {
    let steps = || {
        [
            step("q1_p_parent_fresh_prompt", Prompt).asks(&["toolu_lab7900f"]),
            step("q1_p_subagent_first_request", Subagent).asks(&["toolu_lab2ccf7"]),
            step("q1_p_subagent_continuation", Subagent),
            step("q1_p_parent_continuation_agent_tool_result", Continuation),
            step("q1_p_parent_task_notification_turn", AgentTurn),
        ]
    };
    // Work a person set going counts by default: one prompt cannot buy an
    // unlimited chain of agent turns.
    assert_eq!(replay(&steps()), 2);
    assert_eq!(replay_with(agent_turns_free(), &[], &steps()), 1);
}

#[test]
fn a_fork_whose_parent_turn_was_never_seen_counts() {
    let steps = || {
        [
            step("q1_p_fork_subagent_first_request", Subagent),
            step("q1_p_fork_parent_task_notification_turn", AgentTurn),
        ]
    };
    assert_eq!(replay(&steps()), 2);
    assert_eq!(replay_with(agent_turns_free(), &[], &steps()), 1);
}

#[test]
fn an_agent_hand_back_captured_mid_turn_fails_closed() {
    // The capture began after the parent's prompt: the subagent and the
    // parent's tool results cannot be confirmed and count; the rest follows.
    let counted = replay_with(
        agent_turns_free(),
        &[],
        &[
            step("q1_i_subagent_first_request", Subagent).asks(&["toolu_lab84394"]),
            step("q1_i_subagent_continuation_before_handback", Subagent),
            step("q1_i_parent_continuation_agent_tool_result", Prompt),
            step("q1_i_parent_peer_handback_turn", AgentTurn),
            step("q5_i_second_human_prompt_after_agent", Prompt),
        ],
    );
    assert_eq!(counted, 3);
}

#[test]
fn compaction_of_a_session_this_daemon_saw_is_metered_and_the_next_prompt_counts() {
    let steps = || {
        [
            step("q2_i_compaction_request_manual", Compaction),
            step("q2_i_compaction_request_retry_no_summary", Compaction),
            step("q2_i_first_prompt_after_compact", Prompt),
            step("q2_i_compaction_request_manual_clean", Compaction),
            step("q2_i_first_prompt_after_compact_clean", Prompt),
            step("q2_i_compaction_request_auto", Compaction),
            step("q2_i_prompt_after_autocompact", Prompt),
        ]
    };
    let seen = [
        "q2_i_compaction_request_manual",
        "q2_i_compaction_request_manual_clean",
        "q2_i_compaction_request_auto",
    ];
    assert_eq!(replay_with(TurnRules::default(), &seen, &steps()), 3);
    // Without a turn of their session, compactions cannot be confirmed (the
    // retry of the first is the same request, counted once).
    assert_eq!(replay(&steps()), 6);
}

#[test]
fn mid_stream_error_and_non_streaming_fallback_count_once() {
    let counted = replay(&[
        failing("q3_p_stream_request_that_got_midstream_error", Prompt),
        // The same turn resent without streaming: the prompt that counts.
        step("q3_p_nonstream_fallback_after_midstream_error", Prompt),
    ]);
    assert_eq!(counted, 1);
}

#[test]
fn a_cut_stream_retried_counts_once() {
    let counted = replay(&[
        failing("q3_p_stream_request_that_got_tcp_cut", Prompt),
        failing("q3_p_stream_request_that_got_tcp_cut", Prompt),
        step("q3_p_stream_request_that_got_tcp_cut", Prompt),
        step("q3_p_stream_request_that_got_tcp_cut", Continuation),
    ]);
    assert_eq!(counted, 1);
}

#[test]
fn after_a_blocked_continuation_the_merged_next_prompt_counts() {
    // The tool continuation is blocked (its turn's prompt came before the
    // capture, so it counts as a prompt itself); the next prompt carries the
    // old tool result and the new text together.
    let counted = replay(&[
        failing("q4_i_blocked_continuation_400", Prompt),
        step("q4_i_next_prompt_after_block_merged", Prompt),
    ]);
    assert_eq!(counted, 1);
    assert_eq!(
        replay(&[failing("q4_p_blocked_continuation_400", Prompt)]),
        0
    );
}

#[test]
fn three_interactive_prompts_one_with_a_tool_loop() {
    let counted = replay(&[
        step("q5_i_prompt1", Prompt),
        step("q5_i_title_background", Background),
        step("q5_i_prompt2", Prompt).asks(&["toolu_laba8d83"]),
        step("q5_i_prompt2_tool_continuation", Continuation),
        step("q5_i_prompt3", Prompt),
    ]);
    assert_eq!(counted, 3);
}

#[test]
fn model_aliases_count_for_their_family() {
    for (file, family) in [
        ("q6_p_model_haiku", ModelFamily::Haiku),
        ("q6_p_model_sonnet", ModelFamily::Sonnet),
    ] {
        assert_eq!(ModelFamily::from_model_id(&facts(file).model), family);
        assert_eq!(replay(&[step(file, Prompt)]), 1);
    }
}

#[test]
fn slash_commands_and_skills_are_prompts_even_without_a_prompt_id() {
    let steps = || {
        [
            step("x_i_slash_loop_turn_no_prompt_id", Prompt),
            step("x_i_skill_simplify_turn_no_prompt_id", Prompt),
            step("x_i_scheduled_wakeup_turn_background_task", AgentTurn),
            step("x_i_plain_prompt_after_skill", Prompt),
        ]
    };
    // A /loop wake-up counts unless the policy frees agent turns.
    assert_eq!(replay(&steps()), 4);
    assert_eq!(replay_with(agent_turns_free(), &[], &steps()), 3);
    assert_eq!(
        replay(&[step("x_p_custom_slash_command_no_prompt_id", Prompt)]),
        1
    );
}

#[test]
fn a_second_stream_json_message_is_a_new_prompt() {
    assert_eq!(
        replay(&[step("x_p_streamjson_second_sdk_message", Prompt)]),
        1
    );
}

#[test]
fn every_data_file_is_covered_by_a_scenario() {
    let source = include_str!("classifier.rs");
    let dir = format!("{}/tests/data/requests", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let stem = name.trim_end_matches(".json");
        assert!(
            source.contains(&format!("\"{stem}\"")),
            "{stem} has no scenario"
        );
    }
}
