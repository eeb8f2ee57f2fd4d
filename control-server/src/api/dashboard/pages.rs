//! The dashboard's pages. Each is the same HTML shell, told which page it
//! is and who is logged in; the modules render the rest. A page other than
//! the login needs a live session cookie, else the browser is sent to the
//! login page (and back afterwards). A member (signed in with single
//! sign-on) sees only their own page, `/dashboard/me`: every other page
//! sends them there.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::assets;
use crate::api::admin::session_cookie;
use crate::service::admin_auth::{self, AuthVia, Principal};
use crate::state::AppState;

const LOGIN_PATH: &str = "/dashboard/login";
const OVERVIEW_PATH: &str = "/dashboard";
const ME_PATH: &str = "/dashboard/me";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Login,
    Overview,
    User,
    AddUser,
    Settings,
    Activity,
    Me,
}

impl Page {
    /// The module under `js/pages/` that renders it.
    fn module(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Overview => "overview",
            Self::User => "user",
            Self::AddUser => "add-user",
            Self::Settings => "settings",
            Self::Activity => "activity",
            Self::Me => "me",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Login => "Log in",
            Self::Overview => "Overview",
            Self::User => "User",
            Self::AddUser => "Add user",
            Self::Settings => "Settings",
            Self::Activity => "Activity",
            Self::Me => "My usage",
        }
    }
}

pub async fn to_overview() -> Redirect {
    Redirect::to(OVERVIEW_PATH)
}

pub async fn overview(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, Page::Overview, OVERVIEW_PATH.to_owned()).await
}

pub async fn add_user(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        &state,
        &headers,
        Page::AddUser,
        "/dashboard/users/new".to_owned(),
    )
    .await
}

pub async fn user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "no such page").into_response();
    };
    page(
        &state,
        &headers,
        Page::User,
        format!("/dashboard/users/{id}"),
    )
    .await
}

pub async fn settings(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        &state,
        &headers,
        Page::Settings,
        "/dashboard/settings".to_owned(),
    )
    .await
}

pub async fn activity(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(
        &state,
        &headers,
        Page::Activity,
        "/dashboard/activity".to_owned(),
    )
    .await
}

pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    page(&state, &headers, Page::Me, ME_PATH.to_owned()).await
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = query
        .next
        .filter(|next| is_dashboard_path(next))
        .unwrap_or_else(|| OVERVIEW_PATH.to_owned());
    match logged_in(&state, &headers).await {
        Some(principal) if is_member(&principal) => return Redirect::to(ME_PATH).into_response(),
        Some(_) => return Redirect::to(&next).into_response(),
        None => {}
    }
    html(render_shell(Page::Login, None, &state))
}

async fn page(state: &AppState, headers: &HeaderMap, page: Page, path: String) -> Response {
    match logged_in(state, headers).await {
        Some(principal) if page != Page::Me && is_member(&principal) => {
            Redirect::to(ME_PATH).into_response()
        }
        Some(principal) => html(render_shell(page, Some(&principal), state)),
        None => {
            Redirect::to(&format!("{LOGIN_PATH}?next={}", percent_encode(&path))).into_response()
        }
    }
}

/// The browser's session, if its cookie names a live one. API tokens are
/// not sessions: they carry no CSRF token for the modules to send.
async fn logged_in(state: &AppState, headers: &HeaderMap) -> Option<Principal> {
    let token = session_cookie(headers)?;
    match admin_auth::authenticate(state, token, AuthVia::Cookie).await {
        Ok(Some(principal)) if principal.session.is_some() => Some(principal),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(?error, "could not check a dashboard session");
            None
        }
    }
}

/// A member may see their own page only (the API refuses them the rest).
fn is_member(principal: &Principal) -> bool {
    principal.role.as_str() == "member"
}

/// Only paths inside the dashboard are followed after login (no open redirect).
fn is_dashboard_path(path: &str) -> bool {
    (path == OVERVIEW_PATH || path.starts_with("/dashboard/"))
        && !path.contains("//")
        && !path.contains('\\')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&%".contains(&b))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn html(body: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            // The shell carries the session's CSRF token: never cache it.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// Text for HTML (element content and quoted attributes).
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn render_shell(page: Page, principal: Option<&Principal>, state: &AppState) -> String {
    let base = assets::static_base();
    let team = state.live.settings().team_name.clone();
    let title = match principal {
        Some(_) => format!("{} · {team} · ccgate", page.title()),
        None => format!("{} · ccgate", page.title()),
    };
    let preloads: String = assets::modules_of_page(page.module())
        .iter()
        .map(|module| {
            format!(
                "<link rel=\"modulepreload\" href=\"{base}/{}\">\n",
                escape(module)
            )
        })
        .collect();
    let session = match principal {
        None => String::new(),
        Some(principal) => {
            let csrf = principal
                .session
                .as_ref()
                .map(|s| s.csrf_token.as_str())
                .unwrap_or_default();
            let role = principal.role.as_str();
            format!(
                " data-role=\"{role}\" data-username=\"{}\" data-team=\"{}\" data-csrf=\"{}\"",
                escape(principal.username.as_deref().unwrap_or_default()),
                escape(&team),
                escape(csrf),
            )
        }
    };
    assets::template("page.html")
        .replace("{{title}}", &escape(&title))
        .replace("{{static}}", &base)
        .replace("{{preloads}}", &preloads)
        .replace("{{page}}", page.module())
        .replace(" {{session}}", &session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_followed_after_login() {
        for good in [
            "/dashboard",
            "/dashboard/users/4",
            "/dashboard/activity?kind=tamper",
        ] {
            assert!(is_dashboard_path(good), "{good}");
        }
        for bad in [
            "https://evil.example/dashboard",
            "//evil.example/dashboard/",
            "/dashboard//evil.example",
            "/dashboardx",
            "/api/admin/users",
            "/dashboard/\\evil",
            "/dashboard/<script>",
        ] {
            assert!(!is_dashboard_path(bad), "{bad}");
        }
    }

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn next_paths_are_percent_encoded() {
        assert_eq!(
            percent_encode("/dashboard/activity?kind=x&y"),
            "/dashboard/activity%3Fkind%3Dx%26y"
        );
    }
}
