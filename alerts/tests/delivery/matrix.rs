//! Matrix homeserver receiver: `PUT .../rooms/{roomId}/send/{type}/{txnId}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use ccgate_alerts::{ChannelConfig, MatrixConfig, Notification, Severity};
use serde_json::{Value, json};

use crate::common::{Fault, Receiver, Reports, deliverer, fast_policy, notification, serve};

const TOKEN: &str = "syt_YWxpY2U_secret_0000";
const ROOM: &str = "!ccgate:localhost";

#[derive(Clone, Default)]
struct Homeserver {
    rx: Receiver,
    /// txnId → event_id, as a homeserver remembers transactions.
    txns: Arc<Mutex<HashMap<String, String>>>,
    /// Events actually stored in the room.
    events: Arc<Mutex<Vec<Value>>>,
}

fn error(status: StatusCode, errcode: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "errcode": errcode, "error": message })),
    )
        .into_response()
}

async fn send(
    State(hs): State<Homeserver>,
    Path((room, event_type, txn)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = hs.rx.record(&method, &uri, &headers, &body).await {
        return fault;
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    match auth.and_then(|a| a.strip_prefix("Bearer ")) {
        None => {
            return error(
                StatusCode::UNAUTHORIZED,
                "M_MISSING_TOKEN",
                "Missing access token",
            );
        }
        Some(t) if t != TOKEN => {
            return error(
                StatusCode::UNAUTHORIZED,
                "M_UNKNOWN_TOKEN",
                "Unrecognised access token",
            );
        }
        Some(_) => {}
    }
    if room != ROOM {
        return error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "User not in room");
    }
    let Ok(content) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "M_NOT_JSON", "Content not JSON.");
    };
    let valid = event_type == "m.room.message"
        && content["msgtype"].is_string()
        && content["body"].is_string()
        && (content.get("format").is_none()
            || (content["format"] == "org.matrix.custom.html"
                && content["formatted_body"].is_string()));
    if !valid {
        return error(
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
            "Invalid message content",
        );
    }
    let mut txns = hs.txns.lock().unwrap();
    let event_id = txns.entry(txn).or_insert_with(|| {
        let mut events = hs.events.lock().unwrap();
        events.push(content);
        format!("$event{}", events.len())
    });
    Json(json!({ "event_id": event_id })).into_response()
}

async fn homeserver(hs: Homeserver) -> String {
    let router = Router::new()
        .route(
            "/_matrix/client/v3/rooms/{room}/send/{event_type}/{txn}",
            put(send),
        )
        .with_state(hs);
    serve(router).await
}

fn config(base: &str, token: &str) -> ChannelConfig {
    ChannelConfig::Matrix(MatrixConfig {
        homeserver: format!("{base}/"),
        access_token: token.into(),
        room_id: ROOM.into(),
    })
}

fn txn_of(raw_path: &str) -> &str {
    raw_path.rsplit('/').next().unwrap()
}

#[tokio::test]
async fn puts_an_html_message_with_bearer_auth() {
    let hs = Homeserver::default();
    let base = homeserver(hs.clone()).await;
    let n = Notification::new(Severity::Critical, "<b>Quota</b> & co", "line 1\nline 2")
        .with_person("bob");
    let delivered = deliverer()
        .deliver(&config(&base, TOKEN), &n)
        .await
        .unwrap();
    assert_eq!(delivered.detail.as_deref(), Some("$event1"));

    let req = &hs.rx.requests()[0];
    assert_eq!(req.method, Method::PUT);
    assert!(
        req.raw_path
            .starts_with("/_matrix/client/v3/rooms/%21ccgate%3Alocalhost/send/m.room.message/"),
        "{}",
        req.raw_path
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let event = &hs.events.lock().unwrap()[0];
    assert_eq!(event["msgtype"], "m.text");
    assert_eq!(
        event["body"],
        "<b>Quota</b> & co\nline 1\nline 2\nPerson: bob"
    );
    assert_eq!(
        event["formatted_body"],
        "<strong>&lt;b&gt;Quota&lt;/b&gt; &amp; co</strong><br>line 1<br>line 2<br><em>Person: bob</em>"
    );
}

#[tokio::test]
async fn unknown_token_is_permanent() {
    let hs = Homeserver::default();
    let base = homeserver(hs.clone()).await;
    let err = deliverer()
        .deliver(&config(&base, "syt_revoked"), &notification())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.body_excerpt().unwrap().contains("M_UNKNOWN_TOKEN"));
    assert!(!err.is_retryable());
    assert!(hs.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn retries_reuse_the_txn_id_and_post_once() {
    let hs = Homeserver {
        rx: Receiver::with_faults([Fault::status(500, "{}"), Fault::status(502, "bad gateway")]),
        ..Homeserver::default()
    };
    let base = homeserver(hs.clone()).await;
    let channel = config(&base, TOKEN);
    let n = notification();
    let reports = Reports::default();
    let delivered = deliverer()
        .deliver_with_retry(&channel, &n, &fast_policy(5), reports.sink())
        .await
        .unwrap();
    assert_eq!(delivered.detail.as_deref(), Some("$event1"));
    assert_eq!(reports.get().len(), 3);

    let requests = hs.rx.requests();
    let txns: Vec<&str> = requests.iter().map(|r| txn_of(&r.raw_path)).collect();
    assert_eq!(txns.len(), 3);
    assert!(txns.iter().all(|t| *t == txns[0]), "{txns:?}");

    // The same notification delivered again (say after a restart) is the
    // same transaction: the homeserver answers with the first event.
    let again = deliverer().deliver(&channel, &n).await.unwrap();
    assert_eq!(again.detail.as_deref(), Some("$event1"));
    assert_eq!(hs.events.lock().unwrap().len(), 1);

    // Another notification is another transaction.
    let other = deliverer()
        .deliver(&channel, &notification())
        .await
        .unwrap();
    assert_eq!(other.detail.as_deref(), Some("$event2"));
    let last = hs.rx.requests().last().unwrap().raw_path.clone();
    assert_ne!(txn_of(&last), txns[0]);
}

#[tokio::test]
async fn rate_limit_wait_is_read_from_the_body() {
    let hs = Homeserver {
        rx: Receiver::with_faults([Fault::status(
            429,
            r#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":40}"#,
        )]),
        ..Homeserver::default()
    };
    let base = homeserver(hs.clone()).await;
    let reports = Reports::default();
    let mut policy = fast_policy(3);
    policy.first_delay = std::time::Duration::from_millis(1);
    deliverer()
        .deliver_with_retry(
            &config(&base, TOKEN),
            &notification(),
            &policy,
            reports.sink(),
        )
        .await
        .unwrap();
    assert_eq!(
        reports.get()[0].next_delay,
        Some(std::time::Duration::from_millis(40))
    );
}
