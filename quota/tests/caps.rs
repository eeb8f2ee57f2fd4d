//! `prompt_caps` agrees with `evaluate` on any policy, usage, shares and
//! time: the PostgreSQL check reserves by the caps and answers by
//! `evaluate`, so a disagreement would hold a refused prompt or refuse one
//! that should pass.

mod common;

use ccgate_quota::{
    CompiledPolicy, CreditWeights, GateKind, GateRequest, Limit, ModelFamily, Rule, RuleSpec,
    ShareWindow, TokenKind, Totals, UsageIndex, UserStatus, Window, WindowShare, WithShares,
    evaluate, prompt_caps,
};
use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

fn origin() -> Timestamp {
    "2026-03-02T10:00:00Z".parse().unwrap()
}

fn family() -> impl Strategy<Value = ModelFamily> {
    prop::sample::select(ModelFamily::ALL.to_vec())
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        1 => Just(Limit::Unlimited),
        1 => Just(Limit::Forbidden),
        6 => (1u64..40).prop_map(Limit::AtMost),
    ]
}

fn window() -> impl Strategy<Value = Window> {
    prop::sample::select(Window::ALL.to_vec())
}

fn token_kind() -> impl Strategy<Value = TokenKind> {
    prop::sample::select(vec![
        TokenKind::Input,
        TokenKind::Output,
        TokenKind::CacheCreation,
        TokenKind::CacheRead,
        TokenKind::Total,
    ])
}

fn rule() -> impl Strategy<Value = RuleSpec> {
    let model = || prop::option::of(family());
    prop_oneof![
        4 => (model(), window(), limit())
            .prop_map(|(model, window, limit)| RuleSpec::PerModel { model, window, limit }),
        3 => (window(), limit()).prop_map(|(window, limit)| RuleSpec::Credits { window, limit }),
        2 => (model(), window(), limit(), token_kind()).prop_map(
            |(model, window, limit, kind)| RuleSpec::Tokens { model, window, limit, kind }
        ),
        1 => (model(), 0i8..24, 0i8..24).prop_map(|(model, start, end)| RuleSpec::TimeOfDay {
            model,
            start: Time::new(start, 0, 0, 0).unwrap(),
            end: Time::new(end, 30, 0, 0).unwrap(),
            tz: None,
        }),
        1 => (prop::sample::select(ShareWindow::ALL.to_vec()), 1u32..100)
            .prop_map(|(window, percent)| RuleSpec::Share { window, percent }),
    ]
}

fn policy(
    status: UserStatus,
    zone: &str,
    weights: [u32; 4],
    rules: Vec<RuleSpec>,
) -> CompiledPolicy {
    let [opus, sonnet, haiku, other] = weights;
    common::policy_with(
        status,
        zone,
        CreditWeights {
            opus,
            sonnet,
            haiku,
            other,
        },
        rules.into_iter().map(Rule::new).collect(),
    )
}

/// Usage over the eight days before `origin()`: (minutes ago, family,
/// prompts, tokens).
fn usage() -> impl Strategy<Value = Vec<(i64, ModelFamily, u64, u64)>> {
    prop::collection::vec((0i64..8 * 24 * 60, family(), 0u64..6, 0u64..2_000), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn caps_allow_exactly_what_evaluate_allows(
        status in prop::sample::select(vec![UserStatus::Active, UserStatus::Active, UserStatus::Paused]),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "Asia/Kolkata"]),
        weights in prop::array::uniform4(0u32..4),
        rules in prop::collection::vec(rule(), 0..6),
        history in usage(),
        shares in prop::collection::vec((prop::sample::select(ShareWindow::ALL.to_vec()), 0u32..=10_000), 0..2),
        asked in family(),
        later_minutes in 0i64..3 * 24 * 60,
    ) {
        let policy = policy(status, zone, weights, rules);
        let weights = policy.policy.credit_weights;
        let mut index = UsageIndex::new();
        for (ago, family, prompts, tokens) in history {
            index.add(
                origin() - SignedDuration::from_mins(ago),
                family,
                Totals {
                    prompts,
                    credits: prompts * weights.weight(family),
                    input_tokens: tokens,
                    output_tokens: tokens / 3,
                    cache_creation_input_tokens: tokens / 5,
                    cache_read_input_tokens: tokens * 2,
                },
            );
        }
        let shares: Vec<WindowShare> = shares
            .into_iter()
            .map(|(window, used_bp)| WindowShare { window, used_bp, resets_at: None })
            .collect();
        let usage = WithShares(index, &shares);
        let now = origin() + SignedDuration::from_mins(later_minutes);
        let request = GateRequest { family: asked, kind: GateKind::Prompt, now };
        let decision = evaluate(&policy, &usage, request);
        let caps = prompt_caps(&policy, asked, now, &shares);
        prop_assert_eq!(caps.cost, decision.cost);
        prop_assert_eq!(caps.allow(&usage), decision.allowed(), "caps {:?}, decision {:?}", caps, decision.denial);
    }
}
