//! Issue 8 with the real CLI (`claude -p`): ways a person got around their
//! prompt quota by what their own shell or command line sends. Each test
//! runs the real server, the real proxy and the CLI with setup's managed
//! settings at the real path (see `ccgate_tests::claude_cli`), and checks
//! what the person sees, what the server counted, and that a blocked prompt
//! never reached Anthropic.

use ccgate_tests::claude_cli::CliRun;
use ccgate_tests::scenario::Scenario;

const COMPACTION_HEADER: &str = "x-claude-code-compaction: 1";

fn custom_headers_shell() -> Vec<(String, String)> {
    vec![(
        "ANTHROPIC_CUSTOM_HEADERS".to_owned(),
        COMPACTION_HEADER.to_owned(),
    )]
}

fn assert_blocked(scenario: &Scenario, run: &CliRun, what: &str) {
    let shown = run.shown();
    assert_eq!(run.code, Some(1), "{what} was not refused: {run:#?}");
    assert!(shown.contains("API Error: 400"), "{what}: {shown}");
    assert!(
        shown.contains(&scenario.limit_message()),
        "{what} did not show the limit message: {shown}"
    );
}

/// (i) The managed settings setup writes pin `ANTHROPIC_CUSTOM_HEADERS`, so
/// the header from the person's shell never leaves the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_from_the_shell_never_reach_anthropic_under_managed_settings() {
    let scenario = Scenario::start(2).await;
    let cli = scenario.cli(custom_headers_shell());
    let run = cli.print("say hi", &[]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout.trim(), "hi from the fake upstream");
    let carried: Vec<String> = scenario
        .upstream
        .messages_requests()
        .iter()
        .filter_map(|r| r.header("x-claude-code-compaction"))
        .collect();
    assert!(
        carried.is_empty(),
        "x-claude-code-compaction from the person's ANTHROPIC_CUSTOM_HEADERS reached the upstream \
         through setup's managed settings ({} requests carried it)",
        carried.len()
    );
    assert_eq!(scenario.prompts_counted().await, 1);
}

/// (ii) Without managed settings the header reaches the requests; the
/// prompts are counted all the same and the third is blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_labelled_as_compaction_are_still_counted_and_blocked_past_the_limit() {
    let scenario = Scenario::start(2).await;
    let cli = scenario.cli_without_managed_settings(custom_headers_shell());
    for text in ["say hi", "say hi again"] {
        let run = cli.print(text, &[]).await;
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert_eq!(run.stdout.trim(), "hi from the fake upstream");
    }
    let sent = scenario.upstream.messages_requests();
    assert!(
        sent.iter()
            .all(|r| r.header("x-claude-code-compaction").as_deref() == Some("1")),
        "the shell's header did not reach the requests: the test shows nothing"
    );
    let counted = scenario.prompts_counted().await;
    assert_eq!(
        counted, 2,
        "two prompts sent with x-claude-code-compaction: 1 were counted as {counted}"
    );

    let third = cli.print("write a poem", &[]).await;
    assert_blocked(&scenario, &third, "the third prompt");
    assert_eq!(
        scenario.messages_sent(),
        sent.len(),
        "the blocked prompt reached the upstream"
    );
    assert_eq!(scenario.prompts_counted().await, 2);
}

/// `--resume S --resume-session-at <an earlier reply>` sends a turn index
/// the session already counted, with new text: it is a new prompt, so past
/// the limit it is blocked, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_session_at_an_earlier_reply_is_blocked_past_the_limit_each_time() {
    let scenario = Scenario::start(2).await;
    let cli = scenario.cli(vec![]);
    let session = uuid::Uuid::new_v4().to_string();

    let first = cli.print("say hi", &["--session-id", &session]).await;
    assert_eq!(first.code, Some(0), "{first:#?}");
    let second = cli.print("say hi again", &["--resume", &session]).await;
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert_eq!(scenario.prompts_counted().await, 2);
    let first_reply = cli
        .assistant_uuids(&session, "hi from the fake upstream")
        .first()
        .cloned()
        .expect("the first reply is in the transcript");
    let sent = scenario.messages_sent();

    let mut passed = 0;
    for attempt in 1..=3 {
        let run = cli
            .print(
                &format!("new text {attempt}"),
                &["--resume", &session, "--resume-session-at", &first_reply],
            )
            .await;
        if run.code == Some(0) {
            passed += 1;
        }
    }
    assert_eq!(
        passed,
        0,
        "{passed} of 3 prompts sent with --resume-session-at past the limit passed (counted: {})",
        scenario.prompts_counted().await
    );
    let last = cli
        .print(
            "new text 4",
            &["--resume", &session, "--resume-session-at", &first_reply],
        )
        .await;
    assert_blocked(&scenario, &last, "a prompt resumed at an earlier reply");
    assert_eq!(
        scenario.messages_sent(),
        sent,
        "a blocked prompt reached the upstream"
    );
    assert_eq!(scenario.prompts_counted().await, 2);
}
