//! Admin authentication: the built-in admin (password from ADMIN_PASSWORD),
//! named accounts, login sessions and API tokens.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::db::auth::{NewSession, Session};
use crate::db::settings::PasswordLogin;
use crate::error::{Error, Result};
use crate::model::Role;
use crate::secrets;
use crate::service::audit;
use crate::state::AppState;

pub const BUILTIN_ADMIN: &str = "admin";
pub const SESSION_PREFIX: &str = "ccs_";
pub const API_TOKEN_PREFIX: &str = "cca_";

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    /// The session cookie: mutations need the CSRF header.
    Cookie,
    /// `Authorization: Bearer` (a session token or an API token), or `?token=`.
    Bearer,
}

/// Who is making an admin request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub role: Role,
    /// For the audit log: `admin`, `account:NAME` or `token:NAME`.
    pub actor: String,
    pub via: AuthVia,
    /// Set for session logins (not API tokens).
    pub session: Option<Session>,
    pub username: Option<String>,
    /// The named account behind the request (its session, or the account
    /// that made its API token); `None`: the built-in admin or an identity.
    pub account_id: Option<i64>,
    /// The single sign-on identity behind a session.
    pub identity_id: Option<i64>,
}

impl Principal {
    /// How the request proved who it is, for `GET /api/admin/me`.
    pub fn method(&self) -> &'static str {
        match (&self.session, self.identity_id) {
            (None, _) => "token",
            (Some(_), Some(_)) => "sso",
            (Some(_), None) => "password",
        }
    }
}

/// A new session's token (given to the browser), its hash (stored), its
/// CSRF token and its expiry.
pub struct SessionKeys {
    pub token: String,
    pub token_hash: String,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl SessionKeys {
    pub fn new(state: &AppState) -> Self {
        let now = state.now();
        let ttl = SignedDuration::try_from(state.config.session_ttl)
            .unwrap_or(SignedDuration::from_hours(24));
        let token = secrets::new_prefixed_token(SESSION_PREFIX);
        Self {
            token_hash: secrets::hash_token_hex(&token),
            token,
            csrf_token: secrets::new_token(),
            created_at: now,
            expires_at: now.checked_add(ttl).unwrap_or(now),
        }
    }
}

pub struct LoggedIn {
    pub token: String,
    pub csrf_token: String,
    pub role: Role,
    pub username: String,
    pub expires_at: Timestamp,
}

/// A stand-in hash verified for unknown names, so timing does not tell
/// them apart from known ones.
const UNKNOWN_ACCOUNT_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// Longest attempted username kept in the audit log.
const MAX_LOGGED_USERNAME: usize = 64;

/// Logs a user in. The attempt is reserved with the client's rate limit
/// before the password is verified (so a burst of guesses is refused, not
/// hashed), verification waits for a permit of [`crate::secrets::PasswordWork`],
/// and a failure is written to the audit log (`login_failed`: the client's
/// address and the username tried, never the password).
pub async fn login(
    state: &AppState,
    client: IpAddr,
    username: Option<String>,
    password: String,
) -> Result<LoggedIn> {
    let attempt = state.login_limiter.begin(client).await.map_err(|wait| {
        Error::too_many_requests(
            format!("too many failed logins from this address; try again in {wait} s"),
            wait,
        )
    })?;
    let tried = username.clone();
    let username = username
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty() && u != BUILTIN_ADMIN);
    if username.is_some() && state.live.settings().password_login == PasswordLogin::BuiltinAdminOnly
    {
        attempt.succeeded();
        return Err(Error::forbidden(
            "password sign-in is turned off for named accounts; sign in with single sign-on",
        )
        .with_code("password_login_off"));
    }
    let (stored_hash, account) = state.store.login_credentials(username.clone()).await?;
    // Hashing happens even for unknown names, so timing does not tell them apart.
    let hash = stored_hash.unwrap_or_else(|| UNKNOWN_ACCOUNT_HASH.to_owned());
    let verified = state.passwords.verify(password, hash).await?;
    if !verified {
        let username: Option<String> = tried
            .map(|name| name.trim().chars().take(MAX_LOGGED_USERNAME).collect())
            .filter(|name: &String| !name.is_empty());
        let entry = audit(
            state.now(),
            "login_failed",
            &format!("client:{client}"),
            None,
            None,
            Some(json!({ "client": client.to_string(), "username": username })),
        );
        if let Err(error) = state.store.record_audit(entry).await {
            tracing::warn!(%error, "could not record a failed login");
        }
        // Dropping the attempt records the failure.
        drop(attempt);
        return Err(Error::unauthorized("wrong username or password").with_code("bad_credentials"));
    }
    attempt.succeeded();
    let (account_id, role, name) = match &account {
        Some(account) => (Some(account.id), account.role, account.username.clone()),
        None => (None, Role::Admin, BUILTIN_ADMIN.to_owned()),
    };
    let keys = SessionKeys::new(state);
    let (now, expires_at) = (keys.created_at, keys.expires_at);
    let actor = actor_of(account_id.map(|_| name.as_str()));
    state
        .store
        .open_session(
            NewSession {
                token_hash: &keys.token_hash,
                account_id,
                identity_id: None,
                role,
                csrf_token: &keys.csrf_token,
                created_at: now.as_millisecond(),
                expires_at: expires_at.as_millisecond(),
                refresh_token: None,
                recheck_at: None,
            },
            audit(
                now,
                "login",
                &actor,
                None,
                None,
                Some(json!({ "client": client.to_string() })),
            ),
        )
        .await?;
    Ok(LoggedIn {
        token: keys.token,
        csrf_token: keys.csrf_token,
        role,
        username: name,
        expires_at,
    })
}

fn actor_of(account: Option<&str>) -> String {
    match account {
        None => BUILTIN_ADMIN.to_owned(),
        Some(name) => format!("account:{name}"),
    }
}

/// Who `token` belongs to, if it is a live session or an active API token.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    via: AuthVia,
) -> Result<Option<Principal>> {
    let hash = secrets::hash_token_hex(token);
    let at = state.now();
    let found = if token.starts_with(API_TOKEN_PREFIX) {
        state.store.active_api_token_by_hash(hash).await?.map(Err)
    } else {
        state.store.session_by_token_hash(hash, at).await?.map(Ok)
    };
    Ok(match found {
        None => None,
        Some(Ok(session)) => Some(Principal {
            account_id: session.account_id,
            identity_id: session.identity_id,
            role: session.role,
            actor: match &session.identity_name {
                Some(name) => format!("sso:{name}"),
                None => actor_of(session.username.as_deref()),
            },
            via,
            username: Some(
                session
                    .identity_name
                    .clone()
                    .or_else(|| session.username.clone())
                    .unwrap_or_else(|| BUILTIN_ADMIN.to_owned()),
            ),
            session: Some(session),
        }),
        Some(Err(api_token)) => {
            // Written at most once a minute per token.
            let minute = jiff::SignedDuration::from_mins(1);
            if api_token
                .last_used_at
                .is_none_or(|used| at.duration_since(used) > minute)
            {
                state.store.touch_api_token(api_token.id, at).await?;
            }
            Some(Principal {
                account_id: api_token.account_id,
                identity_id: None,
                role: api_token.role,
                actor: format!("token:{}", api_token.name),
                // An API token is never a cookie.
                via: AuthVia::Bearer,
                session: None,
                username: None,
            })
        }
    })
}

pub async fn logout(state: &AppState, token: &str) -> Result<()> {
    let hash = secrets::hash_token_hex(token);
    state.store.end_session(hash).await?;
    Ok(())
}
