//! Redeeming an install code: a new device with a fresh 256-bit token, of
//! which only the hash is stored.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::json;

use crate::db::devices::CodeProblem;
use crate::error::{Error, Result};
use crate::hub::event::{DeviceRef, LiveEvent};
use crate::live::devices::DeviceLive;
use crate::live::users::UserLive;
use crate::model::{DeviceDetails, DeviceKind};
use crate::secrets;
use crate::service::audit;
use crate::state::AppState;
use crate::store::DeviceToRegister;

pub struct Registered {
    pub device: Arc<DeviceLive>,
    pub user: Arc<UserLive>,
    /// Shown once.
    pub token: String,
}

/// `register_failed` in the audit log: the client's address, which API and
/// why (never the code itself).
async fn record_failure(state: &AppState, client: IpAddr, kind: DeviceKind, problem: CodeProblem) {
    let reason = match problem {
        CodeProblem::Unknown => "unknown",
        CodeProblem::WrongKind => "wrong_kind",
        CodeProblem::Used => "used",
        CodeProblem::Expired => "expired",
    };
    let api = match kind {
        DeviceKind::Proxy => "agent",
        DeviceKind::Hook => "hook",
    };
    let entry = audit(
        state.now(),
        "register_failed",
        &format!("client:{client}"),
        None,
        None,
        Some(json!({ "client": client.to_string(), "api": api, "reason": reason })),
    );
    if let Err(error) = state.store.record_audit(entry).await {
        tracing::warn!(%error, "could not record a failed registration");
    }
}

pub async fn register(
    state: &AppState,
    client: IpAddr,
    code: &str,
    kind: DeviceKind,
    details: DeviceDetails,
) -> Result<Registered> {
    let attempt = state.register_limiter.begin(client).await.map_err(|wait| {
        Error::too_many_requests(
            format!("too many failed registrations from this address; try again in {wait} s"),
            wait,
        )
    })?;
    let code = code.trim();
    if code.is_empty() {
        attempt.succeeded();
        return Err(Error::bad_request("code is required"));
    }
    let token = secrets::new_token();
    let token_hash = secrets::hash_token(&token);
    let code_hash = secrets::hash_install_code(code);
    let now = state.now();
    let details = details.truncated();
    let device = DeviceToRegister {
        kind,
        token_hash: hex::encode(token_hash),
        details: details.clone(),
    };
    let redeemed = state.store.register_device(code_hash, device, now).await?;
    let row = match redeemed {
        Ok(row) => row,
        Err(problem) => {
            record_failure(state, client, kind, problem).await;
            // Dropping the attempt counts the failure.
            drop(attempt);
            return Err(match problem {
                CodeProblem::Unknown => Error::not_found(
                    "unknown install code: check it, or ask your ccgate admin for a new one",
                )
                .with_code("install_code_unknown"),
                CodeProblem::WrongKind => Error::not_found(match kind {
                    DeviceKind::Proxy => {
                        "this install code is for moving a claude-code-limiter hook machine \
                         (POST /api/v1/register), not for ccgate setup; ask your ccgate admin \
                         for a new install code"
                    }
                    DeviceKind::Hook => {
                        "this install code is for ccgate setup, not for a claude-code-limiter \
                         hook client; ask your ccgate admin for a hook code (the user page's \
                         \"Migrate a claude-code-limiter machine\")"
                    }
                })
                .with_code("install_code_wrong_kind"),
                CodeProblem::Used => Error::gone(
                    "install_code_used",
                    "this install code was already used; ask your ccgate admin for a new one",
                ),
                CodeProblem::Expired => Error::gone(
                    "install_code_expired",
                    "this install code has expired; ask your ccgate admin for a new one",
                ),
            });
        }
    };
    attempt.succeeded();
    let user = state
        .live
        .user(row.user_id)
        .ok_or_else(|| Error::not_found("the install code's user no longer exists"))?;
    let device = Arc::new(DeviceLive::new(
        row.id,
        row.user_id,
        kind,
        row.created_at,
        token_hash,
        details,
        Some(now),
    ));
    state.live.devices.insert(Arc::clone(&device));
    let user_name = user.lock().row.name.clone();
    state.hub.publish(|| LiveEvent::DeviceRegistered {
        device: DeviceRef {
            user_id: user.id,
            user_name: Some(user_name.clone()),
            device_id: device.id,
            hostname: device.hostname(),
            timestamp: now,
        },
        kind,
    });
    Ok(Registered {
        device,
        user,
        token,
    })
}
