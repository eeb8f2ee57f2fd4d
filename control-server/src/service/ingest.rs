//! Events from devices. A batch is read event by event: an event that does
//! not parse, or does not fit the wire limits (`ccgate_quota::limits`), is
//! refused alone with its reason (the device quarantines it) and the rest
//! are stored, so one odd event can never wedge a device's delivery. Only a
//! batch over the count or byte limit is refused whole (413). Rows go
//! through the background writer ([`crate::writer`]); the answer comes once
//! they are committed, and only rows that were new reach the usage index
//! and settle reservations (a replay counts nothing and settles nothing).

use std::sync::Arc;

use ccgate_quota::limits::MAX_BATCH_BYTES;
use ccgate_quota::wire::{
    AgentEvent, CountReason, CredentialUse, EventBody, EventsResponse, MAX_EVENTS_PER_BATCH,
    RefusedEvent, SubscriptionUsage,
};
use ccgate_quota::{ModelFamily, Totals, UserStatus};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::db::utilization::SubscriptionClaim;
use crate::error::{Error, Result};
use crate::hub::StoredUsage;
use crate::hub::event::{Activity, LiveEvent, TokenFigures};
use crate::live::devices::DeviceLive;
use crate::live::reservations::ReservationKey;
use crate::live::users::UserLive;
use crate::model::{AuditEntry, Event, EventType};
use crate::service::audit;
use crate::state::AppState;
use crate::writer::{PendingRow, RequestSubscription, RowResult};

/// `Retry-After` when the database did not take every row of a batch.
const RETRY_FAILED_SECS: u64 = 5;

/// A device's batch, read event by event.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events that parsed and fit the wire limits, in batch order.
    pub events: Vec<AgentEvent>,
    /// Events refused as they were read, with why.
    pub refused: Vec<RefusedEvent>,
    /// The subscription report, if it parsed (an unreadable one is dropped:
    /// the next one replaces it anyway).
    pub subscription: Option<SubscriptionUsage>,
}

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    subscription: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EventId {
    id: Uuid,
}

fn batch_too_large(message: String) -> Error {
    Error::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
        message,
    )
}

/// The 413 of a batch whose body is over [`MAX_BATCH_BYTES`] (`bytes`, when known).
pub fn batch_bytes_error(bytes: Option<usize>) -> Error {
    let has = bytes.map_or_else(|| "more".to_owned(), |n| n.to_string());
    batch_too_large(format!(
        "an event batch holds at most {MAX_BATCH_BYTES} bytes of JSON, this one has {has}; \
         send fewer events per batch"
    ))
}

/// Reads an `EventsRequest` body event by event. Errors only for what
/// concerns the whole batch: over the byte or count limit (413), not a
/// batch at all, or an event without a readable id (400: it could be
/// neither stored nor refused by name).
pub fn read_batch(bytes: &[u8]) -> Result<Batch> {
    if bytes.len() > MAX_BATCH_BYTES {
        return Err(batch_bytes_error(Some(bytes.len())));
    }
    let raw: RawBatch<'_> = serde_json::from_slice(bytes).map_err(|error| {
        Error::bad_request(format!("invalid JSON body: {error}")).with_code("invalid_json")
    })?;
    if raw.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(batch_too_large(format!(
            "a batch holds at most {MAX_EVENTS_PER_BATCH} events, this one has {}",
            raw.events.len()
        )));
    }
    let mut batch = Batch::default();
    for (index, value) in raw.events.iter().enumerate() {
        match serde_json::from_str::<AgentEvent>(value.get()) {
            Ok(event) => match event.wire_problem() {
                None => batch.events.push(event),
                Some(reason) => batch.refused.push(RefusedEvent {
                    id: event.id,
                    reason,
                }),
            },
            Err(error) => {
                let id = serde_json::from_str::<EventId>(value.get())
                    .map_err(|_| {
                        Error::bad_request(format!(
                            "events[{index}] has no id (a UUID), so it can be neither stored nor \
                             refused: {error}"
                        ))
                        .with_code("invalid_event")
                    })?
                    .id;
                batch.refused.push(RefusedEvent {
                    id,
                    reason: format!("unreadable event: {error}"),
                });
            }
        }
    }
    batch.subscription = raw
        .subscription
        .filter(|value| value.get() != "null")
        .and_then(|value| match serde_json::from_str(value.get()) {
            Ok(usage) => Some(usage),
            Err(error) => {
                tracing::debug!(%error, "unreadable subscription report dropped");
                None
            }
        });
    Ok(batch)
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
) -> Event {
    let mut row = Event {
        id: event.id.to_string(),
        user_id,
        device_id: Some(device_id),
        at,
        received_at: now,
        event_type: EventType::Request,
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
            row.event_type = EventType::Request;
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
            row.event_type = EventType::Blocked;
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
            row.event_type = EventType::TurnReleased;
            row.turn_key = Some(turn_key.clone());
        }
        EventBody::Tamper(t) => {
            row.event_type = EventType::Tamper;
            row.detail = Some(json!({
                "path": t.path, "what": t.what, "restored": t.restored, "detail": t.detail,
            }));
        }
        EventBody::DeliveryFault(f) => {
            row.event_type = EventType::DeliveryFault;
            row.detail = Some(json!({ "quarantined": f.quarantined, "reason": f.reason }));
        }
        EventBody::AgentUpdate(u) => {
            row.event_type = EventType::AgentUpdate;
            row.detail = Some(json!({
                "from_version": u.from_version, "to_version": u.to_version,
                "outcome": u.outcome, "detail": u.detail,
            }));
        }
    }
    row
}

/// A subscription report made to fit: its time clamped like an event's (a
/// report from the future would otherwise stay "newest" for good), its
/// labels shortened, at most a few windows.
pub fn fit_subscription(
    mut usage: SubscriptionUsage,
    now: Timestamp,
    max_age: SignedDuration,
    device_created: Timestamp,
) -> SubscriptionUsage {
    usage.observed_at = clamp_time(usage.observed_at, now, max_age, device_created);
    usage.fit_to_wire();
    usage
}

/// What a request event says about its subscription: the team's credential
/// (the daemon swapped it in) or the account a personal login named.
fn request_subscription(event: &AgentEvent) -> Option<RequestSubscription> {
    let EventBody::Request(request) = &event.body else {
        return None;
    };
    let claim = match (&request.credential, &request.account) {
        (Some(CredentialUse::Team), _) => SubscriptionClaim::Team,
        (Some(CredentialUse::PersonalApiKey), _) => return None,
        (_, Some(account)) => SubscriptionClaim::Account(account.clone()),
        (_, None) => return None,
    };
    Some(RequestSubscription {
        claim,
        utilization: request.utilization.as_deref().cloned(),
    })
}

impl RequestSubscription {
    fn fit(
        mut self,
        now: Timestamp,
        max_age: SignedDuration,
        device_created: Timestamp,
    ) -> RequestSubscription {
        self.utilization = self
            .utilization
            .map(|usage| fit_subscription(usage, now, max_age, device_created));
        self
    }
}

/// The audit entry written with a new row, for events admins must see.
fn audit_for(row: &Event, hostname: Option<&str>, now: Timestamp) -> Option<AuditEntry> {
    let actor = format!("device:{}", row.device_id.unwrap_or_default());
    let detail = match row.event_type {
        EventType::Tamper => row.detail.clone(),
        EventType::DeliveryFault | EventType::AgentUpdate => {
            let mut detail = row.detail.clone().unwrap_or_else(|| json!({}));
            detail["hostname"] = json!(hostname);
            Some(detail)
        }
        _ => return None,
    };
    Some(audit(
        now,
        row.event_type.as_str(),
        &actor,
        Some(row.user_id),
        row.device_id,
        detail,
    ))
}

/// The reservation a new row settles, if any. Only a new event settles: a
/// replay must not settle a reservation made after the event it repeats.
fn settled_turn(row: &Event, device_id: i64) -> Option<ReservationKey> {
    let settles = match row.event_type {
        EventType::Request => row.totals.prompts > 0,
        EventType::TurnReleased => true,
        _ => false,
    };
    row.turn_key
        .as_ref()
        .filter(|_| settles)
        .map(|turn_key| ReservationKey {
            device_id,
            key: turn_key.clone(),
        })
}

/// What the writer did with a batch's rows, once applied to the live state.
struct Applied {
    accepted: u32,
    duplicates: u32,
    refused: Vec<RefusedEvent>,
    failed: usize,
}

/// Adds the new rows to the usage index, settles the reservations they
/// answer, tells the admins. Runs once the rows are committed, whether or
/// not the request still waits.
fn apply(
    state: &AppState,
    device: &DeviceLive,
    user: &UserLive,
    results: Vec<(Event, RowResult)>,
) -> Applied {
    let mut applied = Applied {
        accepted: 0,
        duplicates: 0,
        refused: Vec::new(),
        failed: 0,
    };
    let mut new_rows = Vec::new();
    for (row, result) in results {
        match result {
            RowResult::New => {
                applied.accepted += 1;
                new_rows.push(row);
            }
            RowResult::Duplicate => applied.duplicates += 1,
            RowResult::Refused(reason) => {
                tracing::warn!(event = %row.id, device = device.id, %reason, "event refused by the database");
                if let Ok(id) = Uuid::parse_str(&row.id) {
                    applied.refused.push(RefusedEvent { id, reason });
                }
            }
            RowResult::Failed(_) => applied.failed += 1,
        }
    }
    let (user_name, subscription_id) = {
        let mut guard = user.lock();
        for row in &new_rows {
            if let (Some(family), false) = (row.family, row.totals.is_zero()) {
                guard.usage.add(row.at, family, row.totals);
            }
            if let Some(key) = settled_turn(row, device.id) {
                guard.reservations.remove(&key);
            }
        }
        (guard.row.name.clone(), guard.row.subscription_id)
    };
    state.hub.usage_stored(|| {
        new_rows
            .iter()
            .filter_map(|row| StoredUsage::of(row, settled_turn(row, device.id)))
            .collect()
    });
    state
        .metrics
        .count_events("accepted", u64::from(applied.accepted));
    state
        .metrics
        .count_events("duplicate", u64::from(applied.duplicates));
    publish(state, device, &user_name, subscription_id, new_rows.iter());
    applied
}

pub async fn ingest(
    state: &AppState,
    device: &Arc<DeviceLive>,
    user: &Arc<UserLive>,
    batch: Batch,
) -> Result<EventsResponse> {
    let now = state.now();
    let max_age = SignedDuration::try_from(state.config.max_event_age)
        .unwrap_or(SignedDuration::from_hours(24 * 7));
    let weights = state.live.settings().credit_weights;
    let hostname = device.hostname();
    let Batch {
        events,
        mut refused,
        subscription,
    } = batch;
    let rows: Vec<PendingRow> = events
        .iter()
        .map(|event| {
            let at = clamp_time(event.at, now, max_age, device.created_at);
            let row = row_for(event, user.id, device.id, at, now, |f| weights.weight(f));
            let audit = audit_for(&row, hostname.as_deref(), now);
            let subscription = request_subscription(event)
                .map(|request| request.fit(now, max_age, device.created_at));
            PendingRow {
                row,
                audit,
                subscription,
            }
        })
        .collect();

    // An agent from before issue 11 reports its latest figure beside the
    // events: kept for the person's subscription.
    if let Some(usage) = subscription {
        let usage = fit_subscription(usage, now, max_age, device.created_at);
        let (user_id, device_id) = (user.id, device.id);
        let stored = state
            .store
            .record_reported_utilization(user_id, device_id, usage)
            .await?;
        if stored {
            publish_utilization(state, user.id, now);
        }
    }

    let observed = rows.iter().any(|pending| {
        pending
            .subscription
            .as_ref()
            .is_some_and(|s| s.utilization.is_some())
    });
    let applied = if rows.is_empty() {
        Applied {
            accepted: 0,
            duplicates: 0,
            refused: Vec::new(),
            failed: 0,
        }
    } else {
        let ticket = state.writer.admit(rows.len()).await?;
        let (answer, written) = tokio::sync::oneshot::channel();
        let (state_now, device_now, user_now) =
            (state.clone(), Arc::clone(device), Arc::clone(user));
        ticket.submit_then(rows, move |results| {
            let _ = answer.send(apply(&state_now, &device_now, &user_now, results));
        });
        written.await.map_err(|_| {
            Error::busy(
                "the server is shutting down; send the batch again",
                RETRY_FAILED_SECS,
            )
        })?
    };
    if observed && applied.accepted > 0 {
        publish_utilization(state, user.id, now);
    }
    refused.extend(applied.refused);
    state.metrics.count_events("refused", refused.len() as u64);
    if applied.failed > 0 {
        // The stored ones come back as duplicates when the device retries.
        return Err(Error::busy(
            format!(
                "the database did not take {} of these events; send the batch again",
                applied.failed
            ),
            RETRY_FAILED_SECS,
        ));
    }
    let (policy_version, usage) = {
        let guard = user.lock();
        (guard.policy.policy.version, guard.snapshot(now))
    };
    Ok(EventsResponse {
        refused,
        accepted: applied.accepted,
        duplicates: applied.duplicates,
        server_time: now,
        policy_version,
        usage,
    })
}

/// A subscription's utilization was observed: dashboards refresh, the
/// attribution and the alerts look again.
fn publish_utilization(state: &AppState, user_id: i64, now: Timestamp) {
    state.hub.publish(|| LiveEvent::Utilization {
        user_id,
        timestamp: now,
    });
}

fn publish<'a>(
    state: &AppState,
    device: &DeviceLive,
    user_name: &str,
    subscription_id: Option<i64>,
    rows: impl Iterator<Item = &'a Event>,
) {
    let hostname = device.hostname();
    for row in rows {
        let activity = || Activity {
            user_id: row.user_id,
            user_name: Some(user_name.to_owned()),
            device_id: Some(device.id),
            hostname: hostname.clone(),
            model: row.model.clone(),
            family: row.family,
            session_id: row.session_id.clone(),
            timestamp: Some(row.at),
        };
        let detail = || row.detail.clone().unwrap_or_default();
        match row.event_type {
            EventType::Request => {
                let t = row.totals;
                let tokens = TokenFigures {
                    input_tokens: t.input_tokens,
                    output_tokens: t.output_tokens,
                    cache_creation_input_tokens: t.cache_creation_input_tokens,
                    cache_read_input_tokens: t.cache_read_input_tokens,
                    estimated: row.estimated,
                    credential: row.credential.clone(),
                    counted: t.prompts > 0,
                };
                state.hub.publish(|| LiveEvent::Usage {
                    activity: activity(),
                    tokens: tokens.clone(),
                    kind: row.kind.clone(),
                });
                let status = detail()["status"].as_u64().unwrap_or_default();
                let team = row.credential.as_deref() == Some(credential_name(CredentialUse::Team));
                if let (true, 401 | 403, Some(subscription_id)) = (team, status, subscription_id) {
                    state.hub.publish(|| LiveEvent::CredentialRefused {
                        activity: activity(),
                        subscription_id,
                        status: status as u16,
                    });
                }
                if t.prompts > 0 {
                    state.hub.publish(|| LiveEvent::UserCounted {
                        activity: activity(),
                        tokens: Some(tokens),
                        credit_cost: t.credits,
                        count_reason: row.count_reason.clone(),
                        unreported: false,
                    });
                }
            }
            EventType::Blocked => state.hub.publish(|| {
                let detail = detail();
                LiveEvent::UserBlocked {
                    activity: activity(),
                    reason: serde_json::from_value(detail["reason"].clone()).ok(),
                    message: detail["message"].as_str().unwrap_or_default().to_owned(),
                }
            }),
            EventType::Tamper => state.hub.publish(|| LiveEvent::Tamper {
                activity: activity(),
                detail: row.detail.clone(),
            }),
            EventType::DeliveryFault => state.hub.publish(|| {
                let detail = detail();
                LiveEvent::DeliveryFault {
                    activity: activity(),
                    quarantined: detail["quarantined"].as_u64(),
                    reason: detail["reason"].as_str().map(str::to_owned),
                }
            }),
            EventType::AgentUpdate => state.hub.publish(|| LiveEvent::AgentUpdate {
                activity: activity(),
                detail: row.detail.clone(),
            }),
            EventType::TurnReleased => {}
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
    // Room first: once counted in memory, the row must be queued.
    let ticket = state.writer.admit(1).await?;
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
        let row = Event {
            id: Uuid::new_v4().to_string(),
            user_id: user.id,
            device_id: Some(device.id),
            at: now,
            received_at: now,
            event_type: EventType::Request,
            model: Some(model.to_owned()),
            family: Some(family),
            totals,
            kind: Some("prompt".to_owned()),
            // On PostgreSQL the stored row settles the session's
            // reservation there (whatever replica held it).
            turn_key: Some(key.key.clone()),
            session_id: session_id.map(str::to_owned),
            detail: Some(json!({ "source": "hook", "reserved": reservation.is_some() })),
            count_reason: Some(CountReason::NewPrompt.as_str().to_owned()),
            estimated: false,
            credential: None,
        };
        (row, guard.row.name.clone())
    };
    // The hook's reservation may be mirrored on another replica too.
    state
        .hub
        .usage_stored(|| StoredUsage::of(&row, Some(key)).into_iter().collect());
    ticket.submit(vec![PendingRow::from(row.clone())]);
    state.metrics.count_events("accepted", 1);
    publish(state, device, &user_name, None, std::iter::once(&row));
    Ok(HookCount::Counted)
}

/// The reservation key of a hook session.
pub fn hook_key(session_id: Option<&str>) -> String {
    format!("hook:{}", session_id.unwrap_or_default())
}
