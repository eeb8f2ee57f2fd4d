//! HTTP: the router and the four APIs.
//!
//! | prefix | for | module |
//! |---|---|---|
//! | `/api/agent/v1` | ccgate-proxy | [`agent`], [`stream`] |
//! | `/api/v1` | claude-code-limiter hook clients | [`hook`] |
//! | `/api/admin` | the dashboard and scripts | [`admin`] |
//! | `/api/me` | a signed-in person's own page | [`me`] |
//! | `/auth/oidc/…` | single sign-on in the browser | [`sso`] |
//! | `/ws` | live events for admins | [`ws`] |
//! | `/healthz`, `/metrics` | operations | [`ops`] |
//! | `/install.sh`, `/downloads/<file>` | developer machines | [`install`] |
//! | `/dashboard` | the web UI (assets) | [`dashboard`] |

pub mod admin;
pub mod agent;
pub mod dashboard;
pub mod extract;
pub mod hook;
pub mod install;
pub mod me;
pub mod ops;
pub mod sso;
pub mod stream;
pub mod ws;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::metrics::HttpLabels;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest(ccgate_quota::wire::AGENT_API_PREFIX, agent::routes())
        .nest("/api/v1", hook::routes())
        .nest("/api/admin", admin::routes(state.clone()))
        .nest("/api/me", me::routes(state.clone()))
        .merge(sso::routes())
        .merge(ws::routes())
        .merge(ops::routes())
        .merge(install::routes())
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// Where devices reach this server: PUBLIC_URL, else the admin's own address.
pub(crate) fn public_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.clone();
    }
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(|host| format!("http://{host}"))
        .unwrap_or_else(|| format!("http://{}", state.local_addr))
}

async fn not_found() -> Error {
    Error::not_found("no such endpoint")
}

/// Counts every request by method, route and status for `/metrics`; the
/// route is the matched template (a fixed set), never the path sent.
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = crate::metrics::method_label(request.method());
    let response = next.run(request).await.into_response();
    state
        .metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
