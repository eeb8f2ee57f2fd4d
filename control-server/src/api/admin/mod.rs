//! The admin API (`/api/admin/*`): the peer's paths and shapes, extended.
//! One middleware authenticates every route but `/login`: a session cookie
//! or a bearer token (session or API token); viewers may only read; a
//! cookie-authenticated change needs `X-CSRF-Token`. No CORS headers are
//! ever sent, so browsers keep other origins out.

mod accounts;
mod alerts;
mod identities;
mod reports;
pub(crate) mod session;
mod settings;
mod subscriptions;
pub(crate) mod users;
mod utilization;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use jiff::Timestamp;

use super::extract::bearer;
use crate::error::{Error, Result};
use crate::model::Role;
use crate::secrets;
use crate::service::admin_auth::{self, AuthVia, Principal};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "ccgate_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub fn routes(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/logout", post(session::logout))
        .route("/me", get(session::me))
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            get(users::get_one).put(users::update).delete(users::remove),
        )
        .route("/users/{id}/install-code", post(users::install_code))
        .route("/users/{id}/hook-code", post(users::hook_code))
        .route("/devices/{id}", delete(users::revoke_device))
        .route("/users/{id}/rotate-tokens", post(users::rotate_tokens))
        .route("/users/{id}/preview", post(users::preview))
        .route("/usage", get(reports::usage))
        .route("/events", get(reports::events))
        .route("/audit", get(reports::audit))
        .route("/subscription", get(reports::subscription))
        .route(
            "/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        )
        .route(
            "/subscriptions/{id}",
            get(subscriptions::get_one)
                .put(subscriptions::update)
                .delete(subscriptions::remove),
        )
        .route("/subscriptions/{id}/history", get(utilization::history))
        .route(
            "/alerts/channels",
            get(alerts::channels).post(alerts::create_channel),
        )
        .route(
            "/alerts/channels/{id}",
            axum::routing::put(alerts::update_channel).delete(alerts::delete_channel),
        )
        .route("/alerts/channels/{id}/test", post(alerts::test_channel))
        .route(
            "/alerts/rules",
            get(alerts::rules).post(alerts::create_rule),
        )
        .route(
            "/alerts/rules/{id}",
            axum::routing::put(alerts::update_rule).delete(alerts::delete_rule),
        )
        .route("/alerts/log", get(alerts::log))
        .route(
            "/settings",
            get(settings::get_settings).put(settings::put_settings),
        )
        .route("/accounts", get(accounts::list).post(accounts::create))
        .route("/accounts/{id}", delete(accounts::remove))
        .route(
            "/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/identities", get(identities::list))
        .route(
            "/identities/{id}",
            axum::routing::put(identities::update).delete(identities::remove),
        )
        .layer(middleware::from_fn_with_state(state, authenticate));
    Router::new()
        .route("/login", post(session::login).get(session::login_options))
        .merge(protected)
}

/// The session token from the `ccgate_session` cookie.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the cookie `wanted`, if the request carries one.
pub fn cookie_value<'h>(headers: &'h HeaderMap, wanted: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Who is asking, from a bearer token or the session cookie.
pub async fn principal_from(state: &AppState, headers: &HeaderMap) -> Result<Principal> {
    let (token, via) = match (bearer(headers), session_cookie(headers)) {
        (Some(token), _) => (token, AuthVia::Bearer),
        (None, Some(token)) => (token, AuthVia::Cookie),
        (None, None) => {
            return Err(Error::unauthorized(
                "login required (session cookie or Authorization: Bearer)",
            ));
        }
    };
    admin_auth::authenticate(state, token, via)
        .await?
        .ok_or_else(|| {
            Error::unauthorized("the session has expired or the token is invalid; log in again")
                .with_code("invalid_session")
        })
}

async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response> {
    let principal = principal_from(&state, request.headers()).await?;
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let logging_out = request.uri().path().ends_with("/logout");
    // Members reach their own session only: exactly these two routes.
    let own_session = matches!(
        request.uri().path(),
        "/me" | "/logout" | "/api/admin/me" | "/api/admin/logout"
    );
    if principal.role == Role::Member && !own_session {
        return Err(
            Error::forbidden("members see their own page only (GET /api/me)").with_code("member"),
        );
    }
    if !reads && !logging_out && principal.role == Role::Viewer {
        return Err(Error::forbidden("viewers can look but not change anything"));
    }
    check_csrf(&principal, &request)?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// A change made with the session cookie must carry the session's CSRF
/// token in a header (page scripts of other sites cannot read it).
pub(crate) fn check_csrf(principal: &Principal, request: &Request) -> Result<()> {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if reads || principal.via != AuthVia::Cookie {
        return Ok(());
    }
    let expected = principal
        .session
        .as_ref()
        .map(|s| s.csrf_token.as_bytes())
        .unwrap_or_default();
    let sent = request
        .headers()
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if expected.is_empty() || !secrets::constant_time_eq(expected, sent) {
        return Err(Error::forbidden(
            "missing or wrong X-CSRF-Token header (it comes with the login answer and GET /api/admin/me)",
        )
        .with_code("csrf"));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Admin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Admin)
            .ok_or_else(|| Error::unauthorized("login required"))
    }
}

/// Milliseconds to a timestamp for JSON (`None` for nonsense values).
pub fn ts(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}
