//! The gate decision: order of checks, sentinels, credits, continuations,
//! time-of-day schedules and the block message.

mod common;

use ccgate_quota::{
    CompiledPolicy, CreditWeights, DenyReason, GateKind, GateRequest, ModelFamily, Policy, Rule,
    Totals, UsageIndex, UsageReport, UserStatus, evaluate,
};
use jiff::Timestamp;
use serde_json::json;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn rules(value: serde_json::Value) -> Vec<Rule> {
    serde_json::from_value(value).unwrap()
}

fn policy(time_zone: &str, rules: Vec<Rule>) -> CompiledPolicy {
    common::policy_with(
        UserStatus::Active,
        time_zone,
        CreditWeights::default(),
        rules,
    )
}

fn prompt(family: ModelFamily, now: &str) -> GateRequest {
    GateRequest {
        family,
        kind: GateKind::Prompt,
        now: at(now),
    }
}

/// Records `n` counted prompts of `family` at `when`, with credits and tokens.
fn record(usage: &mut UsageIndex, when: &str, family: ModelFamily, n: u64) {
    let weight = CreditWeights::default().weight(family);
    usage.add(
        at(when),
        family,
        Totals {
            prompts: n,
            credits: n * weight,
            input_tokens: n * 1000,
            output_tokens: n * 200,
            ..Totals::default()
        },
    );
}

fn reason(
    policy: &CompiledPolicy,
    usage: &impl ccgate_quota::UsageSource,
    request: GateRequest,
) -> Option<DenyReason> {
    evaluate(policy, usage, request).denial.map(|d| d.reason)
}

#[test]
fn per_model_cap_allows_up_to_the_limit_then_denies() {
    let p = policy(
        "UTC",
        rules(json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 2}])),
    );
    let mut usage = UsageIndex::new();
    let now = "2026-03-03T12:00:00Z";
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Opus, now)), None);
    record(&mut usage, "2026-03-03T10:00:00Z", ModelFamily::Opus, 1);
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Opus, now)), None);
    record(&mut usage, "2026-03-03T11:00:00Z", ModelFamily::Opus, 1);
    assert_eq!(
        reason(&p, &usage, prompt(ModelFamily::Opus, now)),
        Some(DenyReason::PerModel)
    );
    // Other families are not touched by an opus rule.
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Sonnet, now)), None);
}

#[test]
fn minus_one_is_unlimited_and_zero_is_forbidden() {
    let p = policy(
        "UTC",
        rules(json!([
            {"type": "per_model", "model": "opus", "window": "daily", "value": 0},
            {"type": "per_model", "model": "sonnet", "window": "daily", "value": -1},
        ])),
    );
    let mut usage = UsageIndex::new();
    record(
        &mut usage,
        "2026-03-03T10:00:00Z",
        ModelFamily::Sonnet,
        10_000,
    );
    let now = "2026-03-03T12:00:00Z";
    let denial = evaluate(&p, &usage, prompt(ModelFamily::Opus, now))
        .denial
        .unwrap();
    assert_eq!(denial.reason, DenyReason::PerModel);
    assert!(
        denial.message.contains("opus is not allowed"),
        "{}",
        denial.message
    );
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Sonnet, now)), None);
}

#[test]
fn a_rule_without_model_caps_all_models_together() {
    let p = policy(
        "UTC",
        rules(json!([{"type": "per_model", "window": "daily", "value": 3}])),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-03T09:00:00Z", ModelFamily::Opus, 1);
    record(&mut usage, "2026-03-03T09:10:00Z", ModelFamily::Haiku, 2);
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Sonnet, "2026-03-03T12:00:00Z")
        ),
        Some(DenyReason::PerModel)
    );
}

#[test]
fn credits_deny_when_the_balance_is_below_the_next_prompts_cost() {
    // Budget 25: two opus prompts (20) leave 5, enough for sonnet (3) or
    // haiku (1) but not for a third opus prompt (10).
    let p = policy(
        "UTC",
        rules(json!([{"type": "credits", "window": "daily", "value": 25}])),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-03T09:00:00Z", ModelFamily::Opus, 2);
    let now = "2026-03-03T12:00:00Z";
    let denial = evaluate(&p, &usage, prompt(ModelFamily::Opus, now))
        .denial
        .unwrap();
    assert_eq!(denial.reason, DenyReason::Credits);
    assert!(
        denial.message.contains("5 of 25 left today"),
        "{}",
        denial.message
    );
    assert!(
        denial.message.contains("opus prompt costs 10"),
        "{}",
        denial.message
    );
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Sonnet, now)), None);
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Haiku, now)), None);
    // Exactly enough is enough: 5 left, sonnet costs 3 → 2 left after; then
    // a second sonnet (3 > 2) is refused.
    record(&mut usage, "2026-03-03T11:00:00Z", ModelFamily::Sonnet, 1);
    assert_eq!(
        reason(&p, &usage, prompt(ModelFamily::Sonnet, now)),
        Some(DenyReason::Credits)
    );
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Haiku, now)), None);
}

#[test]
fn token_budgets_stop_continuations_too() {
    let p = policy(
        "UTC",
        rules(json!([
            {"type": "tokens", "model": "opus", "window": "daily", "value": 5000, "kind": "input"},
            {"type": "per_model", "model": "opus", "window": "daily", "value": 1},
        ])),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-03T09:00:00Z", ModelFamily::Opus, 1);
    let continuation = GateRequest {
        kind: GateKind::Continuation,
        ..prompt(ModelFamily::Opus, "2026-03-03T12:00:00Z")
    };
    // The prompt cap is reached, but a running turn may continue...
    assert_eq!(reason(&p, &usage, continuation), None);
    // ...until the hard token budget is spent (1000 + 4000 = 5000 input).
    usage.add(
        at("2026-03-03T10:00:00Z"),
        ModelFamily::Opus,
        Totals {
            input_tokens: 4000,
            ..Totals::default()
        },
    );
    let denial = evaluate(&p, &usage, continuation).denial.unwrap();
    assert_eq!(denial.reason, DenyReason::Tokens);
    assert!(
        denial.message.contains("5,000 of 5,000 input tokens today"),
        "{}",
        denial.message
    );
}

#[test]
fn status_comes_first_and_stops_continuations() {
    let mut raw = policy("UTC", vec![]).policy;
    for (status, expected) in [
        (UserStatus::Paused, DenyReason::Paused),
        (UserStatus::Killed, DenyReason::Killed),
    ] {
        raw.status = status;
        let p = CompiledPolicy::new(raw.clone()).unwrap();
        for kind in [GateKind::Prompt, GateKind::Continuation] {
            let request = GateRequest {
                kind,
                ..prompt(ModelFamily::Haiku, "2026-03-03T12:00:00Z")
            };
            assert_eq!(reason(&p, &UsageIndex::new(), request), Some(expected));
        }
    }
}

#[test]
fn paused_and_killed_people_are_told_what_happened_and_what_to_do() {
    let mut raw = policy("UTC", vec![]).policy;
    let message = |raw: &Policy| {
        let p = CompiledPolicy::new(raw.clone()).unwrap();
        let request = prompt(ModelFamily::Opus, "2026-03-03T12:00:00Z");
        evaluate(&p, &UsageIndex::new(), request)
            .denial
            .unwrap()
            .message
    };
    raw.status = UserStatus::Paused;
    let paused = message(&raw);
    assert!(
        paused.contains("Alice, your ccgate admin has paused"),
        "{paused}"
    );
    assert!(paused.contains("send the prompt again"), "{paused}");
    assert!(!paused.contains("if you need more"), "{paused}");
    raw.status = UserStatus::Killed;
    let killed = message(&raw);
    assert!(
        killed.contains("revoked your Claude Code access"),
        "{killed}"
    );
    assert!(
        killed.contains("sign Claude Code in again with /login"),
        "{killed}"
    );
    assert!(!killed.contains("if you need more"), "{killed}");
    raw.credential = ccgate_quota::CredentialMode::TeamCredential {
        subscription_id: 1,
        kind: ccgate_quota::CredentialKind::OauthToken,
        version: 1,
    };
    let team = message(&raw);
    assert!(
        team.contains("once they reinstate you, restart Claude Code"),
        "{team}"
    );
}

#[test]
fn first_deny_wins_in_the_documented_order() {
    // Outside hours AND over the cap AND out of credits: time of day is reported.
    let p = policy(
        "UTC",
        rules(json!([
            {"type": "credits", "window": "daily", "value": 1},
            {"type": "per_model", "model": "opus", "window": "daily", "value": 1},
            {"type": "time_of_day", "schedule_start": "09:00", "schedule_end": "17:00"},
        ])),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-03T08:00:00Z", ModelFamily::Opus, 1);
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Opus, "2026-03-03T18:00:00Z")
        ),
        Some(DenyReason::TimeOfDay)
    );
    // Inside hours: the per-model cap comes before credits.
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Opus, "2026-03-03T12:00:00Z")
        ),
        Some(DenyReason::PerModel)
    );
    // Haiku has no cap of its own, so credits speak.
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Haiku, "2026-03-03T12:00:00Z")
        ),
        Some(DenyReason::Credits)
    );
}

#[test]
fn time_of_day_crossing_midnight() {
    // Night shift: opus allowed 22:00–06:00 in Tokyo.
    let p = policy(
        "UTC",
        rules(json!([
            {"type": "time_of_day", "model": "opus", "schedule_start": "22:00", "schedule_end": "06:00", "schedule_tz": "Asia/Tokyo"},
        ])),
    );
    let usage = UsageIndex::new();
    let cases = [
        ("2026-03-03T12:59:00Z", false), // 21:59 JST
        ("2026-03-03T13:00:00Z", true),  // 22:00 JST
        ("2026-03-03T15:30:00Z", true),  // 00:30 JST
        ("2026-03-03T20:59:00Z", true),  // 05:59 JST
        ("2026-03-03T21:00:00Z", false), // 06:00 JST
    ];
    for (now, open) in cases {
        let got = reason(&p, &usage, prompt(ModelFamily::Opus, now));
        assert_eq!(got.is_none(), open, "{now}");
        assert_eq!(
            reason(&p, &usage, prompt(ModelFamily::Sonnet, now)),
            None,
            "{now}: sonnet is not scheduled"
        );
    }
    let denial = evaluate(
        &p,
        &usage,
        prompt(ModelFamily::Opus, "2026-03-03T21:00:00Z"),
    )
    .denial
    .unwrap();
    assert_eq!(denial.retry_at, Some(at("2026-03-04T13:00:00Z")));
    assert!(
        denial.message.contains("from 22:00 to 06:00 (Asia/Tokyo)"),
        "{}",
        denial.message
    );
}

#[test]
fn time_of_day_uses_the_users_zone_not_the_servers() {
    // The peer ignored time zones when it enforced. 09:00–17:00 in Los Angeles:
    // 16:00 UTC is 08:00 PST (closed), 17:00 UTC is 09:00 PST (open).
    let p = policy(
        "America/Los_Angeles",
        rules(json!([
            {"type": "time_of_day", "schedule_start": "09:00", "schedule_end": "17:00"},
        ])),
    );
    let usage = UsageIndex::new();
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Opus, "2026-01-15T16:00:00Z")
        ),
        Some(DenyReason::TimeOfDay)
    );
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Opus, "2026-01-15T17:00:00Z")
        ),
        None
    );
}

#[test]
fn daily_cap_resets_at_local_midnight_not_utc_midnight() {
    // Alice in New York used her 2 opus prompts at 22:00 and 23:00 EST on the
    // 3rd (03:00 and 04:00 UTC on the 4th). At 04:30 UTC (23:30 EST) she is
    // still capped; at 05:00 UTC (00:00 EST on the 4th) she is free again.
    let p = policy(
        "America/New_York",
        rules(json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 2}])),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-04T03:00:00Z", ModelFamily::Opus, 1);
    record(&mut usage, "2026-03-04T04:00:00Z", ModelFamily::Opus, 1);
    let denial = evaluate(
        &p,
        &usage,
        prompt(ModelFamily::Opus, "2026-03-04T04:30:00Z"),
    )
    .denial
    .unwrap();
    assert_eq!(denial.retry_at, Some(at("2026-03-04T05:00:00Z")));
    assert!(
        denial
            .message
            .contains("at 00:00 on Wed 4 Mar (America/New_York), in 30m"),
        "{}",
        denial.message
    );
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Opus, "2026-03-04T05:00:00Z")
        ),
        None
    );
}

#[test]
fn sliding_window_frees_up_as_old_prompts_leave() {
    let p = policy(
        "UTC",
        rules(
            json!([{"type": "per_model", "model": "sonnet", "window": "rolling_5h", "value": 2}]),
        ),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-03T08:00:00Z", ModelFamily::Sonnet, 1);
    record(&mut usage, "2026-03-03T10:00:00Z", ModelFamily::Sonnet, 1);
    let denial = evaluate(
        &p,
        &usage,
        prompt(ModelFamily::Sonnet, "2026-03-03T12:00:00Z"),
    )
    .denial
    .unwrap();
    // Usage is kept by the minute: the 08:00 prompt has surely left at 13:01.
    assert_eq!(denial.retry_at, Some(at("2026-03-03T13:01:00Z")));
    assert!(
        denial.message.contains("rolling window"),
        "{}",
        denial.message
    );
    assert_eq!(
        reason(
            &p,
            &usage,
            prompt(ModelFamily::Sonnet, "2026-03-03T13:01:00Z")
        ),
        None
    );
}

#[test]
fn block_message_lists_every_model_and_the_credit_balance() {
    let p = policy(
        "Europe/Berlin",
        rules(json!([
            {"type": "per_model", "model": "opus", "window": "daily", "value": 2},
            {"type": "per_model", "model": "sonnet", "window": "weekly", "value": 20},
            {"type": "credits", "window": "daily", "value": 100},
        ])),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-03T08:00:00Z", ModelFamily::Opus, 2);
    record(&mut usage, "2026-03-03T09:00:00Z", ModelFamily::Sonnet, 3);
    let denial = evaluate(
        &p,
        &usage,
        prompt(ModelFamily::Opus, "2026-03-03T12:00:00Z"),
    )
    .denial
    .unwrap();
    let text = &denial.message;
    for expected in [
        "Alice",
        "daily opus limit is used up: 2 of 2 prompts today",
        "at 00:00 on Wed 4 Mar (Europe/Berlin)",
        "opus 2/2 today",
        "sonnet 3/20 this week",
        "haiku 0 today",
        "Credits: 71 of 100 left today",
        "Tokens today: 5,000 in, 1,000 out",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains('"'), "the CLI escapes double quotes");
}

#[test]
fn report_measures_every_counting_rule() {
    let p = policy(
        "UTC",
        rules(json!([
            {"type": "per_model", "model": "opus", "window": "daily", "value": 5},
            {"type": "tokens", "window": "weekly", "value": -1, "kind": "total"},
            {"type": "time_of_day", "schedule_start": "09:00", "schedule_end": "17:00"},
        ])),
    );
    let mut usage = UsageIndex::new();
    record(&mut usage, "2026-03-03T08:00:00Z", ModelFamily::Opus, 2);
    let report = UsageReport::build(&p, &usage, at("2026-03-03T12:00:00Z"));
    assert_eq!(report.limits.len(), 2);
    assert_eq!(
        (report.limits[0].used, report.limits[0].remaining),
        (2, Some(3))
    );
    assert_eq!(
        (report.limits[1].used, report.limits[1].remaining),
        (2400, None)
    );
    assert!(report.schedules[0].open_now);
    assert_eq!(
        report.schedules[0].next_change,
        Some(at("2026-03-03T17:00:00Z"))
    );
    assert_eq!(report.today.opus.prompts, 2);
}

#[test]
fn policies_with_a_bad_time_zone_are_refused() {
    let mut raw = policy("UTC", vec![]).policy;
    raw.time_zone = "Moon/Base".into();
    assert!(
        CompiledPolicy::new(raw)
            .unwrap_err()
            .to_string()
            .contains("Moon/Base")
    );
}

#[test]
fn a_share_rule_blocks_prompts_over_the_persons_part_of_the_window() {
    use ccgate_quota::{ShareWindow, WindowShare, WithShares};
    let p = policy(
        "Europe/Berlin",
        rules(json!([{"type": "share", "window": "five_hour", "value": 40}])),
    );
    let usage = UsageIndex::new();
    let now = "2026-03-03T12:00:00Z";
    let resets = at("2026-03-03T14:10:00Z");
    let share = |fraction| {
        [WindowShare::from_fraction(
            ShareWindow::FiveHour,
            fraction,
            Some(resets),
        )]
    };

    // No estimate yet: nothing to hold against the person.
    assert_eq!(reason(&p, &usage, prompt(ModelFamily::Opus, now)), None);
    let under = share(0.39);
    assert_eq!(
        reason(
            &p,
            &WithShares(&usage, &under),
            prompt(ModelFamily::Opus, now)
        ),
        None
    );
    let over = share(0.41);
    let decision = evaluate(
        &p,
        &WithShares(&usage, &over),
        prompt(ModelFamily::Opus, now),
    );
    let denial = decision.denial.expect("over the share");
    assert_eq!(denial.reason, DenyReason::Share);
    assert_eq!(denial.retry_at, Some(resets));
    assert!(
        denial.message.contains(
            "You have used 41 % of the team's 5-hour window; the limit is 40 %; it frees up"
        ),
        "{}",
        denial.message
    );
    assert!(
        denial.message.contains("15:10"),
        "local time: {}",
        denial.message
    );
    // A continuation of a counted turn is not a new prompt: it passes.
    let continuation = GateRequest {
        kind: GateKind::Continuation,
        ..prompt(ModelFamily::Opus, now)
    };
    assert_eq!(reason(&p, &WithShares(&usage, &over), continuation), None);
    // The report shows the rule with the share.
    let report = UsageReport::build(&p, &WithShares(&usage, &over), at(now));
    assert_eq!(report.shares.len(), 1);
    assert!(report.shares[0].exceeded());
    assert_eq!(report.shares[0].used_bp, Some(4100));
}
