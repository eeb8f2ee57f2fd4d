//! Discord execute-webhook receiver.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ccgate_alerts::{ChannelConfig, DiscordConfig, Notification, Severity};
use serde_json::{Value, json};

use crate::common::{Receiver, Reports, deliverer, fast_policy, notification, serve};

pub const ID: &str = "112233";
pub const TOKEN: &str = "wh-secret-token";

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

/// Checks what Discord checks for `POST /api/webhooks/{id}/{token}`.
async fn execute(
    State(rx): State<Receiver>,
    Path((id, token)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = rx.record(&method, &uri, &headers, &body).await {
        return fault;
    }
    if id != ID {
        return error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    }
    if token != TOKEN {
        return error(StatusCode::UNAUTHORIZED, 50027, "Invalid Webhook Token");
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // Without a JSON content type Discord reads a form and finds nothing.
    if !is_json {
        return error(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            50109,
            "The request body contains invalid JSON.",
        );
    };
    let content = v["content"].as_str().unwrap_or("");
    let embeds = v["embeds"].as_array().cloned().unwrap_or_default();
    if content.is_empty() && embeds.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        );
    }
    let too_long = |s: &Value, max: usize| s.as_str().is_some_and(|s| s.chars().count() > max);
    let bad_embed = embeds.len() > 10
        || embeds.iter().any(|e| {
            too_long(&e["title"], 256)
                || too_long(&e["description"], 4096)
                || e["color"].as_u64().is_some_and(|c| c > 0xFF_FFFF)
                || e["timestamp"]
                    .as_str()
                    .is_some_and(|t| t.parse::<jiff::Timestamp>().is_err())
        });
    if content.chars().count() > 2000 || bad_embed {
        return error(StatusCode::BAD_REQUEST, 50035, "Invalid Form Body");
    }
    StatusCode::NO_CONTENT.into_response()
}

pub async fn discord(rx: Receiver) -> String {
    let router = Router::new()
        .route("/api/webhooks/{id}/{token}", post(execute))
        .with_state(rx);
    serve(router).await
}

pub fn config(base: &str, token: &str) -> ChannelConfig {
    ChannelConfig::Discord(DiscordConfig {
        webhook_url: format!("{base}/api/webhooks/{ID}/{token}").into(),
    })
}

#[tokio::test]
async fn posts_content_and_an_embed() {
    let rx = Receiver::default();
    let base = discord(rx.clone()).await;
    let n = notification();
    let delivered = deliverer()
        .deliver(&config(&base, TOKEN), &n)
        .await
        .unwrap();
    assert_eq!(delivered.status, 204);

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let v = reqs[0].json();
    assert!(
        v["content"].as_str().unwrap().contains("Quota at 90%"),
        "{v}"
    );
    let embed = &v["embeds"][0];
    assert_eq!(embed["title"], "Quota at 90%");
    let description = embed["description"].as_str().unwrap();
    assert!(description.starts_with(&n.message), "{description}");
    assert!(description.contains("Person: alice"), "{description}");
    assert!(
        description.contains("Usage: 90% of the 5-hour window"),
        "{description}"
    );
    assert_eq!(embed["color"], 0xF39C12);
    assert_eq!(embed["timestamp"], n.at.to_string());
    // User text must not be able to ping @everyone.
    assert_eq!(v["allowed_mentions"], json!({ "parse": [] }));
}

#[tokio::test]
async fn critical_is_red_and_long_text_fits_discord_limits() {
    let rx = Receiver::default();
    let base = discord(rx.clone()).await;
    let n = Notification::new(Severity::Critical, "T".repeat(400), "m".repeat(6000));
    // The receiver answers 400 Invalid Form Body to any field over a limit.
    deliverer()
        .deliver(&config(&base, TOKEN), &n)
        .await
        .unwrap();
    assert_eq!(rx.requests()[0].json()["embeds"][0]["color"], 0xE74C3C);
}

#[tokio::test]
async fn wrong_token_is_a_permanent_error() {
    let rx = Receiver::default();
    let base = discord(rx.clone()).await;
    let reports = Reports::default();
    let err = deliverer()
        .deliver_with_retry(
            &config(&base, "wrong"),
            &notification(),
            &fast_policy(5),
            reports.sink(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
    assert!(
        err.body_excerpt()
            .unwrap()
            .contains("Invalid Webhook Token"),
        "{err}"
    );
    assert_eq!(rx.requests().len(), 1, "a 401 is not retried");
    assert_eq!(reports.get().len(), 1);
    // The webhook token is a secret: error text must not show the URL.
    assert!(!err.to_string().contains("wrong"), "{err}");
}
