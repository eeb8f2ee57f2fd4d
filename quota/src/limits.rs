//! The one set of wire limits of the agent API: what a field, an event and a
//! batch may hold. The proxy fits every event to them before recording it
//! (a long field is shortened, its end replaced by a hash, never refused),
//! and the server checks each event against them and refuses only the ones
//! that do not fit, so one odd event can never wedge a device's delivery.

use sha2::{Digest, Sha256};

use crate::wire::{AgentEvent, EventBody, TokenUsage};

/// Identifiers: model ids, turn keys, session ids, tamper kinds.
pub const MAX_KEY_BYTES: usize = 200;
/// Free text: block messages, tamper paths and details.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Short labels: stop reasons.
pub const MAX_LABEL_BYTES: usize = 64;
/// Utilization windows kept per observation (`5h`, `7d`, `7d_opus`, …).
pub const MAX_SUBSCRIPTION_WINDOWS: usize = 16;
/// Events per batch.
pub const MAX_EVENTS_PER_BATCH: usize = 500;
/// Bytes of one batch's JSON (the server's body limit is larger).
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Tokens of each kind one request may report (Anthropic's largest
/// contexts are a few million).
pub const MAX_TOKENS_PER_REQUEST: u64 = 1_000_000_000;

/// `text` cut to at most `max` bytes: a longer one keeps its start and ends
/// in `…#` and 16 hex digits of its SHA-256, so different long values stay
/// different and the same value always fits the same way.
pub fn fit_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let hash = Sha256::digest(text.as_bytes());
    let suffix = format!(
        "…#{}",
        hash[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let mut keep = max.saturating_sub(suffix.len());
    while keep > 0 && !text.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &text[..keep])
}

fn fit(slot: &mut String, max: usize) {
    if slot.len() > max {
        *slot = fit_text(slot, max);
    }
}

fn fit_opt(slot: &mut Option<String>, max: usize) {
    if let Some(text) = slot {
        fit(text, max);
    }
}

fn usage_fits(usage: &TokenUsage) -> bool {
    [
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_creation_input_tokens,
        usage.cache_read_input_tokens,
    ]
    .iter()
    .all(|n| *n <= MAX_TOKENS_PER_REQUEST)
}

impl AgentEvent {
    /// Shortens every field to the wire limits (the proxy does this before
    /// it records an event), and caps token counts.
    pub fn fit_to_wire(&mut self) {
        match &mut self.body {
            EventBody::Request(r) => {
                fit(&mut r.model, MAX_KEY_BYTES);
                fit_opt(&mut r.turn_key, MAX_KEY_BYTES);
                fit_opt(&mut r.session_id, MAX_KEY_BYTES);
                fit_opt(&mut r.stop_reason, MAX_LABEL_BYTES);
                fit_opt(&mut r.account, MAX_KEY_BYTES);
                if let Some(usage) = &mut r.utilization {
                    usage.fit_to_wire();
                }
                for n in [
                    &mut r.usage.input_tokens,
                    &mut r.usage.output_tokens,
                    &mut r.usage.cache_creation_input_tokens,
                    &mut r.usage.cache_read_input_tokens,
                ] {
                    *n = (*n).min(MAX_TOKENS_PER_REQUEST);
                }
            }
            EventBody::Blocked(b) => {
                fit(&mut b.model, MAX_KEY_BYTES);
                fit_opt(&mut b.turn_key, MAX_KEY_BYTES);
                fit(&mut b.message, MAX_TEXT_BYTES);
            }
            EventBody::TurnReleased { turn_key } => fit(turn_key, MAX_KEY_BYTES),
            EventBody::Tamper(t) => {
                fit(&mut t.path, MAX_TEXT_BYTES);
                fit(&mut t.what, MAX_KEY_BYTES);
                fit_opt(&mut t.detail, MAX_TEXT_BYTES);
            }
            EventBody::DeliveryFault(f) => {
                fit(&mut f.reason, MAX_TEXT_BYTES);
            }
            EventBody::AgentUpdate(u) => {
                fit(&mut u.from_version, MAX_LABEL_BYTES);
                fit(&mut u.to_version, MAX_LABEL_BYTES);
                fit(&mut u.detail, MAX_TEXT_BYTES);
            }
        }
    }

    /// Why this event does not fit the wire limits, if it does not (the
    /// server refuses such an event alone, and keeps the rest of its batch).
    pub fn wire_problem(&self) -> Option<String> {
        let long = |name: &str, value: &str, max: usize| {
            (value.len() > max).then(|| format!("{name} is longer than {max} bytes"))
        };
        let long_opt = |name: &str, value: &Option<String>, max: usize| {
            value.as_deref().and_then(|v| long(name, v, max))
        };
        match &self.body {
            EventBody::Request(r) => long("model", &r.model, MAX_KEY_BYTES)
                .or_else(|| long_opt("turn_key", &r.turn_key, MAX_KEY_BYTES))
                .or_else(|| long_opt("session_id", &r.session_id, MAX_KEY_BYTES))
                .or_else(|| long_opt("stop_reason", &r.stop_reason, MAX_LABEL_BYTES))
                .or_else(|| long_opt("account", &r.account, MAX_KEY_BYTES))
                .or_else(|| {
                    r.utilization.as_ref().and_then(|usage| {
                        let mut fitted = usage.clone();
                        fitted.fit_to_wire();
                        (fitted != *usage).then(|| "utilization is over the limits".to_owned())
                    })
                })
                .or_else(|| {
                    (!usage_fits(&r.usage))
                        .then(|| format!("a token count is above {MAX_TOKENS_PER_REQUEST}"))
                }),
            EventBody::Blocked(b) => long("model", &b.model, MAX_KEY_BYTES)
                .or_else(|| long_opt("turn_key", &b.turn_key, MAX_KEY_BYTES))
                .or_else(|| long("message", &b.message, MAX_TEXT_BYTES)),
            EventBody::TurnReleased { turn_key } => long("turn_key", turn_key, MAX_KEY_BYTES),
            EventBody::Tamper(t) => long("path", &t.path, MAX_TEXT_BYTES)
                .or_else(|| long("what", &t.what, MAX_KEY_BYTES))
                .or_else(|| long_opt("detail", &t.detail, MAX_TEXT_BYTES)),
            EventBody::DeliveryFault(f) => long("reason", &f.reason, MAX_TEXT_BYTES),
            EventBody::AgentUpdate(u) => long("from_version", &u.from_version, MAX_LABEL_BYTES)
                .or_else(|| long("to_version", &u.to_version, MAX_LABEL_BYTES))
                .or_else(|| long("detail", &u.detail, MAX_TEXT_BYTES)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Outcome, RequestEvent, RequestKind};

    fn request(model: &str) -> AgentEvent {
        AgentEvent {
            id: uuid::Uuid::nil(),
            at: "2026-12-02T10:00:00Z".parse().unwrap(),
            body: EventBody::Request(RequestEvent {
                model: model.to_owned(),
                kind: RequestKind::Prompt,
                turn_key: Some("s:1".into()),
                session_id: None,
                prompt_counted: true,
                status: 200,
                outcome: Outcome::Completed,
                stop_reason: None,
                usage: TokenUsage::new(u64::MAX, 1, 0, 0),
                duration_ms: 1,
                decided_offline: false,
                count_reason: None,
                estimated: false,
                credential: None,
                utilization: None,
                account: None,
            }),
        }
    }

    #[test]
    fn long_fields_are_shortened_and_stay_distinct() {
        let a = fit_text(&"é".repeat(300), MAX_KEY_BYTES);
        let b = fit_text(&format!("{}x", "é".repeat(300)), MAX_KEY_BYTES);
        assert!(a.len() <= MAX_KEY_BYTES && b.len() <= MAX_KEY_BYTES);
        assert_ne!(a, b, "the hash tells long values apart");
        assert_eq!(a, fit_text(&"é".repeat(300), MAX_KEY_BYTES));
        assert_eq!(
            fit_text("claude-opus-5-5", MAX_KEY_BYTES),
            "claude-opus-5-5"
        );
    }

    #[test]
    fn a_fitted_event_passes_the_servers_check() {
        let mut event = request(&"m".repeat(201));
        assert!(event.wire_problem().unwrap().contains("model"));
        event.fit_to_wire();
        assert_eq!(event.wire_problem(), None);
        let EventBody::Request(r) = &event.body else {
            unreachable!()
        };
        assert!(r.model.starts_with("mmmm") && r.model.len() <= MAX_KEY_BYTES);
        assert_eq!(r.usage.input_tokens, MAX_TOKENS_PER_REQUEST);
    }
}
