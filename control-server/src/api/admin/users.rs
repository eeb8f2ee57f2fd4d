//! Users: list, one, create (with an install code and the setup command),
//! change (limits replaced in one transaction), delete, new install code,
//! token rotation, and a preview of proposed limits.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ccgate_quota::{
    AgentTurns, CompiledPolicy, GateKind, GateRequest, ModelFamily, UsageReport, UserStatus,
    evaluate,
};
use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::{Admin, ts};
use crate::api::extract::{Json, OptionalJson};
use crate::api::public_url;
use crate::error::{Error, Result};
use crate::live::users::UserLive;
use crate::model::{CodeKind, PersonChanges};
use crate::service::sso;
use crate::service::users as service;
use crate::state::AppState;

type Out = axum::Json<Value>;

pub(crate) fn user_view(state: &AppState, user: &UserLive, last_active: Option<i64>) -> Value {
    let now = state.now();
    let now_ms = now.as_millisecond();
    let online_ms = i64::try_from(state.config.online_window.as_millis()).unwrap_or(i64::MAX);
    let (row, report, time_zone, pending, agent_turns, window_shares) = {
        let guard = user.lock();
        (
            guard.row.clone(),
            guard.report(now),
            guard.policy.policy.time_zone.clone(),
            guard.reservations.len(),
            guard.policy.policy.agent_turns,
            guard.shares.clone(),
        )
    };
    let subscription = row.subscription_id.and_then(|id| {
        let subscriptions = state.live.subscriptions();
        let entry = subscriptions.get(id)?;
        Some(json!({ "id": id, "name": entry.name, "kind": entry.kind }))
    });
    let (budget, balance) = report.credit_figures();
    let mut usage = Map::new();
    for family in ModelFamily::ALL {
        usage.insert(
            family.as_str().to_owned(),
            json!(report.today[family].prompts),
        );
    }
    let devices: Vec<Value> = state
        .live
        .devices
        .of_user(user.id)
        .iter()
        .map(|device| {
            let details = device.details();
            json!({
                "id": device.id, "kind": device.kind, "hostname": details.hostname,
                "os": details.os, "arch": details.arch, "os_user": details.os_user,
                "os_version": details.os_version, "claude_version": details.claude_version,
                "agent_version": details.agent_version, "agent_build": details.agent_build,
                "update": update_state(state.agent_release(), &details),
                "created_at": device.created_at,
                "last_seen_at": device.last_seen_ms().and_then(ts),
                "online": device.online(now_ms, online_ms),
                "token_rotation_pending": device.pending_token().is_some(),
            })
        })
        .collect();
    json!({
        "id": row.id,
        "name": row.name,
        "slug": row.slug,
        "status": row.status,
        "time_zone": row.time_zone,
        "effective_time_zone": time_zone,
        "created_at": row.created_at,
        "policy_version": report_version(state, &row),
        "limits": row.rules,
        "subscription_id": row.subscription_id,
        "subscription": subscription,
        "agent_turns": row.agent_turns,
        "effective_agent_turns": agent_turns,
        "usage": usage,
        "credit_balance": balance,
        "credit_budget": budget,
        "pending_prompts": pending,
        "devices": devices,
        "report": report,
        // Their estimated share of their subscription's windows.
        "window_shares": window_shares,
        "last_active_at": last_active.and_then(ts),
    })
}

fn report_version(state: &AppState, row: &crate::model::Person) -> u64 {
    row.policy_version.max(state.live.settings().version)
}

pub(crate) async fn last_active(state: &AppState, ids: Vec<i64>) -> Result<Vec<Option<i64>>> {
    Ok(state.store.last_active(ids).await?)
}

pub async fn list(State(state): State<AppState>) -> Result<Out> {
    let users = state.live.all_users();
    let active = last_active(&state, users.iter().map(|u| u.id).collect()).await?;
    let views: Vec<Value> = users
        .iter()
        .zip(active)
        .map(|(user, last)| user_view(&state, user, last))
        .collect();
    Ok(axum::Json(json!({ "users": views })))
}

fn find(state: &AppState, id: i64) -> Result<std::sync::Arc<UserLive>> {
    state
        .live
        .user(id)
        .ok_or_else(|| Error::not_found(format!("no user with id {id}")))
}

pub async fn get_one(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Out> {
    let user = find(&state, id)?;
    let active = last_active(&state, vec![id]).await?;
    let view = user_view(&state, &user, active.into_iter().next().flatten());
    Ok(axum::Json(
        json!({ "user": with_identity(&state, view).await? }),
    ))
}

/// Adds the person's e-mail and linked single sign-on identity to a view.
pub(crate) async fn with_identity(state: &AppState, mut view: Value) -> Result<Value> {
    let Some(id) = view["id"].as_i64() else {
        return Ok(view);
    };
    let (email, identity) = state.store.person_contact(id).await?;
    view["email"] = json!(email);
    view["identity"] = json!(identity.map(|i| json!({
        "id": i.id, "subject": i.subject, "email": i.email,
    })));
    Ok(view)
}

#[derive(Debug, Deserialize)]
pub struct CreateBody {
    name: String,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    limits: Option<Vec<Value>>,
    #[serde(default)]
    time_zone: Option<String>,
    /// A subscription whose credential the person's devices use; absent or
    /// `null`: their own login.
    #[serde(default)]
    subscription_id: Option<i64>,
    /// `null` or absent: the team's setting.
    #[serde(default)]
    agent_turns: Option<AgentTurns>,
    /// What the person's single sign-on identity is matched by.
    #[serde(default)]
    email: Option<String>,
}

/// Whether a device runs the agent release this server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum DeviceUpdate {
    /// Its daemon is the release's build for its platform.
    Current,
    /// The release has a different build for its platform.
    Behind,
    /// The device did not say what it runs, or the release has no build
    /// for its platform.
    Unknown,
}

fn update_state(
    release: Option<&ccgate_quota::release::AgentRelease>,
    details: &crate::model::DeviceDetails,
) -> Option<DeviceUpdate> {
    let release = release?;
    let platform = format!("{}-{}", details.os.as_deref()?, details.arch.as_deref()?);
    let served = release.sha256_of(ccgate_quota::release::DAEMON, &platform);
    Some(match (served, details.agent_build.as_deref()) {
        (Some(served), Some(running)) if served == running => DeviceUpdate::Current,
        (Some(_), Some(_)) => DeviceUpdate::Behind,
        _ => DeviceUpdate::Unknown,
    })
}

/// The line a person pastes on a developer machine: the server's install
/// script, which fetches and checks the binaries, then runs setup.
fn setup_command(url: &str, code: &str) -> String {
    let insecure = if crate::config::plain_http_off_machine(url) {
        " --insecure"
    } else {
        ""
    };
    format!("curl -fsSL {url}/install.sh | sudo sh -s -- --code {code}{insecure}")
}

/// Why the setup command is unsafe, when the server is reached over plain
/// http from another machine (the dashboard shows it next to the command).
fn setup_warning(url: &str) -> Option<String> {
    crate::config::plain_http_off_machine(url).then(|| {
        format!(
            "{url} is plain http: the install code, the device token and every check and event \
             would cross the network unencrypted, so anyone on the way could read them, take over \
             the device or change what it is told. ccgate setup and the daemon refuse such a \
             server unless given --insecure. Put the server behind https and set PUBLIC_URL."
        )
    })
}

/// The fields of an answer that hands out a setup code.
fn setup_fields(url: &str, code: &str, expires_at: Timestamp) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("install_code".into(), json!(code));
    fields.insert("install_code_expires_at".into(), json!(expires_at));
    fields.insert("kind".into(), json!(CodeKind::Setup));
    fields.insert("setup_command".into(), json!(setup_command(url, code)));
    fields.insert("setup_warning".into(), json!(setup_warning(url)));
    fields
}

pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Out)> {
    let rules = service::parse_rules(body.limits.as_deref().unwrap_or_default())?;
    let email = body
        .email
        .as_deref()
        .filter(|e| !e.trim().is_empty())
        .map(sso::validate_email)
        .transpose()?;
    if let Some(email) = email.clone()
        && state.store.person_with_email(email).await?.is_some()
    {
        return Err(Error::conflict("another person has this e-mail"));
    }
    let created = service::create(
        &state,
        &admin.actor,
        service::NewUserInput {
            name: body.name,
            slug: body.slug,
            rules,
            time_zone: body.time_zone.filter(|z| !z.trim().is_empty()),
            subscription_id: service::validate_subscription(&state, body.subscription_id)?,
            agent_turns: body.agent_turns,
        },
    )
    .await?;
    if email.is_some() {
        sso::set_person_email(&state, &admin.actor, created.user.id, email).await?;
    }
    let url = public_url(&state, &headers);
    let user = find(&state, created.user.id)?;
    let mut answer = setup_fields(&url, &created.install_code, created.code_expires_at);
    answer.insert(
        "user".into(),
        with_identity(&state, user_view(&state, &user, None)).await?,
    );
    answer.insert("limits".into(), json!(created.user.rules));
    Ok((StatusCode::CREATED, axum::Json(Value::Object(answer))))
}

/// Absent → `None`; `null` or `""` → `Some(None)`; a value → `Some(Some(v))`.
fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(
        Option::<String>::deserialize(d)?.filter(|z| !z.trim().is_empty()),
    ))
}

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`.
fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?))
}

#[derive(Debug, Deserialize)]
pub struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    status: Option<UserStatus>,
    #[serde(default)]
    limits: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "double_option")]
    time_zone: Option<Option<String>>,
    /// `null` returns the person to their own login.
    #[serde(default, deserialize_with = "nullable")]
    subscription_id: Option<Option<i64>>,
    /// `null` returns the person to the team's setting.
    #[serde(default, deserialize_with = "nullable")]
    agent_turns: Option<Option<AgentTurns>>,
    /// `null` or `""` clears it.
    #[serde(default, deserialize_with = "double_option")]
    email: Option<Option<String>>,
}

pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    Json(body): Json<UpdateBody>,
) -> Result<Out> {
    find(&state, id)?;
    let changes = PersonChanges {
        name: body
            .name
            .as_deref()
            .map(service::validate_name)
            .transpose()?,
        slug: body
            .slug
            .as_deref()
            .map(service::validate_slug)
            .transpose()?,
        status: body.status,
        time_zone: body
            .time_zone
            .map(|zone| zone.as_deref().map(service::validate_time_zone).transpose())
            .transpose()?,
        rules: body
            .limits
            .as_deref()
            .map(service::parse_rules)
            .transpose()?,
        subscription_id: body
            .subscription_id
            .map(|id| service::validate_subscription(&state, id))
            .transpose()?,
        agent_turns: body.agent_turns,
    };
    if !changes.is_empty() || body.email.is_none() {
        service::update(&state, &admin.actor, id, changes).await?;
    }
    if let Some(email) = body.email {
        sso::set_person_email(&state, &admin.actor, id, email).await?;
    }
    let user = find(&state, id)?;
    let active = last_active(&state, vec![id]).await?;
    let view = user_view(&state, &user, active.into_iter().next().flatten());
    let view = with_identity(&state, view).await?;
    Ok(axum::Json(
        json!({ "user": view.clone(), "limits": view["limits"] }),
    ))
}

pub async fn remove(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Out> {
    service::delete(&state, &admin.actor, id).await?;
    Ok(axum::Json(json!({ "deleted": true, "id": id })))
}

pub async fn install_code(
    State(state): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Out)> {
    let (code, expires_at) =
        service::new_install_code(&state, &admin.actor, id, CodeKind::Setup).await?;
    let url = public_url(&state, &headers);
    Ok((
        StatusCode::CREATED,
        axum::Json(Value::Object(setup_fields(&url, &code, expires_at))),
    ))
}

/// `POST /users/{id}/hook-code`: a code for moving a machine that still runs
/// claude-code-limiter's hook to this server (`POST /api/v1/register`). The
/// hook API takes no other code: a hook device's counts come from its
/// client, so only an admin's explicit choice makes one.
pub async fn hook_code(
    State(state): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Out)> {
    let (code, expires_at) =
        service::new_install_code(&state, &admin.actor, id, CodeKind::Hook).await?;
    let url = public_url(&state, &headers);
    let body = serde_json::to_string(&json!({ "code": code })).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "install_code": code,
            "install_code_expires_at": expires_at,
            "kind": CodeKind::Hook,
            "server_url": url,
            "register_command": format!(
                "curl -sS -X POST {url}/api/v1/register -H 'Content-Type: application/json' -d '{body}'"
            ),
            "setup_warning": setup_warning(&url),
        })),
    ))
}

/// `DELETE /devices/{id}`: revokes one device (see [`service::revoke_device`]).
pub async fn revoke_device(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Out> {
    let user_id = service::revoke_device(&state, &admin.actor, id).await?;
    Ok(axum::Json(
        json!({ "revoked": true, "id": id, "user_id": user_id }),
    ))
}

pub async fn rotate_tokens(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Out> {
    let rotated = service::rotate_tokens(&state, &admin.actor, id).await?;
    Ok(axum::Json(json!({ "rotated": rotated })))
}

#[derive(Debug, Default, Deserialize)]
pub struct PreviewBody {
    #[serde(default)]
    limits: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "double_option")]
    time_zone: Option<Option<String>>,
}

/// What the user would see with other limits and their current usage.
pub async fn preview(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    OptionalJson(body): OptionalJson<PreviewBody>,
) -> Result<Out> {
    let user = find(&state, id)?;
    let now: Timestamp = state.now();
    let guard = user.lock();
    let mut policy = guard.policy.policy.clone();
    if let Some(limits) = &body.limits {
        policy.rules = service::parse_rules(limits)?;
    }
    match &body.time_zone {
        Some(Some(zone)) => policy.time_zone = service::validate_time_zone(zone)?,
        Some(None) => policy.time_zone = state.live.settings().time_zone.clone(),
        None => {}
    }
    let compiled =
        CompiledPolicy::new(policy).map_err(|error| Error::bad_request(error.to_string()))?;
    let usage = guard.source();
    let report = UsageReport::build(&compiled, &usage, now);
    let mut decisions = Map::new();
    for family in ModelFamily::ALL {
        let decision = evaluate(
            &compiled,
            &usage,
            GateRequest {
                family,
                kind: GateKind::Prompt,
                now,
            },
        );
        decisions.insert(
            family.as_str().to_owned(),
            json!({
                "allowed": decision.allowed(),
                "cost": decision.cost,
                "reason": decision.denial.as_ref().map(|d| d.reason),
                "message": decision.denial.as_ref().map(|d| &d.message),
                "retry_at": decision.denial.as_ref().and_then(|d| d.retry_at),
            }),
        );
    }
    let (budget, balance) = report.credit_figures();
    Ok(axum::Json(json!({
        "report": report,
        "decisions": decisions,
        "credit_budget": budget,
        "credit_balance": balance,
    })))
}
