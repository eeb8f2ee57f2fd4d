//! Generic webhook receiver (n8n/Zapier style): any method, optional key.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use ccgate_alerts::{ChannelConfig, Notification, Severity, WebhookConfig, WebhookMethod};
use serde_json::Value;

use crate::common::{Receiver, deliverer, notification, serve};

pub const KEY: &str = "key-0123456789";

async fn hook(
    State(rx): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = rx.record(&method, &uri, &headers, &body).await {
        return fault;
    }
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"message":"Authorization data is wrong!"}"#,
        )
            .into_response();
    }
    // Like n8n: a body that is not the JSON it claims to be is a 422.
    if !body.is_empty() && serde_json::from_slice::<Value>(&body).is_err() {
        return (StatusCode::UNPROCESSABLE_ENTITY, "invalid JSON").into_response();
    }
    (StatusCode::OK, r#"{"message":"Workflow was started"}"#).into_response()
}

pub async fn webhook(rx: Receiver) -> String {
    serve(
        Router::new()
            .route("/webhook/{id}", any(hook))
            .with_state(rx),
    )
    .await
}

pub fn config(base: &str, method: WebhookMethod, template: Option<&str>) -> WebhookConfig {
    WebhookConfig {
        url: format!("{base}/webhook/8d3f0c").into(),
        method,
        headers: BTreeMap::from([("X-Api-Key".to_owned(), KEY.into())]),
        body_template: template.map(str::to_owned),
    }
}

#[tokio::test]
async fn template_stays_valid_json_whatever_the_text() {
    let rx = Receiver::default();
    let base = webhook(rx.clone()).await;
    let template = r#"{"text": "{title}: {message}", "who": "{person}", "pct": "{pct}", "window": "{window}", "sub": "{subscription}"}"#;
    let channel = ChannelConfig::Webhook(config(&base, WebhookMethod::Post, Some(template)));
    let n = Notification::new(
        Severity::Critical,
        "Quota \"max\" {message}",
        "back\\slash\nnew line\ttab \u{7} é🚨",
    )
    .with_person("O'Brien")
    .with_usage(99.5, "weekly");
    deliverer().deliver(&channel, &n).await.unwrap();

    let req = &rx.requests()[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.header("content-type"), Some("application/json"));
    let v = req.json();
    assert_eq!(v["text"], format!("{}: {}", n.title, n.message));
    assert_eq!(v["who"], "O'Brien");
    assert_eq!(v["pct"], "99.5");
    assert_eq!(v["window"], "weekly");
    assert_eq!(v["sub"], "");
}

#[tokio::test]
async fn default_body_is_the_notification() {
    let rx = Receiver::default();
    let base = webhook(rx.clone()).await;
    let channel = ChannelConfig::Webhook(config(&base, WebhookMethod::Put, None));
    let n = notification();
    deliverer().deliver(&channel, &n).await.unwrap();
    let req = &rx.requests()[0];
    assert_eq!(req.method, Method::PUT);
    let back: Notification = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(back, n);
    assert_eq!(req.json()["severity"], "warning");
}

#[tokio::test]
async fn get_sends_headers_and_no_body() {
    let rx = Receiver::default();
    let base = webhook(rx.clone()).await;
    let channel = ChannelConfig::Webhook(config(&base, WebhookMethod::Get, None));
    deliverer()
        .deliver(&channel, &notification())
        .await
        .unwrap();
    let req = &rx.requests()[0];
    assert_eq!(req.method, Method::GET);
    assert!(req.body.is_empty());
    assert_eq!(req.header("content-type"), None);
    assert_eq!(req.header("x-api-key"), Some(KEY));
}

#[tokio::test]
async fn missing_key_is_permanent() {
    let rx = Receiver::default();
    let base = webhook(rx.clone()).await;
    let mut c = config(&base, WebhookMethod::Post, None);
    c.headers.clear();
    let err = deliverer()
        .deliver(&ChannelConfig::Webhook(c), &notification())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_retryable());
}
