//! Pushover messages API receiver.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ccgate_alerts::{ChannelConfig, DeliveryError, Notification, PushoverConfig, Severity};
use serde_json::json;

use crate::common::{Fault, Receiver, deliverer, notification, serve};

const TOKEN: &str = "azGDORePK8gMaC0QOYAMyEEuzJnyUi";
const USER: &str = "uQiRzpo4DXghDmr9QzzfQu27cmVRsG";

fn reject(field: &str, error: &str) -> Response {
    let body = json!({ field: "invalid", "errors": [error], "status": 0, "request": "5042853c-402d-4a18-abcb-168734a801de" });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn messages(
    State(rx): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = rx.record(&method, &uri, &headers, &body).await {
        return fault;
    }
    let form_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return reject("token", "application token is invalid");
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("token") != TOKEN {
        return reject("token", "application token is invalid");
    }
    if get("user") != USER {
        return reject(
            "user",
            "user identifier is not a valid user, group, or subscribed user key",
        );
    }
    if get("message").is_empty() {
        return reject("message", "message cannot be blank");
    }
    if get("message").chars().count() > 1024 {
        return reject("message", "message is too long");
    }
    if get("title").chars().count() > 250 {
        return reject("title", "title is too long");
    }
    match get("priority") {
        "" | "-2" | "-1" | "0" | "1" => {}
        "2" if !get("retry").is_empty() && !get("expire").is_empty() => {}
        _ => return reject("priority", "priority is invalid"),
    }
    Json(json!({ "status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b" })).into_response()
}

async fn pushover(rx: Receiver) -> String {
    serve(
        Router::new()
            .route("/1/messages.json", post(messages))
            .with_state(rx),
    )
    .await
}

fn config(base: &str, token: &str) -> ChannelConfig {
    ChannelConfig::Pushover(PushoverConfig {
        token: token.into(),
        user: USER.into(),
        api_url: format!("{base}/1/messages.json"),
    })
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

#[tokio::test]
async fn sends_the_form_and_reads_the_request_id() {
    let rx = Receiver::default();
    let base = pushover(rx.clone()).await;
    let n = notification();
    let delivered = deliverer()
        .deliver(&config(&base, TOKEN), &n)
        .await
        .unwrap();
    assert_eq!(
        delivered.detail.as_deref(),
        Some("647d2300-702c-4b38-8b2f-d56326ae460b")
    );
    let f = form(&rx.requests()[0].body);
    assert_eq!(f["token"], TOKEN);
    assert_eq!(f["user"], USER);
    assert_eq!(f["title"], "Quota at 90%");
    assert_eq!(f["message"], n.plain_text());
    assert_eq!(f["priority"], "0");
    assert_eq!(f["timestamp"], n.at.as_second().to_string());
}

#[tokio::test]
async fn critical_gets_priority_one_and_long_text_is_cut() {
    let rx = Receiver::default();
    let base = pushover(rx.clone()).await;
    let n = Notification::new(Severity::Critical, "x".repeat(300), "y".repeat(2000));
    deliverer()
        .deliver(&config(&base, TOKEN), &n)
        .await
        .unwrap();
    let f = form(&rx.requests()[0].body);
    assert_eq!(f["priority"], "1");
    assert_eq!(f["message"].chars().count(), 1024);
}

#[tokio::test]
async fn invalid_token_is_permanent_with_pushovers_reason() {
    let rx = Receiver::default();
    let base = pushover(rx.clone()).await;
    let err = deliverer()
        .deliver(&config(&base, "bogus"), &notification())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert!(
        err.body_excerpt()
            .unwrap()
            .contains("application token is invalid"),
        "{err}"
    );
}

#[tokio::test]
async fn a_success_status_with_status_zero_is_refused() {
    let rx = Receiver::with_faults([Fault::status(200, r#"{"status":0,"errors":["quota"]}"#)]);
    let base = pushover(rx.clone()).await;
    let err = deliverer()
        .deliver(&config(&base, TOKEN), &notification())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeliveryError::Refused { status: 200, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
}
