//! The web dashboard (issue 5) will be served from here, with its assets
//! embedded in the binary. Until then `/dashboard` says so.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/dashboard", get(placeholder))
}

async fn placeholder() -> (StatusCode, &'static str) {
    (
        StatusCode::NOT_IMPLEMENTED,
        "The ccgate dashboard is not built yet; use the admin API (/api/admin).",
    )
}
