//! Read-only reports: usage by day or month, the event feed, the audit log
//! and the subscription's own utilization.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use ccgate_quota::{ModelFamily, Totals};
use jiff::ToSpan;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ts;
use crate::db::audit::AuditFilter;
use crate::db::events::{EventFilter, StoredEvent};
use crate::error::{Error, Result};
use crate::model::EventType;
use crate::state::AppState;

type Out = axum::Json<Value>;

const MAX_DAYS: i64 = 400;
const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize)]
pub struct UsageQuery {
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    days: Option<i64>,
    /// `day` (default) or `month`.
    #[serde(default)]
    group: Option<String>,
}

/// `GET /usage`: rows per local day (or month) and model family; days are
/// in the user's zone when `user_id` is given, else the team's.
pub async fn usage(State(state): State<AppState>, Query(query): Query<UsageQuery>) -> Result<Out> {
    let by_month = match query.group.as_deref() {
        None | Some("day") => false,
        Some("month") => true,
        Some(other) => {
            return Err(Error::bad_request(format!(
                "group must be day or month, not {other:?}"
            )));
        }
    };
    let days = query.days.unwrap_or(if by_month { 365 } else { 7 });
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(Error::bad_request(format!("days must be 1 to {MAX_DAYS}")));
    }
    let zone_name = match query.user_id {
        Some(id) => state
            .live
            .user(id)
            .ok_or_else(|| Error::not_found(format!("no user with id {id}")))?
            .lock()
            .policy
            .policy
            .time_zone
            .clone(),
        None => state.live.settings().time_zone.clone(),
    };
    let tz = TimeZone::get(&zone_name).unwrap_or(TimeZone::UTC);
    let now = state.now();
    let today = now.to_zoned(tz.clone()).date();
    let first_day = today
        .checked_sub((days - 1).days())
        .map_err(|_| Error::bad_request("days reaches too far back"))?;
    let from = ccgate_quota::window::start_of_day(first_day, &tz)
        .ok_or_else(|| Error::bad_request("days reaches too far back"))?;
    let (user_id, from_ms, until_ms) = (
        query.user_id,
        from.as_millisecond(),
        now.as_millisecond() + 1,
    );
    let buckets = state
        .store
        .usage_buckets(user_id, from_ms, until_ms)
        .await?;
    let mut rows: BTreeMap<(String, ModelFamily), Totals> = BTreeMap::new();
    for bucket in buckets {
        let Some(at) = ts(bucket.start) else { continue };
        let date = at.to_zoned(tz.clone()).date();
        let key = if by_month {
            format!("{:04}-{:02}", date.year(), date.month())
        } else {
            date.to_string()
        };
        *rows.entry((key, bucket.family)).or_default() += bucket.totals;
    }
    let period = if by_month { "month" } else { "day" };
    let items: Vec<Value> = rows
        .into_iter()
        .map(|((key, family), t)| {
            json!({
                period: key, "model": family, "count": t.prompts, "credits": t.credits,
                "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
                "cache_creation_input_tokens": t.cache_creation_input_tokens,
                "cache_read_input_tokens": t.cache_read_input_tokens,
            })
        })
        .collect();
    let list = if by_month { "monthly" } else { "daily" };
    Ok(axum::Json(json!({ list: items, "time_zone": zone_name })))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default, rename = "type")]
    event_type: Option<EventType>,
    #[serde(default)]
    limit: Option<u32>,
    /// The `next_before` of the previous page.
    #[serde(default)]
    before: Option<String>,
}

fn event_json(event: &StoredEvent) -> Value {
    let row = &event.row;
    let t = row.totals;
    json!({
        "id": row.id, "user_id": row.user_id, "device_id": row.device_id,
        "at": row.at, "received_at": row.received_at, "type": row.event_type,
        "model": row.model, "family": row.family, "prompts": t.prompts, "credits": t.credits,
        "input_tokens": t.input_tokens, "output_tokens": t.output_tokens,
        "cache_creation_input_tokens": t.cache_creation_input_tokens,
        "cache_read_input_tokens": t.cache_read_input_tokens,
        "kind": row.kind, "turn_key": row.turn_key, "session_id": row.session_id,
        "count_reason": row.count_reason, "estimated": row.estimated,
        "credential": row.credential, "detail": row.detail,
    })
}

fn page_size(limit: Option<u32>) -> Result<u32> {
    match limit.unwrap_or(100) {
        0 => Err(Error::bad_request("limit must be at least 1")),
        n => Ok(n.min(MAX_PAGE)),
    }
}

/// `GET /events`: newest first; pass `next_before` as `before` for the next page.
pub async fn events(
    State(state): State<AppState>,
    Query(query): Query<EventsQuery>,
) -> Result<Out> {
    let before = query
        .before
        .as_deref()
        .map(|cursor| {
            cursor
                .split_once('.')
                .and_then(|(at, seq)| Some((at.parse().ok()?, seq.parse().ok()?)))
                .ok_or_else(|| {
                    Error::bad_request("before must be a next_before value from an earlier page")
                })
        })
        .transpose()?;
    let filter = EventFilter {
        user_id: query.user_id,
        event_type: query.event_type,
        before,
        limit: page_size(query.limit)?,
    };
    let limit = filter.limit as usize;
    let events = state.store.events_page(filter).await?;
    let next = (events.len() == limit)
        .then(|| {
            events
                .last()
                .map(|e| format!("{}.{}", e.row.at.as_millisecond(), e.seq))
        })
        .flatten();
    Ok(axum::Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    before: Option<i64>,
}

pub async fn audit(State(state): State<AppState>, Query(query): Query<AuditQuery>) -> Result<Out> {
    let filter = AuditFilter {
        kind: query.kind,
        user_id: query.user_id,
        before: query.before,
        limit: page_size(query.limit)?,
    };
    let limit = filter.limit as usize;
    let entries = state.store.audit_page(filter).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let items: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "at": e.at, "kind": e.kind, "actor": e.actor,
                "user_id": e.user_id, "device_id": e.device_id, "detail": e.detail,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "entries": items, "next_before": next })))
}

/// The newest observation of any subscription (the overview's figure before
/// there were several; `/subscriptions` has each one's).
pub async fn subscription(State(state): State<AppState>) -> Result<Out> {
    let latest = state.store.latest_utilization().await?;
    let newest = latest
        .into_iter()
        .map(|(_, usage)| usage)
        .max_by_key(|usage| usage.observed_at);
    Ok(axum::Json(json!({ "subscription": newest })))
}
