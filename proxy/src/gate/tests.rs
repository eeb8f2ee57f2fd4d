//! The gate without a server: the link points at a closed loopback port, so
//! every prompt is decided from the cached policy and the books.

use std::path::PathBuf;
use std::sync::Arc;

use ccgate_quota::{CompiledPolicy, Policy, UnidentifiedClients, UserStatus};
use http::HeaderMap;
use serde_json::json;

use super::*;
use crate::turns::TurnRules;

struct Parts {
    policy: PolicyState,
    accounting: Accounting,
    link: ServerLink,
    health: LinkHealth,
    integrity: IntegrityFlag,
    wakeup: Notify,
}

impl Parts {
    fn new(policy: Option<Policy>) -> Self {
        let state = PolicyState::default();
        if let Some(policy) = policy {
            state
                .install(Arc::new(CompiledPolicy::new(policy).unwrap()))
                .unwrap();
        }
        Self {
            policy: state,
            accounting: Accounting::default(),
            // Nothing listens on port 9 of loopback: the server is "down".
            link: ServerLink::new(
                "http://127.0.0.1:9",
                "t".into(),
                PathBuf::from("/nonexistent"),
            ),
            health: LinkHealth::default(),
            integrity: IntegrityFlag::default(),
            wakeup: Notify::new(),
        }
    }

    fn gate(&self) -> Gate<'_> {
        Gate {
            policy: &self.policy,
            accounting: &self.accounting,
            link: &self.link,
            health: &self.health,
            integrity: &self.integrity,
            check_timeout: Duration::from_millis(300),
            sync_wakeup: &self.wakeup,
        }
    }

    /// Resolves a `-p` prompt of turn `turn` and asks the gate.
    async fn prompt(&self, turn: u64, text: &str) -> (Verdict, Resolution) {
        let facts = request(turn, text, true);
        let resolution = self
            .accounting
            .resolve(&facts, &TurnRules::default(), self.policy.now());
        let verdict = self
            .gate()
            .decide(&resolution, &facts, ModelFamily::Opus)
            .await;
        (verdict, resolution)
    }
}

fn request(turn: u64, text: &str, labelled: bool) -> RequestFacts {
    let mut headers = HeaderMap::new();
    let mut body =
        json!({"model": "claude-opus-5-5", "messages": [{"role": "user", "content": text}]});
    if labelled {
        headers.insert("x-claude-code-session-id", "s1".parse().unwrap());
        headers.insert("x-claude-code-request-class", "main".parse().unwrap());
        body["system"] = json!([{"type": "text", "text": format!("x-anthropic-billing-header: cc_turn_origin=sdk; cc_turn_index={turn};")}]);
    }
    RequestFacts::read(&headers, body.to_string().as_bytes()).unwrap()
}

use crate::test_support::policy;

fn blocked(verdict: &Verdict, expected: DenyReason) -> bool {
    matches!(verdict, Verdict::Block { reason, .. } if *reason == expected)
}

#[tokio::test]
async fn without_a_policy_everything_is_refused_with_the_reason() {
    let parts = Parts::new(None);
    let (verdict, _) = parts.prompt(1, "hi").await;
    assert!(blocked(&verdict, DenyReason::NoPolicy), "{verdict:?}");
    let Verdict::Block { message, .. } = verdict else {
        unreachable!()
    };
    assert!(message.contains("fails closed"), "{message}");
    assert!(!parts.health.get().reachable);
}

#[tokio::test]
async fn offline_the_last_unit_goes_to_one_prompt_only() {
    let limits = json!([{"type": "per_model", "model": "opus", "window": "daily", "value": 1}]);
    let parts = Parts::new(Some(policy(limits)));
    let (first, resolution) = parts.prompt(1, "first").await;
    assert_eq!(
        first,
        Verdict::Pass {
            decided_offline: true
        }
    );
    // Reserved though not yet counted: a second session cannot pass.
    let (second, _) = parts.prompt(2, "second").await;
    assert!(blocked(&second, DenyReason::PerModel), "{second:?}");
    // A retry of the reserved prompt is not gated again.
    let retry = parts.accounting.resolve(
        &request(1, "first", true),
        &TurnRules::default(),
        parts.policy.now(),
    );
    assert!(matches!(retry, Resolution::PromptRetry { .. }), "{retry:?}");
    assert_eq!(resolution.key(), retry.key());
}

#[tokio::test]
async fn a_paused_person_is_stopped_even_mid_turn() {
    let mut paused = policy(json!([]));
    paused.status = UserStatus::Paused;
    let parts = Parts::new(Some(paused));
    let (verdict, _) = parts.prompt(1, "hi").await;
    assert!(blocked(&verdict, DenyReason::Paused), "{verdict:?}");
    let continuation = parts
        .gate()
        .locally(ModelFamily::Opus, GateKind::Continuation, None);
    assert!(
        blocked(&continuation, DenyReason::Paused),
        "{continuation:?}"
    );
}

#[tokio::test]
async fn broken_files_and_unidentified_clients_are_refused_by_setting() {
    let mut strict = policy(json!([]));
    strict.unidentified_clients = UnidentifiedClients::Deny;
    let parts = Parts::new(Some(strict));
    let curl = request(0, "hi", false);
    let resolution = parts
        .accounting
        .resolve(&curl, &TurnRules::default(), parts.policy.now());
    let verdict = parts
        .gate()
        .decide(&resolution, &curl, ModelFamily::Opus)
        .await;
    assert!(
        blocked(&verdict, DenyReason::UnidentifiedClient),
        "{verdict:?}"
    );

    parts.integrity.set(Some("config.toml was deleted".into()));
    let (verdict, _) = parts.prompt(1, "hi").await;
    assert!(blocked(&verdict, DenyReason::Integrity), "{verdict:?}");
}
