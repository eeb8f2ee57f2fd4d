//! Slack incoming-webhook receiver.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ccgate_alerts::{ChannelConfig, Notification, Severity, SlackConfig};
use serde_json::Value;

use crate::common::{Receiver, deliverer, notification, serve};

const SECRET: &str = "XXXXsecretXXXX";

fn answer(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

/// Block Kit rules Slack enforces with `invalid_blocks`.
fn blocks_ok(blocks: &[Value]) -> bool {
    let text_len = |v: &Value| v.as_str().map(|s| s.chars().count());
    blocks.len() <= 50
        && blocks.iter().all(|b| match b["type"].as_str() {
            Some("header") => {
                b["text"]["type"] == "plain_text"
                    && matches!(text_len(&b["text"]["text"]), Some(1..=150))
            }
            Some("section") => {
                matches!(b["text"]["type"].as_str(), Some("mrkdwn" | "plain_text"))
                    && matches!(text_len(&b["text"]["text"]), Some(1..=3000))
            }
            Some("context") => b["elements"].as_array().is_some_and(|e| {
                (1..=10).contains(&e.len())
                    && e.iter()
                        .all(|e| matches!(text_len(&e["text"]), Some(1..=3000)))
            }),
            Some("divider") => true,
            _ => false,
        })
}

async fn incoming(
    State(rx): State<Receiver>,
    Path((_team, _bot, secret)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = rx.record(&method, &uri, &headers, &body).await {
        return fault;
    }
    if secret != SECRET {
        return answer(StatusCode::NOT_FOUND, "no_service");
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(v) = json_type
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
    else {
        return answer(StatusCode::BAD_REQUEST, "invalid_payload");
    };
    let text = v["text"].as_str().unwrap_or("");
    let blocks = v["blocks"].as_array().cloned().unwrap_or_default();
    if text.is_empty() && blocks.is_empty() {
        return answer(StatusCode::BAD_REQUEST, "no_text");
    }
    if !blocks_ok(&blocks) {
        return answer(StatusCode::BAD_REQUEST, "invalid_blocks");
    }
    answer(StatusCode::OK, "ok")
}

async fn slack(rx: Receiver) -> String {
    let router = Router::new()
        .route("/services/{team}/{bot}/{secret}", post(incoming))
        .with_state(rx);
    serve(router).await
}

fn config(base: &str, secret: &str) -> ChannelConfig {
    ChannelConfig::Slack(SlackConfig {
        webhook_url: format!("{base}/services/T0001/B0001/{secret}").into(),
    })
}

#[tokio::test]
async fn posts_text_and_blocks() {
    let rx = Receiver::default();
    let base = slack(rx.clone()).await;
    let delivered = deliverer()
        .deliver(&config(&base, SECRET), &notification())
        .await
        .unwrap();
    assert_eq!(delivered.status, 200);
    let v = rx.requests()[0].json();
    assert!(v["text"].as_str().unwrap().contains("Quota at 90%"));
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["text"], "Quota at 90%");
    assert_eq!(
        blocks[1]["text"]["text"],
        "team-max is at 90% of its 5-hour window."
    );
    let context = blocks[2]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context.contains("Severity: warning") && context.contains("Subscription: team-max"),
        "{context}"
    );
}

#[tokio::test]
async fn user_text_cannot_ping_or_break_markup() {
    let rx = Receiver::default();
    let base = slack(rx.clone()).await;
    let n = Notification::new(
        Severity::Info,
        "Hi",
        "ping <!channel> & see <https://x.example|here>",
    );
    deliverer()
        .deliver(&config(&base, SECRET), &n)
        .await
        .unwrap();
    let v = rx.requests()[0].json();
    assert_eq!(
        v["blocks"][1]["text"]["text"],
        "ping &lt;!channel&gt; &amp; see &lt;https://x.example|here&gt;"
    );
}

#[tokio::test]
async fn long_or_empty_messages_still_make_valid_blocks() {
    let rx = Receiver::default();
    let base = slack(rx.clone()).await;
    // Over the 150/3000 limits: the receiver answers invalid_blocks if not cut.
    let long = Notification::new(Severity::Info, "t".repeat(200), "<&>".repeat(2000));
    deliverer()
        .deliver(&config(&base, SECRET), &long)
        .await
        .unwrap();
    // An empty section would be invalid_blocks too.
    let empty = Notification::new(Severity::Info, "Only a title", "");
    deliverer()
        .deliver(&config(&base, SECRET), &empty)
        .await
        .unwrap();
    assert_eq!(rx.requests().len(), 2);
}

#[tokio::test]
async fn a_revoked_hook_is_a_permanent_error() {
    let rx = Receiver::default();
    let base = slack(rx.clone()).await;
    let err = deliverer()
        .deliver(&config(&base, "revoked"), &notification())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.body_excerpt()),
        (Some(404), Some("no_service"))
    );
    assert!(!err.is_retryable());
}
