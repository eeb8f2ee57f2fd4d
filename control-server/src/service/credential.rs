//! Handing a device its person's subscription credential (team-credential
//! mode): only over a private transport, only to an active user's device,
//! only the subscription the user's policy names. The credential is opened
//! from the database for this one answer and not kept.

use std::net::IpAddr;

use axum::http::StatusCode;
use ccgate_quota::wire::CredentialResponse;
use ccgate_quota::{CredentialMode, UserStatus};
use serde_json::json;

use crate::error::{Error, Result};
use crate::live::devices::DeviceLive;
use crate::live::users::UserLive;
use crate::service::audit;
use crate::state::AppState;

/// The stable error codes of `POST /credential` (besides 401s).
pub mod codes {
    /// 403: plain http to a device not on this machine.
    pub const INSECURE_TRANSPORT: &str = "insecure_transport";
    /// 404: the user signs in with their own login.
    pub const PERSONAL_LOGIN: &str = "personal_login";
}

pub async fn send(
    state: &AppState,
    device: &DeviceLive,
    user: &UserLive,
    peer: IpAddr,
) -> Result<CredentialResponse> {
    if !state.config.transport_is_private(peer) {
        return Err(Error::forbidden(
            "the team credential is sent only over https (set PUBLIC_URL to the server's \
             https address) or to a device on the server's own machine",
        )
        .with_code(codes::INSECURE_TRANSPORT));
    }
    let (status, mode, name) = {
        let guard = user.lock();
        let policy = &guard.policy.policy;
        (policy.status, policy.credential, guard.row.name.clone())
    };
    if status != UserStatus::Active {
        return Err(Error::forbidden(format!(
            "{name} is {}: the team credential is not sent",
            status.as_str()
        ))
        .with_code(status.as_str()));
    }
    let personal = || {
        Error::new(
            StatusCode::NOT_FOUND,
            codes::PERSONAL_LOGIN,
            format!("{name} signs in with their own login: there is no team credential to send"),
        )
    };
    let CredentialMode::TeamCredential {
        subscription_id, ..
    } = mode
    else {
        return Err(personal());
    };
    let stored = state
        .store
        .sealed_credential(subscription_id)
        .await?
        // Deleted since the policy was compiled.
        .ok_or_else(personal)?;
    let credential = state.vault.open(&stored.sealed).map_err(|error| {
        tracing::error!(subscription_id, %error, "a stored credential does not open");
        Error::internal()
    })?;
    let subscription = state
        .live
        .subscriptions()
        .get(subscription_id)
        .map(|entry| entry.name.clone());
    let detail = json!({
        "subscription_id": subscription_id, "subscription": subscription,
        "credential_version": stored.version,
    });
    let entry = audit(
        state.now(),
        "credential_sent",
        &format!("device:{}", device.id),
        Some(user.id),
        Some(device.id),
        Some(detail),
    );
    state.store.record_audit(entry).await?;
    Ok(CredentialResponse {
        subscription_id,
        kind: stored.kind,
        version: stored.version,
        secret: credential.into_secret(),
    })
}
