use super::*;

fn facts(headers: &[(&str, &str)], body: serde_json::Value) -> RequestFacts {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    RequestFacts::read(&map, body.to_string().as_bytes()).unwrap()
}

fn billing(origin: &str, turn: u64) -> serde_json::Value {
    serde_json::json!([{"type": "text", "text": format!("{BILLING_PREFIX} cc_turn_origin={origin}; cc_turn_index={turn};")}])
}

#[test]
fn billing_text_parses_every_field() {
    let billing = Billing::parse(
        "x-anthropic-billing-header: cc_version=2.1.330.8c4; cc_entrypoint=cli; cch=a066b; \
         cc_is_subagent=true; cc_prompt_id=5eb6; cc_turn_origin=human; cc_prompt_index=2; \
         cc_turn_index=3; cc_workload=cron;",
    )
    .unwrap();
    assert_eq!(billing.entrypoint.as_deref(), Some("cli"));
    assert_eq!(billing.prompt_id.as_deref(), Some("5eb6"));
    assert_eq!(
        (billing.prompt_index, billing.turn_index),
        (Some(2), Some(3))
    );
    assert!(billing.is_subagent);
    assert_eq!(billing.workload.as_deref(), Some("cron"));
    assert_eq!(Billing::parse("You are Claude Code"), None);
}

#[test]
fn bodies_that_are_not_messages_are_refused() {
    let headers = HeaderMap::new();
    assert!(matches!(
        RequestFacts::read(&headers, b"{not json"),
        Err(BodyError::NotJson(_))
    ));
    assert_eq!(
        RequestFacts::read(&headers, br#"{"messages":[]}"#),
        Err(BodyError::NoModel)
    );
}

#[test]
fn labels_become_claims() {
    let session = [("x-claude-code-session-id", "s1")];
    let turn = facts(
        &session,
        serde_json::json!({"model": "m", "system": billing("sdk", 1), "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(
        turn.claim(),
        Claim::Turn {
            key: "s1:1".into(),
            starter: Starter::Person
        }
    );
    let wakeup = facts(
        &session,
        serde_json::json!({"model": "m", "system": billing("scheduled", 2), "messages": []}),
    );
    assert!(matches!(
        wakeup.claim(),
        Claim::Turn {
            starter: Starter::Agent,
            ..
        }
    ));
    let forged = facts(
        &[("x-claude-code-compaction", "1")],
        serde_json::json!({"model": "m", "system": billing("sdk", 1), "messages": []}),
    );
    assert_eq!(forged.claim(), Claim::Compaction);
    assert!(!forged.shape.compaction_instruction);
    let curl = facts(
        &[],
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(curl.claim(), Claim::Unlabelled);
    assert!(!curl.identified());
}

#[test]
fn the_latest_human_input_survives_the_cli_reshaping_it() {
    // Claude Code sends the same prompt as blocks with a reminder, then
    // as a plain string once the turn continues with tool results.
    let prompt = facts(
        &[],
        serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nnotes\n</system-reminder>"},
                {"type": "text", "text": "run echo lab", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "env"}]}),
    );
    let continuation = facts(
        &[],
        serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": "run echo lab"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "lab"}]}]}),
    );
    assert_eq!(prompt.shape.last_user, LastUser::Input);
    assert_eq!(
        continuation.shape.last_user,
        LastUser::ToolResults {
            ids: vec!["toolu_1".into()]
        }
    );
    assert!(prompt.shape.latest_human.is_some());
    assert_eq!(prompt.shape.latest_human, continuation.shape.latest_human);
    assert_ne!(prompt.shape.fingerprint, continuation.shape.fingerprint);

    let rewritten = facts(
        &[],
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "something else"}]}),
    );
    assert_ne!(rewritten.shape.latest_human, prompt.shape.latest_human);
}

#[test]
fn a_message_typed_during_a_turn_rides_with_tool_results() {
    let typed = facts(
        &[],
        serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"},
                {"type": "text", "text": format!("{TYPED_DURING_TURN} also check the logs")}]}]}),
    );
    assert_eq!(
        typed.shape.last_user,
        LastUser::TypedDuringTurn {
            ids: vec!["toolu_9".into()]
        }
    );
    // Other text next to tool results is a person's new input.
    let merged = facts(
        &[],
        serde_json::json!({"model": "m", "messages": [
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"},
                {"type": "text", "text": "hello again"}]}]}),
    );
    assert_eq!(merged.shape.last_user, LastUser::Input);
}

#[test]
fn compaction_and_the_quota_probe_have_shapes() {
    let compaction = facts(
        &[],
        serde_json::json!({"model": "m", "tools": [{"name": "Bash"}], "messages": [
            {"role": "user", "content": "say hello"},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            {"role": "user", "content": format!("{COMPACTION_INSTRUCTION}\n\nYour task is to create a detailed summary")}]}),
    );
    assert!(compaction.shape.compaction_instruction);
    assert!(!compaction.shape.quota_probe);
    let probe = facts(
        &[],
        serde_json::json!({"model": "claude-haiku-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": "quota"}]}),
    );
    assert!(probe.shape.quota_probe);
}

#[test]
fn the_account_comes_from_metadata_and_an_empty_one_is_none() {
    let body = |account: &str| {
        let user =
            serde_json::json!({"device_id": "d", "account_uuid": account, "session_id": "s"});
        serde_json::json!({"model": "claude-opus-4-5", "metadata": {"user_id": user.to_string()}})
    };
    let named = facts(&[], body("4b1f9c2e-7a3d"));
    assert_eq!(named.account.as_deref(), Some("4b1f9c2e-7a3d"));
    assert_eq!(named.session_id.as_deref(), Some("s"));
    assert_eq!(facts(&[], body("")).account, None);
    let without = facts(&[], serde_json::json!({"model": "claude-opus-4-5"}));
    assert_eq!(without.account, None);
}
