//! The hudsucker handler: routes each request seen by the proxy. Only
//! api.anthropic.com is intercepted; the Messages API is gated and metered,
//! everything else passes untouched.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ccgate_quota::DenyReason;
use ccgate_quota::wire::{AgentEvent, BlockedEvent, EventBody, Outcome, SubscriptionUsage};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hudsucker::{Body, HttpContext, HttpHandler, RequestOrResponse};

use crate::ca::ANTHROPIC_HOST;
use crate::classify::{RequestFacts, classify};
use crate::meter::Reading;
use crate::state::{Exchange, Shared, Verdict};
use crate::status::{STATUS_PATH, StatusReport};

/// Asks the daemon to sync with the server now (`ccgate sync`).
pub const SYNC_PATH: &str = "/ccgate/sync";
use crate::tap::{Ending, TapBody};
use crate::turns::Resolution;

#[derive(Clone)]
pub struct GateHandler {
    shared: Arc<Shared>,
    /// Refuse to tunnel any other host (tests must not reach the internet).
    refuse_other_hosts: bool,
    /// Set by `handle_request` for the reply to meter (hudsucker clones the
    /// handler per request, so this belongs to one request).
    exchange: Option<(Exchange, Instant)>,
}

impl GateHandler {
    pub fn new(shared: Arc<Shared>, refuse_other_hosts: bool) -> Self {
        Self {
            shared,
            refuse_other_hosts,
            exchange: None,
        }
    }

    async fn messages(&mut self, request: Request<Body>) -> RequestOrResponse {
        let started = Instant::now();
        let (mut parts, body) = request.into_parts();
        if parts.headers.contains_key(CONTENT_ENCODING) {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "ccgate cannot read a compressed request body, so it cannot let it through.",
            );
        }
        let limit = self.shared.config.max_request_bytes();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let bytes = match read_body(body, limit, declared).await {
            Ok(bytes) => bytes,
            Err(BodyRead::TooLarge) => {
                return error_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    &format!(
                        "ccgate refused this request: its body is larger than {} MB.",
                        self.shared.config.max_request_mb
                    ),
                );
            }
            Err(BodyRead::Broken(error)) => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    &format!("ccgate could not read the request body: {error}"),
                );
            }
        };
        if let Some(agent) = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            self.shared.observe_user_agent(agent);
        }
        let facts = match RequestFacts::read(&parts.headers, &bytes) {
            Ok(facts) => facts,
            Err(error) => {
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    &format!(
                        "ccgate could not read this request, so it cannot let it through: {error}"
                    ),
                );
            }
        };
        let resolution = self
            .shared
            .turns
            .lock()
            .expect("turns lock")
            .resolve(&classify(&facts));
        let family = ccgate_quota::ModelFamily::from_model_id(&facts.model);
        match self.shared.gate(&resolution, &facts, family).await {
            Verdict::Block {
                reason,
                message,
                decided_offline,
                by_server,
            } => {
                // The server records the blocks it decides itself.
                if !by_server {
                    self.record_block(&facts, &resolution, reason, &message, decided_offline);
                }
                block_reply(&message)
            }
            Verdict::Pass { decided_offline } => {
                self.exchange = Some((
                    Exchange {
                        model: facts.model.clone(),
                        family,
                        kind: resolution.kind(),
                        turn_key: resolution.turn_key().map(str::to_owned),
                        session_id: facts.session_id.clone(),
                        prompt_attempt: matches!(
                            resolution,
                            Resolution::NewPrompt { .. } | Resolution::PromptRetry { .. }
                        ),
                        stream: facts.stream,
                        decided_offline,
                    },
                    started,
                ));
                // The meter reads usage from the reply; ask for it uncompressed.
                parts
                    .headers
                    .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
                Request::from_parts(parts, Body::from(Full::new(bytes))).into()
            }
        }
    }

    fn record_block(
        &self,
        facts: &RequestFacts,
        resolution: &Resolution,
        reason: DenyReason,
        message: &str,
        decided_offline: bool,
    ) {
        tracing::info!(
            reason = reason.as_str(),
            kind = resolution.kind().as_str(),
            "blocked"
        );
        let event = AgentEvent {
            id: uuid::Uuid::now_v7(),
            at: self.shared.now(),
            body: EventBody::Blocked(BlockedEvent {
                model: facts.model.clone(),
                kind: resolution.kind(),
                turn_key: resolution.turn_key().map(str::to_owned),
                reason,
                message: message.to_owned(),
                decided_offline,
            }),
        };
        self.shared.store_event_in_background(event);
    }

    fn local(&self, request: &Request<Body>) -> RequestOrResponse {
        match (request.method(), request.uri().path()) {
            (&Method::GET, STATUS_PATH) => {
                let report = StatusReport::collect(&self.shared);
                json_reply(StatusCode::OK, &report)
            }
            // `ccgate sync`: pull the policy now (harmless, so no auth).
            (&Method::POST, SYNC_PATH) => {
                self.shared.sync_wakeup.notify_one();
                json_reply(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({"sync": "requested"}),
                )
            }
            _ => error_reply(
                StatusCode::NOT_FOUND,
                "not_found_error",
                "This is ccgate's proxy. Local endpoints: GET /ccgate/status, POST /ccgate/sync.",
            ),
        }
    }
}

impl HttpHandler for GateHandler {
    async fn handle_request(
        &mut self,
        _ctx: &HttpContext,
        request: Request<Body>,
    ) -> RequestOrResponse {
        let host = request.uri().host().map(str::to_owned);
        if request.method() == Method::CONNECT {
            if self.refuse_other_hosts && host.as_deref() != Some(ANTHROPIC_HOST) {
                tracing::warn!(?host, "refused a tunnel to another host");
                return Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .body(Body::empty())
                    .expect("response builds")
                    .into();
            }
            return request.into();
        }
        let Some(host) = host else {
            return self.local(&request);
        };
        if host != ANTHROPIC_HOST {
            if self.refuse_other_hosts {
                return error_reply(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    "host not allowed",
                );
            }
            return request.into();
        }
        let path = request.uri().path();
        if path.starts_with("/v1/messages/batches") {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "ccgate does not allow message batches: their usage cannot be metered per person.",
            );
        }
        if request.method() == Method::POST && (path == "/v1/messages" || path == "/v1/complete") {
            return self.messages(request).await;
        }
        request.into()
    }

    async fn handle_response(
        &mut self,
        _ctx: &HttpContext,
        response: Response<Body>,
    ) -> Response<Body> {
        let Some((exchange, started)) = self.exchange.take() else {
            return response;
        };
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        if let Some(usage) = SubscriptionUsage::from_headers(headers, self.shared.now()) {
            self.shared.observe_subscription(usage);
        }
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (parts, body) = response.into_parts();
        let tap = TapBody::new(
            body,
            content_type.as_deref(),
            status,
            exchange,
            started,
            self.shared.endings.clone(),
            self.shared.streams.register(),
        );
        Response::from_parts(parts, Body::from(BoxBody::new(tap)))
    }

    async fn handle_error(
        &mut self,
        _ctx: &HttpContext,
        error: hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        let detail = crate::link::error_chain(&error);
        tracing::warn!("cannot reach api.anthropic.com: {detail}");
        if let Some((exchange, started)) = self.exchange.take() {
            self.shared.endings.send(Ending {
                exchange,
                status: 502,
                outcome: Outcome::UpstreamError,
                reading: Reading::default(),
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
        let RequestOrResponse::Response(response) = error_reply(
            StatusCode::BAD_GATEWAY,
            "api_error",
            &format!("ccgate could not reach api.anthropic.com: {detail}"),
        ) else {
            unreachable!("error_reply builds a response")
        };
        response
    }

    async fn should_intercept_connect(
        &mut self,
        _ctx: &HttpContext,
        request: &Request<Body>,
    ) -> bool {
        request.uri().host() == Some(ANTHROPIC_HOST)
    }
}

enum BodyRead {
    TooLarge,
    Broken(String),
}

/// Past this, an oversized body is no longer read to the end: the
/// connection is closed instead.
const DRAIN_LIMIT: usize = 512 << 20;

/// Reads a request body of at most `limit` bytes. A larger one is read to
/// its end and dropped (up to [`DRAIN_LIMIT`]) so that the client, still
/// sending, receives the refusal instead of a broken pipe.
async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<usize>,
) -> Result<Bytes, BodyRead> {
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    let mut too_large = declared.is_some_and(|length| length > limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRead::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        too_large |= seen > limit;
        if too_large {
            if seen > DRAIN_LIMIT {
                break;
            }
            kept.clear();
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(BodyRead::TooLarge)
    } else {
        Ok(kept.freeze())
    }
}

fn json_reply(status: StatusCode, body: &impl serde::Serialize) -> RequestOrResponse {
    let bytes = serde_json::to_vec(body).expect("replies serialize");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(Full::new(Bytes::from(bytes))))
        .expect("response builds")
        .into()
}

/// An error in the Messages API's own shape, so clients show its message.
fn error_reply(status: StatusCode, kind: &str, message: &str) -> RequestOrResponse {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    });
    json_reply(status, &body)
}

/// A block: 400 `invalid_request_error` with the full message, no rate-limit
/// headers (the CLI would replace the message with its own), never retried.
fn block_reply(message: &str) -> RequestOrResponse {
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
