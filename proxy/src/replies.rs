//! Answers the proxy gives itself, in the Messages API's own error shape so
//! that Claude Code shows their text.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hudsucker::{Body, RequestOrResponse};

pub fn json_reply(status: StatusCode, body: &impl serde::Serialize) -> RequestOrResponse {
    let bytes = serde_json::to_vec(body).expect("replies serialize");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(Full::new(Bytes::from(bytes))))
        .expect("response builds")
        .into()
}

/// An error in the Messages API's own shape, so clients show its message.
pub fn error_reply(status: StatusCode, kind: &str, message: &str) -> RequestOrResponse {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    });
    json_reply(status, &body)
}

/// A block: 400 `invalid_request_error` with the full message, no rate-limit
/// headers (the CLI would replace the message with its own), never retried.
pub fn block_reply(message: &str) -> RequestOrResponse {
    let RequestOrResponse::Response(mut response) =
        error_reply(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    else {
        unreachable!("error_reply builds a response")
    };
    response
        .headers_mut()
        .insert("x-should-retry", HeaderValue::from_static("false"));
    response.into()
}
