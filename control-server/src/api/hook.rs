//! The claude-code-limiter hook API (`/api/v1/*`), with the peer's request
//! and response shapes so its hook clients keep working. Behaviour differs
//! where the peer was weak: `check` reserves the prompt (per device and
//! session), `count` settles it with server time, is idempotent and refuses
//! a paused or killed user. Responses list only rules the peer knows;
//! every rule is still enforced here.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ccgate_quota::{
    CreditWeights, Metric, ModelFamily, Rule, RuleSpec, UsageReport, UsageSource, UserStatus,
    Window,
};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::extract::{ClientIp, OptionalJson, bearer, device_by_token};
use crate::error::{Error, Result};
use crate::live::devices::DeviceLive;
use crate::live::users::{UserLive, UserState};
use crate::model::{DeviceDetails, DeviceKind};
use crate::service::{gate, ingest, register};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/register", post(register_hook))
        .route("/sync", post(sync))
        .route("/check", post(check))
        .route("/count", post(count))
        .route("/status", get(status))
        .route("/health", get(health))
}

type Out = axum::Json<Value>;

/// The peer's windows; rules with others are enforced but not listed.
const PEER_WINDOWS: [Window; 4] = [
    Window::Daily,
    Window::Weekly,
    Window::Monthly,
    Window::Sliding24h,
];

/// The peer's name for a family (`default` for models of no known family).
fn peer_model(family: ModelFamily) -> &'static str {
    match family {
        ModelFamily::Other => "default",
        other => other.as_str(),
    }
}

fn peer_rules(rules: &[Rule]) -> Vec<Value> {
    rules
        .iter()
        .filter(|rule| match &rule.spec {
            RuleSpec::PerModel { window, .. } | RuleSpec::Credits { window, .. } => {
                PEER_WINDOWS.contains(window)
            }
            RuleSpec::TimeOfDay { .. } => true,
            // The peer's hook knows neither.
            RuleSpec::Tokens { .. } | RuleSpec::Share { .. } => false,
        })
        .filter_map(|rule| {
            let mut value = serde_json::to_value(rule).ok()?;
            if let Some(family) = rule.spec.model() {
                value["model"] = Value::from(peer_model(family));
            }
            Some(value)
        })
        .collect()
}

fn peer_weights(weights: &CreditWeights) -> Value {
    json!({
        "opus": weights.opus, "sonnet": weights.sonnet, "haiku": weights.haiku,
        "default": weights.other,
    })
}

/// Prompts today by peer model name.
fn usage_today(report: &UsageReport) -> Value {
    let mut usage = Map::new();
    for family in ModelFamily::ALL {
        usage.insert(
            peer_model(family).to_owned(),
            Value::from(report.today[family].prompts),
        );
    }
    Value::Object(usage)
}

fn user_json(state: &UserState) -> Value {
    json!({
        "id": state.row.id, "name": state.row.name, "slug": state.row.slug,
        "status": state.row.status,
    })
}

/// The part of sync and check answers that describes the user now.
fn policy_fields(state: &UserState, now: Timestamp) -> Map<String, Value> {
    let report = state.report(now);
    let (budget, balance) = report.credit_figures();
    let policy = &state.policy.policy;
    let mut fields = Map::new();
    fields.insert("status".into(), json!(policy.status));
    fields.insert("limits".into(), Value::Array(peer_rules(&policy.rules)));
    fields.insert(
        "credit_weights".into(),
        peer_weights(&policy.credit_weights),
    );
    fields.insert("usage".into(), usage_today(&report));
    fields.insert("credit_balance".into(), json!(balance));
    fields.insert("credit_budget".into(), json!(budget));
    fields
}

/// Every hook body may carry `auth_token` instead of the header.
#[derive(Debug, Default, Deserialize)]
struct TokenField {
    #[serde(default)]
    auth_token: Option<String>,
}

async fn hook_device(
    state: &AppState,
    headers: &HeaderMap,
    body_token: Option<&str>,
) -> Result<(Arc<DeviceLive>, Arc<UserLive>)> {
    let token = bearer(headers)
        .or(body_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| Error::unauthorized("auth_token required"))?;
    device_by_token(state, token, DeviceKind::Hook)
        .await
        .ok_or_else(|| Error::unauthorized("Invalid auth_token"))
}

#[derive(Debug, Default, Deserialize)]
struct RegisterBody {
    #[serde(default)]
    code: Option<String>,
}

async fn register_hook(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    OptionalJson(body): OptionalJson<RegisterBody>,
) -> Result<Out> {
    let code = body
        .code
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Error::bad_request("code is required"))?;
    let registered = register::register(
        &state,
        client,
        &code,
        DeviceKind::Hook,
        DeviceDetails::default(),
    )
    .await
    .map_err(peer_status)?;
    let user = registered.user.lock();
    Ok(axum::Json(json!({
        "auth_token": registered.token,
        "user": user_json(&user),
        "limits": peer_rules(&user.policy.policy.rules),
        "credit_weights": peer_weights(&user.policy.policy.credit_weights),
    })))
}

/// The peer answers 404 for an unknown, used or expired code alike; its
/// hook clients know no 410.
fn peer_status(error: Error) -> Error {
    if error.status == StatusCode::GONE {
        Error {
            status: StatusCode::NOT_FOUND,
            ..error
        }
    } else {
        error
    }
}

#[derive(Debug, Default, Deserialize)]
struct SyncBody {
    #[serde(flatten)]
    auth: TokenField,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    os_version: Option<String>,
    #[serde(default)]
    claude_version: Option<String>,
}

async fn sync(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<SyncBody>,
) -> Result<Out> {
    let (device, user) = hook_device(&state, &headers, body.auth.auth_token.as_deref()).await?;
    let details = DeviceDetails {
        hostname: body.hostname,
        os: body.platform,
        arch: body.arch,
        os_version: body.os_version,
        claude_version: body.claude_version,
        ..DeviceDetails::default()
    };
    super::agent::update_device_details(&state, &device, details).await?;
    let policy = user.lock().policy.policy.clone();
    super::agent::publish_status(&state, &device, &policy, body.model.as_deref());
    let mut fields = policy_fields(&user.lock(), state.now());
    fields.insert("message".into(), Value::Null);
    Ok(axum::Json(Value::Object(fields)))
}

#[derive(Debug, Default, Deserialize)]
struct CheckBody {
    #[serde(flatten)]
    auth: TokenField,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

const MAX_FIELD: usize = 200;

fn bounded(name: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(text) if text.len() > MAX_FIELD => Err(Error::bad_request(format!(
            "{name} is longer than {MAX_FIELD} bytes"
        ))),
        other => Ok(other),
    }
}

async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<CheckBody>,
) -> Result<Out> {
    let (device, user) = hook_device(&state, &headers, body.auth.auth_token.as_deref()).await?;
    let model = bounded("model", body.model)?.unwrap_or_else(|| "default".to_owned());
    let session_id = bounded("session_id", body.session_id)?;
    // A denial is stored: room for it first (or 503 when the queue is full).
    let _room = state.writer.admit(1).await?;
    let started = Instant::now();
    let input = gate::CheckInput {
        device: &device,
        key: ingest::hook_key(session_id.as_deref()),
        model: &model,
        session_id: session_id.as_deref(),
        hook: true,
    };
    let outcome = match state.store.shared_database() {
        Some(shared) => gate::check_shared(&state, shared, &user, input).await?,
        None => gate::check(&state, &user, input),
    };
    state
        .metrics
        .check_latency
        .observe(started.elapsed().as_secs_f64());
    let denial = outcome.decision.denial.as_ref();
    state
        .metrics
        .count_check("hook", outcome.allowed(), denial.map(|d| d.reason.as_str()));
    let mut fields = policy_fields(&user.lock(), state.now());
    fields.insert("allowed".into(), Value::Bool(outcome.allowed()));
    // The hook shows `reason` inside its own text: the first line of ours.
    let reason = denial.map(|d| {
        d.message
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("ccgate blocked this prompt. ")
            .to_owned()
    });
    fields.insert("reason".into(), json!(reason));
    fields.insert("message".into(), json!(denial.map(|d| &d.message)));
    fields.insert("reason_code".into(), json!(denial.map(|d| d.reason)));
    Ok(axum::Json(Value::Object(fields)))
}

#[derive(Debug, Default, Deserialize)]
struct CountBody {
    #[serde(flatten)]
    auth: TokenField,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    // `timestamp` and `response_length` are accepted and ignored: server time decides.
}

async fn count(
    State(state): State<AppState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<CountBody>,
) -> Result<Out> {
    let (device, user) = hook_device(&state, &headers, body.auth.auth_token.as_deref()).await?;
    let model = bounded("model", body.model)?.unwrap_or_else(|| "default".to_owned());
    let session_id = bounded("session_id", body.session_id)?;
    let result = ingest::hook_count(&state, &device, &user, &model, session_id.as_deref()).await?;
    let (_, balance) = user.lock().report(state.now()).credit_figures();
    Ok(axum::Json(json!({
        "recorded": true,
        "duplicate": result == ingest::HookCount::Duplicate,
        "new_balance": balance,
    })))
}

async fn status(State(state): State<AppState>, headers: HeaderMap) -> Result<Out> {
    let (_, user) = hook_device(&state, &headers, None).await?;
    let now = state.now();
    let guard = user.lock();
    let report = guard.report(now);
    let (budget, balance) = report.credit_figures();
    let mut per_model: Map<String, Value> = Map::new();
    for line in report
        .limits
        .iter()
        .filter(|l| l.metric == Metric::Prompts && PEER_WINDOWS.contains(&l.window))
    {
        let Some(family) = line.family else { continue };
        let entry = per_model
            .entry(peer_model(family).to_owned())
            .or_insert_with(|| json!({}));
        entry[line.window.as_str()] = json!({
            "used": line.used,
            "limit": line.limit,
            "remaining": line.remaining.map_or(-1, |r| i64::try_from(r).unwrap_or(i64::MAX)),
        });
    }
    let usage_source = guard.source();
    let mut usage = Map::new();
    for window in PEER_WINDOWS {
        let start = window.bounds(now, &guard.policy.tz).start;
        let mut counts = Map::new();
        let mut total_credits = 0;
        for family in ModelFamily::ALL {
            let totals = usage_source.totals_since(Some(family), start);
            counts.insert(peer_model(family).to_owned(), json!(totals.prompts));
            total_credits += totals.credits;
        }
        usage.insert(
            window.as_str().to_owned(),
            json!({ "counts": counts, "totalCredits": total_credits, "windowStart": start }),
        );
    }
    Ok(axum::Json(json!({
        "user": user_json(&guard),
        "credit_weights": peer_weights(&guard.policy.policy.credit_weights),
        "credit_balance": balance,
        "credit_budget": budget,
        "limits": peer_rules(&guard.policy.policy.rules),
        "per_model": per_model,
        "usage": usage,
        "time_zone": guard.policy.policy.time_zone,
        "killed": guard.policy.policy.status == UserStatus::Killed,
    })))
}

async fn health(State(state): State<AppState>) -> Out {
    axum::Json(json!({ "status": "ok", "timestamp": state.now() }))
}
