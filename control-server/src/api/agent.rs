//! The agent API for ccgate-proxy (`/api/agent/v1/*`); the types are
//! `ccgate_quota::wire`'s.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use ccgate_quota::limits::{MAX_BATCH_BYTES, MAX_KEY_BYTES};
use ccgate_quota::wire::{
    CheckRequest, CheckResponse, EventsResponse, RegisterRequest, RegisterResponse, SyncRequest,
    SyncResponse,
};
use serde::Deserialize;

use super::extract::{ClientIp, Json, JsonBytes, OptionalJson, ProxyDevice};
use crate::error::{Error, Result};
use crate::hub::event::{Activity, LiveEvent};
use crate::model::{DeviceDetails, DeviceKind};
use crate::service::{credential, gate, ingest, register, sync};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/register", post(register_device))
        .route("/sync", post(sync_device))
        .route("/check", post(check))
        // A batch is never larger than this, whatever MAX_BODY_BYTES says,
        // so a device's full batch always fits (and nothing larger is read).
        .route(
            "/events",
            post(events).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        )
        .route("/credential", post(send_credential))
        .route("/stream", get(super::stream::stream))
}

type JsonOut<T> = axum::Json<T>;

async fn register_device(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(request): Json<RegisterRequest>,
) -> Result<JsonOut<RegisterResponse>> {
    let registered = register::register(
        &state,
        client,
        &request.code,
        DeviceKind::Proxy,
        DeviceDetails::from(&request.device),
    )
    .await?;
    let sync = sync::sync_response(
        &registered.device,
        &registered.user,
        state.agent_release(),
        state.now(),
    );
    Ok(axum::Json(RegisterResponse {
        device_id: registered.device.id,
        device_token: registered.token,
        sync,
    }))
}

/// Stores what the device says about itself (memory now, database too).
pub async fn update_device_details(
    state: &AppState,
    device: &crate::live::devices::DeviceLive,
    details: DeviceDetails,
) -> Result<()> {
    let details = details.truncated();
    if device.details() == details {
        return Ok(());
    }
    device.update_details(&details);
    let id = device.id;
    state.store.set_device_details(id, details).await?;
    Ok(())
}

async fn sync_device(
    State(state): State<AppState>,
    auth: ProxyDevice,
    OptionalJson(request): OptionalJson<SyncRequest>,
) -> Result<JsonOut<SyncResponse>> {
    if let Some(info) = &request.device {
        update_device_details(&state, &auth.device, DeviceDetails::from(info)).await?;
    }
    let response =
        sync::sync_response(&auth.device, &auth.user, state.agent_release(), state.now());
    publish_status(&state, &auth.device, &response.policy, None);
    Ok(axum::Json(response))
}

/// The peer's `user_status` live event: a device checked in.
pub fn publish_status(
    state: &AppState,
    device: &crate::live::devices::DeviceLive,
    policy: &ccgate_quota::Policy,
    model: Option<&str>,
) {
    state.hub.publish(|| LiveEvent::UserStatus {
        activity: Activity {
            user_id: policy.user.id,
            user_name: Some(policy.user.name.clone()),
            device_id: Some(device.id),
            hostname: device.hostname(),
            model: model.map(str::to_owned),
            family: None,
            session_id: None,
            timestamp: Some(state.now()),
        },
        status: policy.status,
    });
}

const MAX_KEY: usize = MAX_KEY_BYTES;

async fn check(
    State(state): State<AppState>,
    auth: ProxyDevice,
    Json(request): Json<CheckRequest>,
) -> Result<JsonOut<CheckResponse>> {
    if request.turn_key.is_empty() || request.turn_key.len() > MAX_KEY {
        return Err(Error::bad_request(format!(
            "turn_key must be 1 to {MAX_KEY} bytes"
        )));
    }
    if request.model.len() > MAX_KEY
        || request
            .session_id
            .as_ref()
            .is_some_and(|s| s.len() > MAX_KEY)
    {
        return Err(Error::bad_request(format!(
            "model and session_id are at most {MAX_KEY} bytes"
        )));
    }
    // A denial is stored: room for it first (or 503 when the queue is full).
    let _room = state.writer.admit(1).await?;
    let started = Instant::now();
    let input = gate::CheckInput {
        device: &auth.device,
        key: request.turn_key,
        model: &request.model,
        session_id: request.session_id.as_deref(),
        hook: false,
    };
    let outcome = match state.store.shared_database() {
        Some(shared) => gate::check_shared(&state, shared, &auth.user, input).await?,
        None => gate::check(&state, &auth.user, input),
    };
    state
        .metrics
        .check_latency
        .observe(started.elapsed().as_secs_f64());
    let denial = outcome.decision.denial.as_ref();
    state.metrics.count_check(
        "agent",
        outcome.allowed(),
        denial.map(|d| d.reason.as_str()),
    );
    Ok(axum::Json(CheckResponse {
        allowed: outcome.allowed(),
        reason: denial.map(|d| d.reason),
        message: denial.map(|d| d.message.clone()),
        cost: outcome.decision.cost,
        reservation_expires_at: outcome.reservation_expires_at,
        status: outcome.status,
        policy_version: outcome.policy_version,
        server_time: state.now(),
    }))
}

/// `POST /events`: the body is read event by event (see [`ingest`]).
async fn events(
    State(state): State<AppState>,
    auth: ProxyDevice,
    body: std::result::Result<JsonBytes, Error>,
) -> Result<JsonOut<EventsResponse>> {
    let JsonBytes(bytes) = body.map_err(|error| {
        if error.status == StatusCode::PAYLOAD_TOO_LARGE {
            ingest::batch_bytes_error(None)
        } else {
            error
        }
    })?;
    let batch = ingest::read_batch(&bytes)?;
    ingest::ingest(&state, &auth.device, &auth.user, batch)
        .await
        .map(axum::Json)
}

/// `POST /credential` takes an empty object (or no body).
#[derive(Debug, Default, Deserialize)]
struct CredentialRequest {}

/// The subscription credential of a device in team-credential mode (see
/// [`credential::send`] for who gets it); never cached on the way.
async fn send_credential(
    State(state): State<AppState>,
    ClientIp(peer): ClientIp,
    auth: ProxyDevice,
    OptionalJson(CredentialRequest {}): OptionalJson<CredentialRequest>,
) -> Result<impl IntoResponse> {
    let answer = credential::send(&state, &auth.device, &auth.user, peer).await?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(answer),
    ))
}
