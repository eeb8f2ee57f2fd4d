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

/// The session cookie (`max_age` 0 removes it).
pub(crate) fn cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
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

/// `GET /login`: how people may sign in (for the sign-in page).
pub async fn login_options(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let settings = state.live.settings();
    axum::Json(json!({
        "team": settings.team_name,
        "sso": {
            "enabled": state.sso.is_some(),
            "login_url": crate::api::sso::LOGIN_PATH,
        },
        "password_login": settings.password_login,
    }))
}

pub async fn me(
    State(state): State<AppState>,
    Admin(admin): Admin,
) -> Result<axum::Json<serde_json::Value>> {
    let identity = match admin.identity_id {
        Some(id) => state.store.identity(id).await?,
        None => None,
    };
    let person = identity
        .as_ref()
        .and_then(|i| i.person.as_ref())
        .map(|(id, name)| json!({ "id": id, "name": name }));
    Ok(axum::Json(json!({
        "username": admin.username,
        "actor": admin.actor,
        "role": admin.role,
        "via": admin.method(),
        "person": person,
        "email": identity.as_ref().and_then(|i| i.email.clone()),
        "team": state.live.settings().team_name,
        "csrf_token": admin.session.as_ref().map(|s| &s.csrf_token),
        "expires_at": admin.session.as_ref().and_then(|s| super::ts(s.expires_at)),
    })))
}
