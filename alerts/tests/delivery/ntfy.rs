//! ntfy server receiver: `POST /{topic}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use ccgate_alerts::{ChannelConfig, Notification, NtfyConfig, Severity};
use serde_json::json;

use crate::common::{Receiver, deliverer, notification, serve};

const PROTECTED: &str = "ccgate-private";
const TOKEN: &str = "tk_AgQdq7mVBoFD37zQVN29RhuMzNIz2";

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({ "code": code, "http": status.as_u16(), "error": message });
    (status, Json(body)).into_response()
}

/// RFC 2047 `=?UTF-8?B?...?=` as ntfy decodes it; plain text otherwise.
fn decode_header(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?UTF-8?B?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
        }
        None => Some(v.to_owned()),
    }
}

async fn publish(
    State(rx): State<Receiver>,
    Path(topic): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = rx.record(&method, &uri, &headers, &body).await {
        return fault;
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match auth {
        Some(a) if a != format!("Bearer {TOKEN}") => {
            return error(StatusCode::UNAUTHORIZED, 40101, "unauthorized");
        }
        None if topic == PROTECTED => return error(StatusCode::FORBIDDEN, 40301, "forbidden"),
        _ => {}
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let priority_ok = matches!(
        header("priority"),
        None | Some(
            "1" | "2" | "3" | "4" | "5" | "min" | "low" | "default" | "high" | "max" | "urgent"
        )
    );
    if !priority_ok {
        return error(StatusCode::BAD_REQUEST, 40007, "invalid priority");
    }
    if header("title").is_some_and(|t| decode_header(t).is_none()) {
        return error(StatusCode::BAD_REQUEST, 40000, "invalid request");
    }
    // Over 4096 bytes ntfy would store an attachment instead of a message.
    if body.len() > 4096 {
        return error(
            StatusCode::BAD_REQUEST,
            40000,
            "message too long for this test",
        );
    }
    let message = String::from_utf8_lossy(&body);
    Json(json!({ "id": "hwQ2YpKdmg", "time": 1700000000, "event": "message", "topic": topic, "message": message }))
        .into_response()
}

async fn ntfy(rx: Receiver) -> String {
    serve(
        Router::new()
            .route("/{topic}", post(publish))
            .with_state(rx),
    )
    .await
}

fn config(base: &str, topic: &str, token: Option<&str>) -> ChannelConfig {
    ChannelConfig::Ntfy(NtfyConfig {
        server: base.to_owned(),
        topic: topic.to_owned(),
        token: token.map(Into::into),
    })
}

#[tokio::test]
async fn publishes_text_with_title_priority_and_tags() {
    let rx = Receiver::default();
    let base = ntfy(rx.clone()).await;
    let n = notification();
    let delivered = deliverer()
        .deliver(&config(&base, "ccgate", None), &n)
        .await
        .unwrap();
    assert_eq!(delivered.detail.as_deref(), Some("hwQ2YpKdmg"));
    let req = &rx.requests()[0];
    assert_eq!(req.raw_path, "/ccgate");
    assert_eq!(String::from_utf8_lossy(&req.body), n.plain_text());
    assert_eq!(req.header("title"), Some("Quota at 90%"));
    assert_eq!(req.header("priority"), Some("high"));
    assert_eq!(req.header("tags"), Some("warning"));
    assert_eq!(req.header("authorization"), None);
}

#[tokio::test]
async fn critical_is_urgent_and_a_unicode_title_survives() {
    let rx = Receiver::default();
    let base = ntfy(rx.clone()).await;
    let n = Notification::new(Severity::Critical, "Quota épuisé — 100% 🚨", "stop");
    deliverer()
        .deliver(&config(&base, PROTECTED, Some(TOKEN)), &n)
        .await
        .unwrap();
    let req = &rx.requests()[0];
    assert_eq!(req.header("priority"), Some("urgent"));
    assert_eq!(req.header("tags"), Some("rotating_light"));
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        decode_header(req.header("title").unwrap()).as_deref(),
        Some(n.title.as_str())
    );
}

#[tokio::test]
async fn protected_topic_without_token_is_permanent() {
    let rx = Receiver::default();
    let base = ntfy(rx.clone()).await;
    let err = deliverer()
        .deliver(&config(&base, PROTECTED, None), &notification())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(!err.is_retryable());
    assert!(err.body_excerpt().unwrap().contains("40301"));
}
