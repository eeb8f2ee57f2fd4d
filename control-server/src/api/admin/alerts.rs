//! Alert channels and rules (`/api/admin/alerts/*`). A channel's settings
//! are sealed at rest and come back with their secrets replaced by a
//! marker; an edit that keeps the marker keeps the secret. Every change
//! reaches the alert engine at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ccgate_alerts::{ChannelConfig, ChannelKind, Severity};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Admin;
use crate::alerts::condition::{AlertCondition, AlertRule, DEFAULT_COOLDOWN_SECS};
use crate::alerts::delivery;
use crate::api::extract::Json;
use crate::db::alerts::{RuleFields, SealedChannel};
use crate::error::{Error, Result};
use crate::model::{AlertChannel, AlertDelivery, AuditEntry, RaisedAlert};
use crate::service::audit;
use crate::state::AppState;

/// Alerts and deliveries the log returns.
const LOG_LIMIT: u32 = 200;
const MAX_NAME: usize = 100;

#[derive(Debug, Serialize)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    pub kind: ChannelKind,
    /// Where it delivers, without secrets.
    pub target: String,
    /// The settings with every secret replaced by a marker.
    pub config: ChannelConfig,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
pub struct Channels {
    pub channels: Vec<ChannelView>,
}

#[derive(Debug, Serialize)]
pub struct OneChannel {
    pub channel: ChannelView,
}

fn view(row: AlertChannel, config: &ChannelConfig) -> ChannelView {
    ChannelView {
        id: row.id,
        name: row.name,
        kind: row.kind,
        target: row.target,
        config: config.redacted(),
        created_at: Some(row.created_at),
        updated_at: Some(row.updated_at),
    }
}

fn valid_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::bad_request(format!(
            "name must be 1 to {MAX_NAME} characters"
        )));
    }
    Ok(name.to_owned())
}

fn sealed(state: &AppState, name: String, config: &ChannelConfig) -> Result<SealedChannel> {
    config
        .validate()
        .map_err(|error| Error::bad_request(error.to_string()).with_code("invalid_channel"))?;
    let bytes = serde_json::to_vec(config).map_err(|_| Error::internal())?;
    Ok(SealedChannel {
        name,
        kind: config.kind().as_str().to_owned(),
        target: config.target(),
        sealed: state.vault.seal_channel(&bytes),
    })
}

/// The audit entry of an admin's change to channels or rules, made `now`.
fn entry(now: Timestamp, kind: &str, actor: &str, detail: Value) -> AuditEntry {
    audit(now, kind, actor, None, None, Some(detail))
}

/// A deletion's answer, or 404.
fn deleted(deleted: bool, what: &str, id: i64) -> Result<axum::Json<Value>> {
    if !deleted {
        return Err(Error::not_found(format!("no {what} with id {id}")));
    }
    Ok(axum::Json(json!({ "deleted": true, "id": id })))
}

pub async fn channels(State(state): State<AppState>) -> Result<axum::Json<Channels>> {
    let rows = state.store.alert_channels().await?;
    let mut channels = Vec::with_capacity(rows.len());
    for row in rows {
        let (_, config) = delivery::open_channel(&state, row.id).await?;
        channels.push(view(row, &config));
    }
    Ok(axum::Json(Channels { channels }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    name: String,
    config: ChannelConfig,
}

async fn one_channel(state: &AppState, id: i64) -> Result<axum::Json<OneChannel>> {
    let (row, _) = state
        .store
        .alert_channel(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no alert channel with id {id}")))?;
    let (_, config) = delivery::open_channel(state, id).await?;
    Ok(axum::Json(OneChannel {
        channel: view(row, &config),
    }))
}

pub async fn create_channel(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<NewChannel>,
) -> Result<(StatusCode, axum::Json<OneChannel>)> {
    let channel = sealed(&state, valid_name(&body.name)?, &body.config)?;
    let now = state.now();
    // The store adds the new channel's id as `channel_id`.
    let detail = json!({ "name": channel.name, "kind": channel.kind });
    let audit = entry(now, "alert_channel_created", &admin.actor, detail);
    let id = state
        .store
        .create_alert_channel(channel, now.as_millisecond(), audit)
        .await?;
    rules_changed(&state);
    Ok((StatusCode::CREATED, one_channel(&state, id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelChange {
    #[serde(default)]
    name: Option<String>,
    /// Secrets left as the marker keep their stored value.
    #[serde(default)]
    config: Option<ChannelConfig>,
}

pub async fn update_channel(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    Json(body): Json<ChannelChange>,
) -> Result<axum::Json<OneChannel>> {
    let (name, previous) = delivery::open_channel(&state, id).await?;
    let name = body
        .name
        .as_deref()
        .map(valid_name)
        .transpose()?
        .unwrap_or(name);
    let config = match body.config {
        Some(mut config) => {
            config.merge_secrets(&previous);
            config
        }
        None => previous,
    };
    let channel = sealed(&state, name, &config)?;
    let now = state.now();
    let detail = json!({ "channel_id": id, "name": channel.name, "kind": channel.kind });
    let audit = entry(now, "alert_channel_updated", &admin.actor, detail);
    state
        .store
        .update_alert_channel(id, channel, now.as_millisecond(), audit)
        .await?;
    rules_changed(&state);
    one_channel(&state, id).await
}

pub async fn delete_channel(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>> {
    let audit = entry(
        state.now(),
        "alert_channel_deleted",
        &admin.actor,
        json!({ "channel_id": id }),
    );
    let gone = state.store.delete_alert_channel(id, audit).await?;
    rules_changed(&state);
    deleted(gone, "alert channel", id)
}

#[derive(Debug, Serialize)]
pub struct TestResult {
    pub ok: bool,
    pub detail: String,
}

/// The channel's Test button: one attempt now.
pub async fn test_channel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<TestResult>> {
    let report = delivery::test(&state, id).await?;
    Ok(axum::Json(TestResult {
        ok: report.outcome.is_ok(),
        detail: report.to_string(),
    }))
}

#[derive(Debug, Serialize)]
pub struct Rules {
    pub rules: Vec<AlertRule>,
}

#[derive(Debug, Serialize)]
pub struct OneRule {
    pub rule: AlertRule,
}

pub async fn rules(State(state): State<AppState>) -> Result<axum::Json<Rules>> {
    Ok(axum::Json(Rules {
        rules: state.store.alert_rules().await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleBody {
    name: String,
    condition: AlertCondition,
    #[serde(default)]
    channels: Vec<i64>,
    #[serde(default)]
    cooldown_secs: Option<u64>,
    #[serde(default)]
    enabled: Option<bool>,
    /// A person subscribing to alerts about their own usage.
    #[serde(default)]
    owner_user_id: Option<i64>,
}

async fn rule_fields(state: &AppState, body: RuleBody) -> Result<RuleFields> {
    body.condition
        .validate()
        .map_err(|error| Error::bad_request(error.to_string()).with_code("invalid_rule"))?;
    if body.owner_user_id.is_some() && !body.condition.concerns_one_person() {
        return Err(Error::bad_request(
            "a person can subscribe only to alerts about their own usage (limit_share, kill)",
        )
        .with_code("invalid_rule"));
    }
    if let Some(owner) = body.owner_user_id
        && state.live.user(owner).is_none()
    {
        return Err(Error::bad_request(format!(
            "owner_user_id {owner}: no such person"
        )));
    }
    let cooldown_secs = body.cooldown_secs.unwrap_or(DEFAULT_COOLDOWN_SECS);
    if cooldown_secs > 30 * 24 * 3600 {
        return Err(Error::bad_request("cooldown_secs is at most 30 days"));
    }
    let known = state.store.alert_channels().await?;
    if let Some(missing) = body
        .channels
        .iter()
        .find(|id| !known.iter().any(|channel| channel.id == **id))
    {
        return Err(Error::bad_request(format!(
            "channel {missing} does not exist"
        )));
    }
    Ok(RuleFields {
        name: valid_name(&body.name)?,
        condition: body.condition,
        channels: body.channels,
        cooldown_secs,
        enabled: body.enabled.unwrap_or(true),
        owner_user_id: body.owner_user_id,
    })
}

async fn one_rule(state: &AppState, id: i64) -> Result<axum::Json<OneRule>> {
    let rule = state
        .store
        .alert_rules()
        .await?
        .into_iter()
        .find(|rule| rule.id == id)
        .ok_or_else(|| Error::not_found(format!("no alert rule with id {id}")))?;
    Ok(axum::Json(OneRule { rule }))
}

pub async fn create_rule(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<RuleBody>,
) -> Result<(StatusCode, axum::Json<OneRule>)> {
    let fields = rule_fields(&state, body).await?;
    let now = state.now();
    // The store adds the new rule's id as `rule_id`.
    let detail = json!({ "name": fields.name, "condition": fields.condition,
        "owner_user_id": fields.owner_user_id });
    let audit = entry(now, "alert_rule_created", &admin.actor, detail);
    let id = state
        .store
        .create_alert_rule(fields, now.as_millisecond(), audit)
        .await?;
    rules_changed(&state);
    Ok((StatusCode::CREATED, one_rule(&state, id).await?))
}

pub async fn update_rule(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    Json(body): Json<RuleBody>,
) -> Result<axum::Json<OneRule>> {
    let fields = rule_fields(&state, body).await?;
    let now = state.now();
    let detail = json!({ "rule_id": id, "name": fields.name, "condition": fields.condition,
        "owner_user_id": fields.owner_user_id });
    let audit = entry(now, "alert_rule_updated", &admin.actor, detail);
    state
        .store
        .update_alert_rule(id, fields, now.as_millisecond(), audit)
        .await?;
    rules_changed(&state);
    one_rule(&state, id).await
}

pub async fn delete_rule(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>> {
    let audit = entry(
        state.now(),
        "alert_rule_deleted",
        &admin.actor,
        json!({ "rule_id": id }),
    );
    let gone = state.store.delete_alert_rule(id, audit).await?;
    rules_changed(&state);
    deleted(gone, "alert rule", id)
}

#[derive(Debug, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub rule_id: Option<i64>,
    pub subject: String,
    pub at: Option<Timestamp>,
    pub severity: Severity,
    pub title: String,
    pub message: String,
}

impl From<RaisedAlert> for AlertView {
    fn from(row: RaisedAlert) -> Self {
        Self {
            id: row.id,
            rule_id: row.rule_id,
            subject: row.subject,
            at: Some(row.at),
            severity: row.severity,
            title: row.title,
            message: row.message,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub alert_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub at: Option<Timestamp>,
    pub attempt: u32,
    pub ok: bool,
    pub detail: String,
}

impl From<AlertDelivery> for DeliveryView {
    fn from(row: AlertDelivery) -> Self {
        Self {
            id: row.id,
            alert_id: row.event_id,
            channel_id: row.channel_id,
            at: Some(row.at),
            attempt: row.attempt,
            ok: row.ok,
            detail: row.detail,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AlertLog {
    pub alerts: Vec<AlertView>,
    pub deliveries: Vec<DeliveryView>,
}

/// Recent alerts and every delivery attempt, failures included.
pub async fn log(State(state): State<AppState>) -> Result<axum::Json<AlertLog>> {
    let (alerts, deliveries) = state.store.alert_log(LOG_LIMIT).await?;
    Ok(axum::Json(AlertLog {
        alerts: alerts.into_iter().map(AlertView::from).collect(),
        deliveries: deliveries.into_iter().map(DeliveryView::from).collect(),
    }))
}

/// Rules or channels changed: the engine reads them again, on whichever
/// replica leads.
fn rules_changed(state: &AppState) {
    state.alerts.changed();
    state.hub.record_changed();
}
