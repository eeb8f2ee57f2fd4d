//! `GET /auth/oidc/login` and `GET /auth/oidc/callback`: single sign-on in
//! the browser. Both answer pages (a redirect, or a short HTML page with
//! what went wrong), never JSON.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::admin::{cookie_value, session};
use super::dashboard::escape;
use super::extract::ClientIp;
use crate::model::Role;
use crate::service::sso::{self, LOGIN_COOKIE, LOGIN_TTL};
use crate::state::AppState;

pub const LOGIN_PATH: &str = "/auth/oidc/login";
pub const CALLBACK_PATH: &str = "/auth/oidc/callback";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LOGIN_PATH, get(login))
        .route(CALLBACK_PATH, get(callback))
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    return_to: Option<String>,
}

/// The login cookie: `Lax`, since the browser comes back from the
/// provider's site with a top-level GET (a `Strict` cookie would stay home).
fn login_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={value}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn login(State(state): State<AppState>, Query(query): Query<LoginQuery>) -> Response {
    match sso::start(&state, query.return_to).await {
        Ok(started) => {
            let mut response =
                (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
            let headers = response.headers_mut();
            if let Ok(location) = HeaderValue::from_str(&started.redirect) {
                headers.insert(header::LOCATION, location);
            }
            headers.insert(
                header::SET_COOKIE,
                login_cookie(&state, &started.browser_secret, LOGIN_TTL.as_secs()),
            );
            response
        }
        Err(error) => page(
            error.status,
            "Single sign-on is not available",
            &error.message,
            None,
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    /// Set by the provider when the person cancelled or was refused.
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let clear = login_cookie(&state, "", 0);
    let mut response = match (&query.error, &query.code, &query.state) {
        (Some(error), _, _) => {
            let detail = query.error_description.as_deref().unwrap_or(error.as_str());
            page(
                StatusCode::UNAUTHORIZED,
                "Sign-in did not finish",
                &format!("The identity provider said: {detail}"),
                None,
            )
        }
        (None, Some(code), Some(login_state)) => {
            let browser = cookie_value(&headers, LOGIN_COOKIE);
            match sso::finish(&state, client, browser, login_state, code).await {
                Ok(signed_in) => signed_in_page(&state, signed_in),
                Err(error) => page(error.status, "Sign-in refused", &error.message, None),
            }
        }
        _ => page(
            StatusCode::BAD_REQUEST,
            "Sign-in did not finish",
            "The identity provider sent the browser back without a code and state.",
            None,
        ),
    };
    response.headers_mut().append(header::SET_COOKIE, clear);
    response
}

/// Sets the session cookie and moves on with a same-site navigation (a
/// redirect straight from the provider's site would leave the `Strict`
/// session cookie behind on the next page).
fn signed_in_page(state: &AppState, signed_in: sso::SignedIn) -> Response {
    let home = if signed_in.session.role == Role::Member {
        "/dashboard/me"
    } else {
        "/dashboard"
    };
    let next = signed_in.return_to.unwrap_or_else(|| home.to_owned());
    let max_age = signed_in
        .session
        .expires_at
        .duration_since(state.now())
        .as_secs()
        .max(0);
    let mut response = page(
        StatusCode::OK,
        "Signed in",
        &format!("Signed in as {}.", signed_in.session.username),
        Some(&next),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        session::cookie(state, &signed_in.session.token, max_age),
    );
    response
}

/// A small self-contained page; `next` adds a link and a meta refresh to it.
fn page(status: StatusCode, title: &str, message: &str, next: Option<&str>) -> Response {
    let (refresh, link) = match next {
        Some(next) => (
            format!(
                "<meta http-equiv=\"refresh\" content=\"0;url={}\">",
                escape(next)
            ),
            format!("<p><a href=\"{}\">Continue</a></p>", escape(next)),
        ),
        None => (
            String::new(),
            "<p><a href=\"/dashboard/login\">Back to the sign-in page</a></p>".to_owned(),
        ),
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{title} · ccgate</title></head><body><main><h1>{title}</h1>\
         <p id=\"message\">{message}</p>{link}</main></body></html>",
        title = escape(title),
        message = escape(message),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
