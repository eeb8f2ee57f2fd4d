//! What single sign-on does to ccgate's state: a login sent to the provider
//! is remembered once, the callback turns it into an identity (linked to a
//! person, with the role its groups or an admin gave) and a session, and
//! sessions are checked with the provider again until it refuses them.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::admin_auth::{LoggedIn, SessionKeys};
use super::audit;
use crate::db::auth::NewSession;
use crate::db::identities::PendingLogin;
use crate::error::{Error, Result};
use crate::model::{Identity, Role};
use crate::secrets;
use crate::sso::{Provider, SsoError};
use crate::state::AppState;

/// The cookie that binds a login under way to the browser that started it.
pub const LOGIN_COOKIE: &str = "ccgate_oidc";
/// How long a browser has to come back from the provider.
pub const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// Sessions checked with the provider per pass.
const RECHECKS_PER_PASS: u32 = 100;

fn provider(state: &AppState) -> Result<&Provider> {
    state.sso.as_ref().ok_or_else(|| {
        Error::not_found("single sign-on is not configured on this server").with_code("sso_off")
    })
}

fn provider_down(error: &SsoError) -> Error {
    tracing::warn!(%error, "single sign-on could not reach the identity provider");
    Error::new(
        StatusCode::BAD_GATEWAY,
        "sso_unavailable",
        "the identity provider could not be reached; try again in a moment",
    )
}

/// Where a browser may be sent after signing in: a dashboard path of this
/// server, never another site.
fn safe_return(path: Option<String>) -> Option<String> {
    path.filter(|p| {
        p.starts_with("/dashboard")
            && !p.contains("//")
            && !p.contains('\\')
            && p.len() <= 512
            && p.chars().all(|c| c.is_ascii_graphic())
    })
}

/// A login under way: where to send the browser and the cookie to give it.
#[derive(Debug)]
pub struct Started {
    pub redirect: String,
    pub browser_secret: String,
}

pub async fn start(state: &AppState, return_to: Option<String>) -> Result<Started> {
    let provider = provider(state)?;
    let now = state.now();
    let authorization = provider
        .authorize(now)
        .await
        .map_err(|e| provider_down(&e))?;
    let browser_secret = secrets::new_token();
    let ttl = SignedDuration::try_from(LOGIN_TTL).unwrap_or(SignedDuration::from_mins(10));
    let pending = PendingLogin {
        state_hash: secrets::hash_token_hex(&authorization.state),
        browser_hash: secrets::hash_token_hex(&browser_secret),
        nonce: authorization.nonce,
        pkce_verifier: authorization.pkce_verifier,
        return_to: safe_return(return_to),
        expires_at: now.checked_add(ttl).unwrap_or(now).as_millisecond(),
    };
    state.store.remember_pending_login(pending, now).await?;
    Ok(Started {
        redirect: authorization.url,
        browser_secret,
    })
}

/// A finished sign-in.
pub struct SignedIn {
    pub session: LoggedIn,
    pub return_to: Option<String>,
}

/// Records a refused sign-in in the audit log, and gives back the error.
async fn refused(state: &AppState, client: IpAddr, reason: &str, error: Error) -> Error {
    let entry = audit(
        state.now(),
        "login_refused",
        &format!("client:{client}"),
        None,
        None,
        Some(json!({ "client": client.to_string(), "via": "sso", "reason": reason })),
    );
    if let Err(write) = state.store.record_audit(entry).await {
        tracing::warn!(error = %write, "could not record a refused sign-in");
    }
    error
}

/// The callback: the state must be one this server sent, not used before,
/// from the browser that started it; the provider's answer must pass every
/// check; the identity must have a role.
pub async fn finish(
    state: &AppState,
    client: IpAddr,
    browser_secret: Option<&str>,
    login_state: &str,
    code: &str,
) -> Result<SignedIn> {
    let provider = provider(state)?;
    let now = state.now();
    let state_hash = secrets::hash_token_hex(login_state);
    let pending = state.store.take_pending_login(state_hash, now).await?;
    let Some(pending) = pending else {
        let error = Error::bad_request(
            "this sign-in was already used or has expired; start again from the sign-in page",
        )
        .with_code("sso_state");
        return Err(refused(state, client, "unknown, used or expired state", error).await);
    };
    let same_browser = browser_secret.is_some_and(|secret| {
        secrets::constant_time_eq(
            secrets::hash_token_hex(secret).as_bytes(),
            pending.browser_hash.as_bytes(),
        )
    });
    if !same_browser {
        let error = Error::bad_request(
            "this sign-in was started in another browser; start again from the sign-in page",
        )
        .with_code("sso_browser");
        return Err(refused(state, client, "state from another browser", error).await);
    }
    let verified = match provider
        .finish(now, code.to_owned(), pending.pkce_verifier, &pending.nonce)
        .await
    {
        Ok(verified) => verified,
        Err(error @ SsoError::Unavailable(_)) => return Err(provider_down(&error)),
        Err(error) => {
            let reason = error.to_string();
            let answer = Error::unauthorized(
                "the identity provider's answer did not pass ccgate's checks; sign-in refused",
            )
            .with_code("sso_invalid");
            return Err(refused(state, client, &reason, answer).await);
        }
    };
    let group_role = provider.config().role_for_groups(&verified.claims.groups);
    let link_by_email = state.live.settings().sso_link_by_email;
    let keys = SessionKeys::new(state);
    let refresh_token = verified
        .refresh_token
        .map(|token| state.vault.seal_refresh_token(&token));
    let recheck_at = refresh_token.as_ref().map(|_| next_recheck(state, now));
    let (created_at, expires_at) = (keys.created_at, keys.expires_at);
    let identity = state
        .store
        .record_sso_sign_in(
            verified.claims,
            group_role,
            link_by_email,
            NewSession {
                token_hash: &keys.token_hash,
                account_id: None,
                // Both are the identity's, set by the store.
                identity_id: None,
                role: Role::Member,
                csrf_token: &keys.csrf_token,
                created_at: created_at.as_millisecond(),
                expires_at: expires_at.as_millisecond(),
                refresh_token,
                recheck_at,
            },
            client.to_string(),
            now,
        )
        .await?;
    let Some(role) = identity.role() else {
        let error = Error::forbidden(format!(
            "you signed in as {}, but your groups give you no role in ccgate; ask an admin to give you one",
            identity.email.as_deref().unwrap_or(&identity.subject)
        ))
        .with_code("no_role");
        return Err(refused(state, client, "no role", error).await);
    };
    Ok(SignedIn {
        session: LoggedIn {
            token: keys.token,
            csrf_token: keys.csrf_token,
            role,
            username: identity
                .email
                .clone()
                .unwrap_or_else(|| identity.subject.clone()),
            expires_at,
        },
        return_to: pending.return_to,
    })
}

fn next_recheck(state: &AppState, now: Timestamp) -> i64 {
    let every = state
        .sso
        .as_ref()
        .map_or(Duration::from_secs(600), |p| p.config().recheck);
    now.as_millisecond() + i64::try_from(every.as_millis()).unwrap_or(600_000)
}

/// Checks sessions with the provider as they fall due, until shutdown.
pub async fn run_rechecks(state: AppState) {
    let Some(provider) = state.sso.as_ref() else {
        return;
    };
    let every =
        (provider.config().recheck / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::state::stopped(&mut shutdown) => break,
        }
        if let Err(error) = recheck_due(&state, provider).await {
            tracing::warn!(?error, "could not re-check single sign-on sessions");
        }
    }
}

/// One pass: each due session is refreshed with the provider. A refusal
/// (the person was removed or disabled, the grant revoked) or an answer
/// that fails its checks ends the session; new groups change its role; a
/// provider that does not answer is asked again within a minute, and the
/// session lives on meanwhile (until its own expiry).
pub async fn recheck_due(state: &AppState, provider: &Provider) -> Result<()> {
    let now = state.now();
    let due = state.store.due_sso_rechecks(now, RECHECKS_PER_PASS).await?;
    for session in due {
        let Some(identity) = state.store.identity(session.identity_id).await? else {
            continue;
        };
        let outcome = match state.vault.open_refresh_token(&session.refresh_token) {
            Ok(token) => provider.refresh(now, &token, &identity.subject).await,
            Err(_) => Err(SsoError::Invalid(
                "the stored refresh token could not be opened".to_owned(),
            )),
        };
        match outcome {
            Ok(refreshed) => {
                let groups = refreshed.claims.map(|claims| {
                    let role = provider.config().role_for_groups(&claims.groups);
                    (claims.groups, role)
                });
                let sealed = state.vault.seal_refresh_token(&refreshed.refresh_token);
                let next = next_recheck(state, now);
                state
                    .store
                    .record_sso_recheck(session.session_id, identity, groups, sealed, next, now)
                    .await?;
            }
            Err(SsoError::Unavailable(reason)) => {
                tracing::warn!(identity = identity.id, %reason, "the identity provider did not answer a session re-check");
                let retry = now.as_millisecond() + 60_000;
                state
                    .store
                    .postpone_sso_recheck(session.session_id, session.refresh_token, retry)
                    .await?;
            }
            Err(error) => end_session(state, &identity, session.session_id, now, &error).await?,
        }
    }
    Ok(())
}

async fn end_session(
    state: &AppState,
    identity: &Identity,
    session_id: i64,
    now: Timestamp,
    error: &SsoError,
) -> Result<()> {
    let entry = audit(
        now,
        "session_ended_by_provider",
        &identity.actor(),
        identity.person.as_ref().map(|(id, _)| *id),
        None,
        Some(json!({ "identity_id": identity.id, "reason": error.to_string() })),
    );
    state.store.end_sso_session(session_id, entry).await?;
    Ok(())
}

/// An admin's change to an identity: its hand-set role (`Some(None)`
/// clears it) and its person (`Some(None)` unlinks). Sessions follow the
/// new role at once.
pub async fn update_identity(
    state: &AppState,
    actor: &str,
    id: i64,
    role_override: Option<Option<Role>>,
    person: Option<Option<i64>>,
) -> Result<Identity> {
    let now = state.now();
    let actor = actor.to_owned();
    if let Some(Some(user_id)) = person
        && state.live.user(user_id).is_none()
    {
        return Err(Error::not_found(format!("no person with id {user_id}")));
    }
    Ok(state
        .store
        .update_identity(id, role_override, person, actor, now)
        .await?)
}

/// A person's e-mail as an admin typed it: trimmed, one `@`, no spaces.
pub fn validate_email(email: &str) -> Result<String> {
    let email = email.trim();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !valid {
        return Err(Error::bad_request(format!(
            "email must look like name@example.com (got {email:?})"
        )));
    }
    Ok(email.to_owned())
}

/// Sets or clears the e-mail a person's identity is matched by.
pub async fn set_person_email(
    state: &AppState,
    actor: &str,
    user_id: i64,
    email: Option<String>,
) -> Result<()> {
    let email = email.as_deref().map(validate_email).transpose()?;
    let now = state.now();
    let actor = actor.to_owned();
    state
        .store
        .set_person_email(user_id, email, actor, now)
        .await?;
    Ok(())
}

pub async fn delete_identity(state: &AppState, actor: &str, id: i64) -> Result<()> {
    let now = state.now();
    let actor = actor.to_owned();
    state.store.delete_identity(id, actor, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn only_dashboard_paths_are_returned_to() {
        let ok = |p: &str| safe_return(Some(p.to_owned()));
        assert_eq!(ok("/dashboard/me").as_deref(), Some("/dashboard/me"));
        assert_eq!(
            ok("/dashboard/users/3?x=1").as_deref(),
            Some("/dashboard/users/3?x=1")
        );
        assert!(ok("https://evil.example/dashboard").is_none());
        assert!(ok("//evil.example/dashboard").is_none());
        assert!(ok("/dashboard//evil.example").is_none());
        assert!(ok("/dashboard/\\evil").is_none());
        assert!(ok("/api/admin/users").is_none());
        assert!(safe_return(None).is_none());
    }
}
