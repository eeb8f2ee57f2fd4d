//! `/healthz` and `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The subscription gauges are read at scrape time: the database has them.
    let figures =
        state
            .store
            .subscriptions_with_latest_usage()
            .await
            .map(|(subscriptions, latest)| {
                let names: std::collections::HashMap<i64, String> = subscriptions
                    .into_iter()
                    .map(|row| (row.id, row.name))
                    .collect();
                latest
                    .into_iter()
                    .filter_map(|(id, usage)| Some((names.get(&id)?.clone(), usage)))
                    .collect::<Vec<_>>()
            });
    match figures {
        Ok(figures) => state
            .metrics
            .set_subscriptions(figures.iter().map(|(name, usage)| (name.as_str(), usage))),
        Err(error) => tracing::warn!(%error, "subscription gauges not updated"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
