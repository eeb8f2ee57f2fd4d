//! The check: may this prompt go out now? Decided from memory under the
//! user's lock, and an allowed prompt is reserved under the same lock, so
//! concurrent checks cannot all pass the last unit. Side effects that touch
//! SQLite (the blocked event, counting lapsed hook reservations) are queued
//! on the background writer; the handlers take room in its queue before they
//! call [`check`] (see [`crate::writer::EventWriter::admit`]).

use ccgate_quota::wire::CountReason;
use ccgate_quota::{Decision, GateKind, GateRequest, ModelFamily, UserStatus, evaluate};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use uuid::Uuid;

use crate::error::Result;
use crate::hub::StoredUsage;
use crate::hub::event::{Activity, LiveEvent};
use crate::live::devices::DeviceLive;
use crate::live::reservations::{Reservation, ReservationKey};
use crate::live::users::{UserLive, UserState};
use crate::model::{Event, EventType};
use crate::postgres::PgDb;
use crate::postgres::gate::Check as SharedCheck;
use crate::state::AppState;
use crate::writer::PendingRow;

pub struct CheckInput<'a> {
    pub device: &'a DeviceLive,
    /// The reservation key on this device (turn key, or `hook:` + session).
    pub key: String,
    pub model: &'a str,
    pub session_id: Option<&'a str>,
    /// Hook reservations are counted if they lapse; a new hook check for the
    /// same session means the previous prompt was submitted, so it is counted
    /// rather than reused.
    pub hook: bool,
}

#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub decision: Decision,
    pub family: ModelFamily,
    pub status: UserStatus,
    pub policy_version: u64,
    pub reservation_expires_at: Option<Timestamp>,
}

impl CheckOutcome {
    pub fn allowed(&self) -> bool {
        self.decision.allowed()
    }
}

fn ttl(state: &AppState) -> SignedDuration {
    SignedDuration::try_from(state.config.reservation_ttl).unwrap_or(SignedDuration::from_mins(30))
}

pub fn check(state: &AppState, user: &UserLive, input: CheckInput<'_>) -> CheckOutcome {
    let now = state.now();
    let family = ModelFamily::from_model_id(input.model);
    let key = ReservationKey {
        device_id: input.device.id,
        key: input.key.clone(),
    };
    let mut counted = Vec::new();
    let (outcome, user_name) = {
        let mut guard = user.lock();
        let user_state = &mut *guard;
        counted.extend(lapse(user_state, now));
        let policy = &user_state.policy.policy;
        let (status, policy_version) = (policy.status, policy.version);
        let user_name = policy.user.name.clone();
        if let Some(held) = user_state.reservations.get(&key) {
            if input.hook {
                let previous = user_state.reservations.remove(&key).expect("just seen");
                counted.push(count_reservation(user_state, key.device_id, previous));
            } else if status == UserStatus::Active {
                // A repeated check for the same turn: the same answer, one reservation.
                let outcome = CheckOutcome {
                    decision: Decision {
                        cost: held.totals.credits,
                        denial: None,
                    },
                    family,
                    status,
                    policy_version,
                    reservation_expires_at: Some(held.expires_at),
                };
                drop(guard);
                record_counted(state, user.id, &user_name, counted);
                return outcome;
            }
        }
        let decision = evaluate(
            &user_state.policy,
            &user_state.source(),
            GateRequest {
                family,
                kind: GateKind::Prompt,
                now,
            },
        );
        let mut expires_at = None;
        if decision.allowed() {
            let lapse_at = now.checked_add(ttl(state)).unwrap_or(now);
            expires_at = Some(lapse_at);
            hold(
                user_state,
                key.clone(),
                &input,
                family,
                decision.cost,
                now,
                lapse_at,
                input.hook,
            );
        }
        (
            CheckOutcome {
                decision,
                family,
                status,
                policy_version,
                reservation_expires_at: expires_at,
            },
            user_name,
        )
    };
    record_counted(state, user.id, &user_name, counted);
    report(state, user.id, &user_name, &input, now, family, &outcome);
    outcome
}

/// The check decided in the shared database, exact whatever replica each
/// check reaches: the person's row is locked, their usage read from the
/// database's running totals plus pending reservations, and an allowed
/// prompt reserved there (`PgDb::check`). The policy is this replica's copy
/// (kept current by `replicas`). Hook clients' checks stay in memory.
pub async fn check_shared(
    state: &AppState,
    shared: &PgDb,
    user: &UserLive,
    input: CheckInput<'_>,
) -> Result<CheckOutcome> {
    let now = state.now();
    let family = ModelFamily::from_model_id(input.model);
    let (policy, user_name, shares) = {
        let guard = user.lock();
        (
            guard.policy.clone(),
            guard.row.name.clone(),
            guard.shares.clone(),
        )
    };
    let (status, policy_version) = (policy.policy.status, policy.policy.version);
    let check = SharedCheck {
        user_id: user.id,
        device_id: input.device.id,
        key: &input.key,
        model: input.model,
        family,
        kind: GateKind::Prompt,
        now,
        hold: state.config.reservation_ttl,
        shares,
        hook: input.hook,
        session_id: input.session_id,
    };
    let checked = shared
        .check(&policy, &check)
        .await
        .map_err(crate::db::DbError::from)?;
    let decision = checked.decision;
    let reservation_expires_at = checked
        .reservation_expires_at
        .and_then(|ms| Timestamp::from_millisecond(ms).ok());
    // First, as one of them may have held the key the new hold takes.
    take_counted(state, user.id, &user_name, checked.counted);
    if let Some(expires_at) = reservation_expires_at {
        // Mirrored here, so this replica's views show the prompt held and
        // its events settle it as with SQLite.
        let key = ReservationKey {
            device_id: input.device.id,
            key: input.key.clone(),
        };
        // The database counts a hook prompt that lapses: the mirror does not.
        hold(
            &mut user.lock(),
            key,
            &input,
            family,
            decision.cost,
            now,
            expires_at,
            false,
        );
    }
    let outcome = CheckOutcome {
        decision,
        family,
        status,
        policy_version,
        reservation_expires_at,
    };
    report(state, user.id, &user_name, &input, now, family, &outcome);
    Ok(outcome)
}

/// Holds an allowed prompt of `input` under `key` until `expires_at`;
/// `counts_on_expiry`: it is counted here if it lapses.
#[allow(clippy::too_many_arguments)]
fn hold(
    user_state: &mut UserState,
    key: ReservationKey,
    input: &CheckInput<'_>,
    family: ModelFamily,
    cost: u64,
    now: Timestamp,
    expires_at: Timestamp,
    counts_on_expiry: bool,
) {
    let reservation = Reservation::new(
        family,
        input.model.to_owned(),
        input.session_id.map(str::to_owned),
        cost,
        now,
        expires_at,
        counts_on_expiry,
    );
    user_state.reservations.insert(key, reservation);
}

/// Tells the admins what a check decided; a denial is also stored.
fn report(
    state: &AppState,
    user_id: i64,
    user_name: &str,
    input: &CheckInput<'_>,
    now: Timestamp,
    family: ModelFamily,
    outcome: &CheckOutcome,
) {
    let activity = || Activity {
        user_id,
        user_name: Some(user_name.to_owned()),
        device_id: Some(input.device.id),
        hostname: input.device.hostname(),
        model: Some(input.model.to_owned()),
        family: Some(family),
        session_id: input.session_id.map(str::to_owned),
        timestamp: Some(now),
    };
    match &outcome.decision.denial {
        None => state.hub.publish(|| LiveEvent::UserCheck(activity())),
        Some(denial) => {
            state.writer.push(vec![PendingRow::from(Event {
                id: Uuid::new_v4().to_string(),
                user_id,
                device_id: Some(input.device.id),
                at: now,
                received_at: now,
                event_type: EventType::Blocked,
                model: Some(input.model.to_owned()),
                family: Some(family),
                totals: Default::default(),
                kind: Some("prompt".to_owned()),
                turn_key: Some(input.key.clone()),
                session_id: input.session_id.map(str::to_owned),
                detail: Some(json!({
                    "reason": denial.reason,
                    "message": denial.message,
                    "decided_by": "server",
                })),
                count_reason: None,
                estimated: false,
                credential: None,
            })]);
            state.hub.publish(|| LiveEvent::UserBlocked {
                activity: activity(),
                reason: Some(denial.reason),
                message: denial.message.clone(),
            });
        }
    }
}

/// A prompt counted from a hook reservation (lapsed or superseded).
pub struct CountedPrompt {
    row: Event,
}

/// Takes the user's lapsed reservations; hook ones become counted prompts.
fn lapse(user_state: &mut UserState, now: Timestamp) -> Vec<CountedPrompt> {
    if user_state
        .reservations
        .next_expiry()
        .is_none_or(|at| at > now.as_millisecond())
    {
        return Vec::new();
    }
    let expired = user_state.reservations.take_expired(now);
    expired
        .into_iter()
        .filter(|(_, r)| r.counts_on_expiry)
        .map(|(key, reservation)| count_reservation(user_state, key.device_id, reservation))
        .collect()
}

/// Adds a hook reservation to the usage index as a prompt, at the time it was made.
fn count_reservation(
    user_state: &mut UserState,
    device_id: i64,
    reservation: Reservation,
) -> CountedPrompt {
    user_state.usage.add(
        reservation.created_at,
        reservation.family,
        reservation.totals,
    );
    let at = reservation.created_at;
    CountedPrompt {
        row: Event {
            id: Uuid::new_v4().to_string(),
            user_id: user_state.row.id,
            device_id: Some(device_id),
            at,
            received_at: at,
            event_type: EventType::Request,
            model: Some(reservation.model),
            family: Some(reservation.family),
            totals: reservation.totals,
            kind: Some("prompt".to_owned()),
            turn_key: None,
            session_id: reservation.session_id,
            detail: Some(json!({ "source": "hook", "settled": "unreported" })),
            count_reason: Some(CountReason::NewPrompt.as_str().to_owned()),
            estimated: false,
            credential: None,
        },
    }
}

/// Queues counted hook prompts for storage and tells the admins.
fn record_counted(state: &AppState, user_id: i64, user_name: &str, counted: Vec<CountedPrompt>) {
    let rows: Vec<Event> = counted.into_iter().map(|counted| counted.row).collect();
    announce_counted(state, user_id, user_name, &rows);
    for row in rows {
        state.writer.push(vec![PendingRow::from(row)]);
    }
}

/// Hook prompts the database counted (on PostgreSQL): into this replica's
/// usage index, and announced as [`record_counted`] does.
fn take_counted(state: &AppState, user_id: i64, user_name: &str, rows: Vec<Event>) {
    if rows.is_empty() {
        return;
    }
    crate::replicas::add_usage(state, rows.iter().filter_map(stored_usage).collect());
    announce_counted(state, user_id, user_name, &rows);
}

/// What a counted hook prompt adds, and the hold it ends.
fn stored_usage(row: &Event) -> Option<StoredUsage> {
    let settles = match (row.device_id, &row.turn_key) {
        (Some(device_id), Some(key)) => Some(ReservationKey {
            device_id,
            key: key.clone(),
        }),
        _ => None,
    };
    StoredUsage::of(row, settles)
}

/// Tells the other replicas and the admins of counted hook prompts.
fn announce_counted(state: &AppState, user_id: i64, user_name: &str, rows: &[Event]) {
    state
        .hub
        .usage_stored(|| rows.iter().filter_map(stored_usage).collect());
    for row in rows {
        state.hub.publish(|| LiveEvent::UserCounted {
            activity: Activity {
                user_id,
                user_name: Some(user_name.to_owned()),
                device_id: row.device_id,
                hostname: None,
                model: row.model.clone(),
                family: row.family,
                session_id: row.session_id.clone(),
                timestamp: Some(row.at),
            },
            tokens: None,
            credit_cost: row.totals.credits,
            count_reason: row.count_reason.clone(),
            unreported: true,
        });
    }
}

/// Sweeps every user's lapsed reservations (checks sweep their own user too).
pub fn expire_reservations(state: &AppState) {
    // (On PostgreSQL the reservations here are mirrors that count nothing:
    // the leading replica counts the lapsed hook prompts,
    // [`count_lapsed_shared`].)
    let now = state.now();
    for user in state.live.all_users() {
        let (counted, name) = {
            let mut guard = user.lock();
            let counted = lapse(&mut guard, now);
            (counted, guard.row.name.clone())
        };
        if !counted.is_empty() {
            record_counted(state, user.id, &name, counted);
        }
    }
}

/// The leading replica's sweep on PostgreSQL: hook prompts whose
/// reservations lapsed for people who did not check again are counted in
/// the database, then here and on the other replicas.
pub async fn count_lapsed_shared(state: &AppState, shared: &PgDb) {
    let counted = match shared.count_lapsed(state.now().as_millisecond()).await {
        Ok(counted) => counted,
        Err(error) => {
            tracing::warn!(%error, "could not count the lapsed hook prompts");
            return;
        }
    };
    let mut by_user: std::collections::BTreeMap<i64, Vec<Event>> = Default::default();
    for row in counted {
        by_user.entry(row.user_id).or_default().push(row);
    }
    for (user_id, rows) in by_user {
        let name = state
            .live
            .user(user_id)
            .map(|user| user.lock().row.name.clone())
            .unwrap_or_default();
        take_counted(state, user_id, &name, rows);
    }
}
