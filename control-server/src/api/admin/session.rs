//! Login, logout and "who am I".

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{Admin, SESSION_COOKIE, session_cookie};
use crate::api::extract::{ClientIp, Json, bearer};
use crate::error::{Error, Result};
use crate::service::admin_auth::{self, AuthVia};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct LoginBody {
    /// Absent (or `admin`) for the built-in admin.
    #[serde(default)]
    username: Option<String>,
    password: String,
}

fn cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a request comes from a browser: browsers send `Origin` with
/// every `fetch` POST and `Sec-Fetch-*` with every request, and page
/// scripts can remove neither. Scripts (curl, reqwest) send none of them.
fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
        || headers.contains_key("sec-fetch-mode")
}

/// `POST /login`. The session is set as an HttpOnly cookie. The answer
/// carries the session token as `token` (the peer's shape) only for
/// scripts: a browser's login keeps it from page scripts, which need only
/// `csrf_token` (scripts that want a lasting credential use API tokens).
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Result<Response> {
    if body.password.is_empty() {
        return Err(Error::bad_request("password is required"));
    }
    let session = admin_auth::login(&state, client, body.username, body.password).await?;
    let max_age = session
        .expires_at
        .duration_since(state.now())
        .as_secs()
        .max(0);
    let team = state.live.settings().team_name.clone();
    let mut answer = json!({
        "team": team,
        "csrf_token": session.csrf_token,
        "role": session.role,
        "username": session.username,
        "expires_at": session.expires_at,
    });
    if !from_browser(&headers) {
        answer["token"] = json!(session.token);
    }
    let mut response = axum::Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, &session.token, max_age));
    Ok(response)
}

pub async fn logout(
    State(state): State<AppState>,
    Admin(admin): Admin,
    headers: HeaderMap,
) -> Result<Response> {
    let token = match admin.via {
        AuthVia::Bearer => bearer(&headers),
        AuthVia::Cookie => session_cookie(&headers),
    };
    if let (Some(token), Some(_)) = (token, &admin.session) {
        admin_auth::logout(&state, token).await?;
    }
    let mut response = axum::Json(json!({ "ok": true })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0));
    Ok(response)
}

pub async fn me(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<axum::Json<serde_json::Value>> {
    Ok(axum::Json(json!({
        "username": admin.username,
        "actor": admin.actor,
        "role": admin.role,
        "team": state.live.settings().team_name,
        "csrf_token": admin.session.as_ref().map(|s| &s.csrf_token),
        "expires_at": admin.session.as_ref().and_then(|s| super::ts(s.expires_at)),
    })))
}
