//! The web dashboard at `/dashboard`: one HTML shell per page, filled in by
//! small hand-written ES modules that call the admin API and listen on
//! `/ws`. Everything under `control-server/assets/` is embedded in the
//! binary, so `cargo build` needs no front-end step. See
//! docs/architecture.md, "As built: dashboard".

mod assets;
mod pages;
mod security;

use axum::Router;
use axum::middleware;
use axum::routing::get;

use crate::state::AppState;

pub use assets::asset_version;
pub(crate) use pages::escape;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::to_overview))
        .route("/dashboard/", get(pages::to_overview))
        .route("/dashboard", get(pages::overview))
        .route("/dashboard/login", get(pages::login))
        .route("/dashboard/users/new", get(pages::add_user))
        .route("/dashboard/users/{id}", get(pages::user))
        .route("/dashboard/settings", get(pages::settings))
        .route("/dashboard/activity", get(pages::activity))
        .route("/dashboard/me", get(pages::me))
        .route("/dashboard/static/{version}/{*path}", get(assets::serve))
        .layer(middleware::from_fn(security::headers))
}
