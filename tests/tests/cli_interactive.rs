//! Issue 8 with the real interactive CLI driven in tmux (see
//! `ccgate_tests::interactive`): `/loop` wake-ups, `/rewind` (Esc Esc) and
//! a message typed while a tool runs. Setup's managed settings sit at the
//! real path; each test checks what the person sees, what the server
//! counted, and that a blocked prompt never reached Anthropic.

use std::time::Duration;

use ccgate_tests::eventually;
use ccgate_tests::interactive::flat;
use ccgate_tests::scenario::Scenario;
use ccgate_tests::upstream::{Recorded, SLOW_COMMAND, loop_responder};
use serde_json::json;

/// A wake-up fires at the first full minute at least 60 s after it was
/// armed: at most two minutes, plus the CLI's own slack.
const WAKEUP: Duration = Duration::from_secs(150);
const SETTLE: Duration = Duration::from_secs(15);

/// The first request of a scheduled wake-up turn (not its tool result).
fn wakeup_starts(scenario: &Scenario) -> Vec<Recorded> {
    scenario
        .upstream
        .messages_requests()
        .into_iter()
        .filter(|r| {
            r.billing().get("cc_turn_origin").map(String::as_str) == Some("scheduled")
                && !r.is_tool_result()
        })
        .collect()
}

/// Waits for `count` wake-ups, at most [`WAKEUP`] for each.
async fn wait_for_wakeups(scenario: &Scenario, count: usize) {
    for n in 1..=count {
        let arrived = eventually(WAKEUP, async || wakeup_starts(scenario).len() >= n).await;
        assert!(
            arrived,
            "waited {WAKEUP:?} for wake-up {n}; {} arrived",
            wakeup_starts(scenario).len()
        );
    }
}

const LOOP_TOOLS: [&str; 3] = ["--allowedTools", "Bash", "ScheduleWakeup"];

/// `/loop` wake-ups are work the person started: by default each counts as
/// a prompt, so they use up the limit and a wake-up past it is blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_wakeups_count_as_prompts_and_one_past_the_limit_is_blocked() {
    let scenario = Scenario::start(2).await;
    scenario.upstream.set_responder(loop_responder);
    let cli = scenario.cli(vec![]);
    let session = cli.interactive(&LOOP_TOOLS).await;
    session.submit("/loop check the lab").await;
    session.wait_for_text("Loop tick handled.").await;
    assert_eq!(scenario.prompts_counted().await, 1, "the /loop prompt");

    wait_for_wakeups(&scenario, 1).await;
    let counted = eventually(SETTLE, async || scenario.prompts_counted().await >= 2).await;
    assert!(
        counted,
        "the first /loop wake-up was not counted: {} prompt(s) counted after the /loop prompt and one wake-up",
        scenario.prompts_counted().await
    );

    // The next wake-up is past the limit: the person sees why, and it
    // never reaches Anthropic.
    session
        .wait_for_message(&scenario.limit_message(), WAKEUP)
        .await;
    assert_eq!(
        wakeup_starts(&scenario).len(),
        1,
        "a wake-up past the limit reached the upstream"
    );
    assert_eq!(scenario.prompts_counted().await, 2);
}

/// With the team setting `agent_turns: free`, wake-ups are metered but not
/// counted: two wake-ups after the `/loop` prompt leave one prompt counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_wakeups_are_not_counted_when_the_team_makes_agent_turns_free() {
    let scenario = Scenario::start(2).await;
    scenario
        .server
        .put("/settings", json!({"agent_turns": "free"}))
        .await;
    scenario.upstream.set_responder(loop_responder);
    let cli = scenario.cli(vec![]);
    let session = cli.interactive(&LOOP_TOOLS).await;
    session.submit("/loop check the lab").await;
    session.wait_for_text("Loop tick handled.").await;
    wait_for_wakeups(&scenario, 2).await;
    session.wait_idle().await;
    assert_eq!(scenario.prompts_counted().await, 1);
    assert!(
        !flat(&session.screen()).contains(&scenario.limit_message()),
        "{}",
        session.screen()
    );
    let usage = scenario.server.usage_today(scenario.user_id).await;
    assert!(usage.input_tokens > 0, "the wake-ups were metered");
}

/// `/rewind` (Esc Esc) to the start and new text resends the session's
/// first turn index: a new prompt, blocked past the limit, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_to_the_start_and_new_text_is_blocked_past_the_limit_each_time() {
    let scenario = Scenario::start(2).await;
    let cli = scenario.cli(vec![]);
    let session = cli.interactive(&[]).await;
    session.submit("first prompt").await;
    session.wait_for_text("hi from the fake upstream").await;
    session.wait_idle().await;
    session.submit("second prompt").await;
    session
        .wait_until("the second answer", Duration::from_secs(60), |s| {
            s.matches("hi from the fake upstream").count() >= 2
        })
        .await;
    session.wait_idle().await;
    assert_eq!(scenario.prompts_counted().await, 2);
    let sent = scenario.messages_sent();

    for attempt in 1..=2 {
        session.rewind_to_start().await;
        session.submit(&format!("rewound text {attempt}")).await;
        let screen = session
            .tmux
            .try_wait_for(Duration::from_secs(60), |s| {
                flat(s).contains(&scenario.limit_message())
                    || s.matches("hi from the fake upstream").count() >= 1
                        && !s.contains("esc to interrupt")
                        && s.contains(&format!("rewound text {attempt}"))
            })
            .await
            .unwrap_or_else(|s| s);
        assert!(
            flat(&screen).contains(&scenario.limit_message()),
            "rewind {attempt} to the start with new text was not blocked \
             ({} requests reached the upstream after the limit, {} prompt(s) counted); the screen:\n{screen}",
            scenario.messages_sent() - sent,
            scenario.prompts_counted().await
        );
        assert_eq!(
            scenario.messages_sent(),
            sent,
            "a blocked prompt reached the upstream"
        );
    }
    assert_eq!(scenario.prompts_counted().await, 2);
}

/// A message typed while a tool runs rides in the turn's next tool-result
/// request; it is a prompt the person typed. The running turn is not
/// refused (the tool result and the final answer arrive), and the server
/// counts two prompts for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_typed_while_a_tool_runs_counts_as_a_prompt() {
    let scenario = Scenario::start(2).await;
    let cli = scenario.cli(vec![]);
    let session = cli.interactive(&["--allowedTools", "Bash"]).await;
    session.submit("please run slowly").await;
    session.wait_for_text(SLOW_COMMAND).await;
    session.submit("also say banana").await;
    session.wait_for_text("The tool said lab. Done.").await;
    session.wait_idle().await;

    let continuation = scenario
        .upstream
        .messages_requests()
        .into_iter()
        .find(Recorded::is_tool_result)
        .expect("the tool's result reached the upstream");
    let typed = continuation
        .last_user_texts()
        .into_iter()
        .find(|t| t.contains("also say banana"));
    assert!(
        typed.as_deref().is_some_and(|t| t
            .starts_with("The user sent a new message while you were working:\nalso say banana")),
        "the message was not typed while the tool ran (it did not ride in the tool result): {typed:?}"
    );
    let counted = scenario.prompts_counted().await;
    assert_eq!(
        counted, 2,
        "a prompt and a message typed while its tool ran were counted as {counted}"
    );

    // Both prompts of the day are used: the next one is blocked.
    let sent = scenario.messages_sent();
    session.submit("say hi").await;
    session
        .wait_for_message(&scenario.limit_message(), Duration::from_secs(60))
        .await;
    assert_eq!(
        scenario.messages_sent(),
        sent,
        "the block reached the upstream"
    );
}
