//! Events from devices: stored idempotently (one transaction per batch,
//! `INSERT OR IGNORE` by UUID), then added to the in-memory usage index only
//! where they were new, settling the reservations they answer.

use std::sync::Arc;

use ccgate_quota::wire::{
    AgentEvent, CountReason, CredentialUse, EventBody, EventsRequest, EventsResponse,
    MAX_EVENTS_PER_BATCH,
};
use ccgate_quota::{ModelFamily, Totals, UserStatus};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use uuid::Uuid;

use crate::db::events::EventRow;
use crate::db::{self};
use crate::error::{Error, Result};
use crate::live::devices::DeviceLive;
use crate::live::reservations::ReservationKey;
use crate::live::users::UserLive;
use crate::metrics::EventLabels;
use crate::service::audit;
use crate::state::AppState;

/// Longest free-text field kept from a device.
const MAX_TEXT: usize = 16 * 1024;
const MAX_KEY: usize = 200;

fn check_len(what: &str, value: Option<&str>, max: usize) -> Result<()> {
    match value {
        Some(text) if text.len() > max => Err(Error::bad_request(format!(
            "{what} is longer than {max} bytes"
        ))),
        _ => Ok(()),
    }
}

fn validate(events: &[AgentEvent]) -> Result<()> {
    if events.len() > MAX_EVENTS_PER_BATCH {
        return Err(Error::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch holds at most {MAX_EVENTS_PER_BATCH} events, this one has {}",
                events.len()
            ),
        ));
    }
    for (index, event) in events.iter().enumerate() {
        let field = |name: &str| format!("events[{index}].{name}");
        match &event.body {
            EventBody::Request(r) => {
                check_len(&field("model"), Some(&r.model), MAX_KEY)?;
                check_len(&field("turn_key"), r.turn_key.as_deref(), MAX_KEY)?;
                check_len(&field("session_id"), r.session_id.as_deref(), MAX_KEY)?;
                check_len(&field("stop_reason"), r.stop_reason.as_deref(), MAX_KEY)?;
            }
            EventBody::Blocked(b) => {
                check_len(&field("model"), Some(&b.model), MAX_KEY)?;
                check_len(&field("turn_key"), b.turn_key.as_deref(), MAX_KEY)?;
                check_len(&field("message"), Some(&b.message), MAX_TEXT)?;
            }
            EventBody::TurnReleased { turn_key } => {
                check_len(&field("turn_key"), Some(turn_key), MAX_KEY)?;
            }
            EventBody::Tamper(t) => {
                check_len(&field("path"), Some(&t.path), MAX_TEXT)?;
                check_len(&field("what"), Some(&t.what), MAX_KEY)?;
                check_len(&field("detail"), t.detail.as_deref(), MAX_TEXT)?;
            }
            EventBody::DeliveryFault(f) => {
                check_len(&field("reason"), Some(&f.reason), MAX_TEXT)?;
            }
        }
    }
    Ok(())
}

/// Server time decides: an event keeps its own time only within
/// `[max(now − max age, device created), now]`.
pub fn clamp_time(
    at: Timestamp,
    now: Timestamp,
    max_age: SignedDuration,
    device_created: Timestamp,
) -> Timestamp {
    let oldest = now
        .checked_sub(max_age)
        .unwrap_or(Timestamp::MIN)
        .max(device_created)
        .min(now);
    at.clamp(oldest, now)
}

/// How events name the credential a request used.
pub fn credential_name(credential: CredentialUse) -> &'static str {
    match credential {
        CredentialUse::Personal => "personal",
        CredentialUse::Team => "team",
        CredentialUse::PersonalApiKey => "personal_api_key",
    }
}

fn row_for(
    event: &AgentEvent,
    user_id: i64,
    device_id: i64,
    at: Timestamp,
    now: Timestamp,
    weight: impl Fn(ModelFamily) -> u64,
) -> EventRow {
    let mut row = EventRow {
        id: event.id.to_string(),
        user_id,
        device_id: Some(device_id),
        at: at.as_millisecond(),
        received_at: now.as_millisecond(),
        event_type: String::new(),
        model: None,
        family: None,
        totals: Totals::default(),
        kind: None,
        turn_key: None,
        session_id: None,
        detail: None,
        count_reason: None,
        estimated: false,
        credential: None,
    };
    match &event.body {
        EventBody::Request(r) => {
            let family = ModelFamily::from_model_id(&r.model);
            row.event_type = "request".to_owned();
            row.model = Some(r.model.clone());
            row.family = Some(family);
            row.totals = Totals {
                prompts: u64::from(r.prompt_counted),
                credits: if r.prompt_counted { weight(family) } else { 0 },
                input_tokens: r.usage.input_tokens,
                output_tokens: r.usage.output_tokens,
                cache_creation_input_tokens: r.usage.cache_creation_input_tokens,
                cache_read_input_tokens: r.usage.cache_read_input_tokens,
            };
            row.kind = Some(r.kind.as_str().to_owned());
            row.turn_key = r.turn_key.clone();
            row.session_id = r.session_id.clone();
            // A reason only means something on the request that counted.
            row.count_reason = r
                .count_reason
                .filter(|_| r.prompt_counted)
                .map(|reason| reason.as_str().to_owned());
            row.estimated = r.estimated;
            row.credential = r
                .credential
                .map(|credential| credential_name(credential).to_owned());
            row.detail = Some(json!({
                "status": r.status, "outcome": r.outcome, "stop_reason": r.stop_reason,
                "duration_ms": r.duration_ms, "decided_offline": r.decided_offline,
            }));
        }
        EventBody::Blocked(b) => {
            row.event_type = "blocked".to_owned();
            row.model = Some(b.model.clone());
            row.family = Some(ModelFamily::from_model_id(&b.model));
            row.kind = Some(b.kind.as_str().to_owned());
            row.turn_key = b.turn_key.clone();
            row.detail = Some(json!({
                "reason": b.reason, "message": b.message,
                "decided_offline": b.decided_offline, "decided_by": "device",
            }));
        }
        EventBody::TurnReleased { turn_key } => {
            row.event_type = "turn_released".to_owned();
            row.turn_key = Some(turn_key.clone());
        }
        EventBody::Tamper(t) => {
            row.event_type = "tamper".to_owned();
            row.detail = Some(json!({
                "path": t.path, "what": t.what, "restored": t.restored, "detail": t.detail,
            }));
        }
        EventBody::DeliveryFault(f) => {
            row.event_type = "delivery_fault".to_owned();
            row.detail = Some(json!({ "quarantined": f.quarantined, "reason": f.reason }));
        }
    }
    row
}

pub async fn ingest(
    state: &AppState,
    device: &Arc<DeviceLive>,
    user: &Arc<UserLive>,
    request: EventsRequest,
) -> Result<EventsResponse> {
    validate(&request.events)?;
    let now = state.now();
    let max_age = SignedDuration::try_from(state.config.max_event_age)
        .unwrap_or(SignedDuration::from_hours(24 * 7));
    let weights = state.live.settings().credit_weights;
    let rows: Vec<EventRow> = request
        .events
        .iter()
        .map(|event| {
            let at = clamp_time(event.at, now, max_age, device.created_at);
            row_for(event, user.id, device.id, at, now, |f| weights.weight(f))
        })
        .collect();
    let (device_id, user_id) = (device.id, user.id);
    let subscription = request.subscription.clone();
    let (rows, inserted, subscription_stored) = state
        .db
        .write(move |tx| {
            let inserted = db::events::insert_new(tx, &rows)?;
            for (row, _) in rows
                .iter()
                .zip(&inserted)
                .filter(|(row, new)| **new && row.event_type == "tamper")
            {
                let entry = audit(
                    now,
                    "tamper",
                    &format!("device:{device_id}"),
                    Some(user_id),
                    Some(device_id),
                    row.detail.clone(),
                );
                db::audit::insert(tx, &entry)?;
            }
            let stored = match &subscription {
                Some(usage) => db::utilization::store_if_newer(tx, usage, user_id, device_id)?,
                None => false,
            };
            Ok((rows, inserted, stored))
        })
        .await?;

    let accepted = inserted.iter().filter(|new| **new).count() as u32;
    let duplicates = rows.len() as u32 - accepted;
    let (policy_version, usage, user_name) = {
        let mut guard = user.lock();
        for (row, new) in rows.iter().zip(&inserted) {
            if *new
                && let (Some(family), false) = (row.family, row.totals.is_zero())
                && let Ok(at) = Timestamp::from_millisecond(row.at)
            {
                guard.usage.add(at, family, row.totals);
            }
            // Settling is idempotent, so replays settle too.
            let settles = match row.event_type.as_str() {
                "request" => row.totals.prompts > 0,
                "turn_released" => true,
                _ => false,
            };
            if settles && let Some(turn_key) = &row.turn_key {
                guard.reservations.remove(&ReservationKey {
                    device_id: device.id,
                    key: turn_key.clone(),
                });
            }
        }
        (
            guard.policy.policy.version,
            guard.snapshot(now),
            guard.row.name.clone(),
        )
    };
    state
        .metrics
        .events
        .get_or_create(&EventLabels { result: "accepted" })
        .inc_by(u64::from(accepted));
    state
        .metrics
        .events
        .get_or_create(&EventLabels {
            result: "duplicate",
        })
        .inc_by(u64::from(duplicates));
    publish(state, device, &user_name, &rows, &inserted);
    if subscription_stored && let Some(usage) = &request.subscription {
        state.hub.publish(
            "subscription",
            || json!({ "subscription": usage, "userId": user.id, "deviceId": device.id }),
        );
    }
    Ok(EventsResponse {
        refused: Vec::new(),
        accepted,
        duplicates,
        server_time: now,
        policy_version,
        usage,
    })
}

fn publish(
    state: &AppState,
    device: &DeviceLive,
    user_name: &str,
    rows: &[EventRow],
    inserted: &[bool],
) {
    let hostname = device.hostname();
    for row in rows
        .iter()
        .zip(inserted)
        .filter(|(_, new)| **new)
        .map(|(row, _)| row)
    {
        let at = Timestamp::from_millisecond(row.at).ok();
        let base = json!({
            "userId": row.user_id, "userName": user_name, "model": row.model,
            "family": row.family, "hostname": hostname, "deviceId": device.id,
            "sessionId": row.session_id, "timestamp": at,
        });
        let with = |extra: serde_json::Value| {
            let mut value = base.clone();
            if let (Some(target), serde_json::Value::Object(more)) = (value.as_object_mut(), extra)
            {
                target.extend(more);
            }
            value
        };
        match row.event_type.as_str() {
            "request" => {
                let t = row.totals;
                let tokens = json!({
                    "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                    "cache_creation_input_tokens": t.cache_creation_input_tokens,
                    "cache_read_input_tokens": t.cache_read_input_tokens,
                    "estimated": row.estimated, "credential": row.credential,
                    "counted": t.prompts > 0,
                });
                state.hub.publish("usage", || {
                    let mut fields = with(tokens.clone());
                    fields["kind"] = json!(row.kind);
                    fields
                });
                if t.prompts > 0 {
                    state.hub.publish("user_counted", || {
                        let mut fields = with(tokens.clone());
                        fields["creditCost"] = json!(t.credits);
                        fields["countReason"] = json!(row.count_reason);
                        fields
                    });
                }
            }
            "blocked" => state.hub.publish("user_blocked", || {
                let detail = row.detail.clone().unwrap_or_default();
                with(json!({ "reason": detail["reason"], "message": detail["message"] }))
            }),
            "tamper" => state
                .hub
                .publish("tamper", || with(json!({ "detail": row.detail }))),
            _ => {}
        }
    }
}

/// What a hook `count` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookCount {
    Counted,
    /// The same prompt was already counted.
    Duplicate,
}

/// The hook's `count`: settles the session's reservation with server time
/// (client timestamps are ignored). Without a reservation, a count for the
/// same device, session and model within the dedupe window counts once.
pub async fn hook_count(
    state: &AppState,
    device: &Arc<DeviceLive>,
    user: &Arc<UserLive>,
    model: &str,
    session_id: Option<&str>,
) -> Result<HookCount> {
    let now = state.now();
    let family = ModelFamily::from_model_id(model);
    let key = ReservationKey {
        device_id: device.id,
        key: hook_key(session_id),
    };
    let dedupe = SignedDuration::try_from(state.config.hook_count_dedupe)
        .unwrap_or(SignedDuration::from_secs(10));
    let dedupe_key = (device.id, session_id.unwrap_or_default().to_owned(), family);
    let (row, user_name) = {
        let mut guard = user.lock();
        if guard.policy.policy.status != UserStatus::Active {
            return Err(Error::forbidden(format!(
                "{} is {}: nothing is counted",
                guard.row.name,
                guard.policy.policy.status.as_str()
            ))
            .with_code(guard.policy.policy.status.as_str()));
        }
        let reservation = guard.reservations.remove(&key);
        if reservation.is_none()
            && guard
                .recent_hook_counts
                .get(&dedupe_key)
                .is_some_and(|&last| now.duration_since(last) < dedupe)
        {
            return Ok(HookCount::Duplicate);
        }
        guard
            .recent_hook_counts
            .retain(|_, &mut last| now.duration_since(last) < dedupe);
        guard.recent_hook_counts.insert(dedupe_key, now);
        let cost = guard.policy.policy.credit_weights.weight(family);
        let totals = Totals {
            prompts: 1,
            credits: cost,
            ..Totals::default()
        };
        // Added now, under the lock, so no check sees neither the
        // reservation nor the count.
        guard.usage.add(now, family, totals);
        let row = EventRow {
            id: Uuid::new_v4().to_string(),
            user_id: user.id,
            device_id: Some(device.id),
            at: now.as_millisecond(),
            received_at: now.as_millisecond(),
            event_type: "request".to_owned(),
            model: Some(model.to_owned()),
            family: Some(family),
            totals,
            kind: Some("prompt".to_owned()),
            turn_key: None,
            session_id: session_id.map(str::to_owned),
            detail: Some(json!({ "source": "hook", "reserved": reservation.is_some() })),
            count_reason: Some(CountReason::NewPrompt.as_str().to_owned()),
            estimated: false,
            credential: None,
        };
        (row, guard.row.name.clone())
    };
    let stored = row.clone();
    state
        .db
        .write(move |tx| db::events::insert_new(tx, std::slice::from_ref(&stored)))
        .await?;
    state
        .metrics
        .events
        .get_or_create(&EventLabels { result: "accepted" })
        .inc();
    publish(state, device, &user_name, &[row], &[true]);
    Ok(HookCount::Counted)
}

/// The reservation key of a hook session.
pub fn hook_key(session_id: Option<&str>) -> String {
    format!("hook:{}", session_id.unwrap_or_default())
}
