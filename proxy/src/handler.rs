//! The hudsucker handler: routes each request seen by the proxy. Only
//! api.anthropic.com is intercepted, and there only the allow-listed
//! endpoints pass ([`crate::routes`]): the Messages API is classified,
//! gated and metered; Claude Code's other calls are forwarded. Every other
//! host is tunnelled untouched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ccgate_quota::wire::{
    AgentEvent, BlockedEvent, CountReason, EventBody, Outcome, SubscriptionUsage,
};
use ccgate_quota::{DenyReason, GateKind, ModelFamily};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use http_body_util::combinators::BoxBody;
use hudsucker::{Body, HttpContext, HttpHandler, RequestOrResponse};
use tokio::sync::OwnedSemaphorePermit;

use crate::classify::{LastUser, RequestFacts};
use crate::credential::CredentialRefusal;
use crate::gate::Verdict;
use crate::meter::Reading;
use crate::replies::{block_reply, error_reply};
use crate::request_body::{BodyRead, read_body};
use crate::routes::{self, Route};
use crate::state::{Exchange, Shared};
use crate::tap::{Ending, TapBody};
use crate::turns::Resolution;

/// How long a tool result waits for its session's replies to be recorded:
/// far longer than the race it covers (an fsync), short enough that a
/// forged result behind a long stream is not held up for long.
const REPLY_SETTLE_WAIT: Duration = Duration::from_secs(5);

pub use crate::local::SYNC_PATH;

pub struct GateHandler {
    shared: Arc<Shared>,
    /// Refuse to tunnel any other host (tests must not reach the internet).
    refuse_other_hosts: bool,
    /// Set by `handle_request` for the reply to meter (hudsucker clones the
    /// handler per request, so this belongs to one request).
    exchange: Option<(Exchange, Instant)>,
}

/// hudsucker clones the handler for each request: a clone starts empty.
impl Clone for GateHandler {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            refuse_other_hosts: self.refuse_other_hosts,
            exchange: None,
        }
    }
}

impl Drop for GateHandler {
    /// The request was abandoned after it went to Anthropic and before the
    /// reply began (the client went away): it is metered all the same.
    fn drop(&mut self) {
        if let Some((exchange, started)) = self.exchange.take() {
            self.shared.endings.send(Ending {
                exchange,
                status: 0,
                outcome: Outcome::ClientAborted,
                reading: Reading::default(),
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
    }
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
        // Held until the request is on its way: its body is in memory.
        let (bytes, _room) = match self.read_body(&parts, body).await {
            Ok(read) => read,
            Err(reply) => return reply,
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
        let family = ModelFamily::from_model_id(&facts.model);
        let policy = self.shared.policy();
        let credential = match self
            .shared
            .vault
            .apply(policy.as_deref().map(|p| &p.policy), &mut parts.headers)
        {
            Ok(credential) => credential,
            // A paused or revoked person gets the gate's full text.
            Err(CredentialRefusal::Stopped(_)) => {
                let gate = self.shared.gate();
                let verdict = gate.locally(family, GateKind::Continuation, None);
                let message = match verdict {
                    Verdict::Block { message, .. } => message,
                    Verdict::Pass { .. } => "ccgate stopped this request.".to_owned(),
                };
                return block_reply(&message);
            }
            Err(refusal) => {
                let message = refusal.to_string();
                self.record_block(&facts, None, DenyReason::Credential, &message, false);
                return block_reply(&message);
            }
        };
        let rules = self.shared.policy_state.turn_rules();
        let resolve = || {
            self.shared
                .accounting
                .resolve(&facts, &rules, self.shared.now())
        };
        let session = facts.session_id.as_deref().unwrap_or("-");
        let mut resolution = resolve();
        if self.awaits_its_reply(&resolution, &facts, session).await {
            resolution = resolve();
        }
        // One prompt of a session through the gate at a time. Copies of a
        // prompt sent side by side wait for the first, then find it
        // reserved; a side call (a title) sent while its session's prompt is
        // at the gate waits, then finds the turn it belongs to.
        let _prompt_lock = match &resolution {
            Resolution::Prompt { key, .. } => {
                let lock = facts.session_id.as_deref().unwrap_or(&key.base);
                let guard = self.shared.prompt_locks.lock(lock).await;
                resolution = resolve();
                Some(guard)
            }
            _ => None,
        };
        match self.shared.gate().decide(&resolution, &facts, family).await {
            Verdict::Block {
                reason,
                message,
                decided_offline,
                by_server,
            } => {
                let message = with_context(&resolution, &rules.limits, message);
                // The server records the blocks it decides itself.
                if !by_server {
                    self.record_block(&facts, Some(&resolution), reason, &message, decided_offline);
                }
                block_reply(&message)
            }
            Verdict::Pass { decided_offline } => {
                self.exchange = Some((
                    Exchange {
                        model: facts.model.clone(),
                        family,
                        resolution,
                        session_id: facts.session_id.clone(),
                        stream: facts.stream,
                        decided_offline,
                        credential,
                        account: facts.account.clone(),
                        utilization: None,
                        request_bytes: bytes.len(),
                        open: self.shared.open_replies.open(session),
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

    /// A tool result the books cannot place while a reply of its session
    /// is still being recorded waits for that reply (see
    /// [`crate::open_replies`]); returns whether it waited.
    async fn awaits_its_reply(
        &self,
        resolution: &Resolution,
        facts: &RequestFacts,
        session: &str,
    ) -> bool {
        let unplaced = matches!(
            resolution,
            Resolution::Prompt {
                reason: CountReason::Unconfirmed,
                ..
            }
        ) && matches!(
            facts.shape.last_user,
            LastUser::ToolResults { .. } | LastUser::TypedDuringTurn { .. }
        );
        if !unplaced || !self.shared.open_replies.any_open(session) {
            return false;
        }
        if !self
            .shared
            .open_replies
            .settled(session, REPLY_SETTLE_WAIT)
            .await
        {
            tracing::debug!("a tool result waited {REPLY_SETTLE_WAIT:?} for its session's replies");
        }
        true
    }

    async fn read_body(
        &self,
        parts: &http::request::Parts,
        body: Body,
    ) -> Result<(Bytes, Option<OwnedSemaphorePermit>), RequestOrResponse> {
        let limit = self.shared.config.max_request_bytes();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let Ok(room) = self.shared.body_budget.reserve(declared, limit).await else {
            return Err(busy_reply());
        };
        match read_body(body, limit, declared).await {
            Ok(bytes) => Ok((bytes, room)),
            Err(BodyRead::TooLarge) => Err(error_reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &format!(
                    "ccgate refused this request: its body is larger than {} MB.",
                    self.shared.config.max_request_mb
                ),
            )),
            Err(BodyRead::Broken(error)) => Err(error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("ccgate could not read the request body: {error}"),
            )),
        }
    }

    /// A CONNECT to another host, tunnelled untouched through the network's
    /// proxy (hudsucker would dial it directly, which such a network refuses).
    fn tunnel_through_egress(&self, mut request: Request<Body>) -> RequestOrResponse {
        let Some(authority) = request.uri().authority().map(ToString::to_string) else {
            return error_reply(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "CONNECT without a target",
            );
        };
        let egress = self.shared.egress.clone();
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let client = hyper_util::rt::TokioIo::new(upgraded);
                    if let Err(error) = egress.tunnel(client, &authority).await {
                        tracing::debug!(%authority, "tunnel through the upstream proxy ended: {error}");
                    }
                }
                Err(error) => tracing::warn!(%authority, "CONNECT upgrade failed: {error}"),
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .expect("response builds")
            .into()
    }

    /// Claude Code's other calls: the credential swapped in (team mode), else untouched.
    fn forward(&self, mut request: Request<Body>) -> RequestOrResponse {
        let policy = self.shared.policy();
        match self
            .shared
            .vault
            .apply(policy.as_deref().map(|p| &p.policy), request.headers_mut())
        {
            Ok(_) => request.into(),
            Err(refusal) => error_reply(
                StatusCode::FORBIDDEN,
                "permission_error",
                &refusal.to_string(),
            ),
        }
    }

    fn record_block(
        &self,
        facts: &RequestFacts,
        resolution: Option<&Resolution>,
        reason: DenyReason,
        message: &str,
        decided_offline: bool,
    ) {
        let kind = resolution.map_or(ccgate_quota::wire::RequestKind::Prompt, Resolution::kind);
        tracing::info!(reason = reason.as_str(), kind = kind.as_str(), "blocked");
        let event = AgentEvent {
            id: uuid::Uuid::now_v7(),
            at: self.shared.now(),
            body: EventBody::Blocked(BlockedEvent {
                model: facts.model.clone(),
                kind,
                turn_key: resolution.map(|r| r.key().to_string()),
                reason,
                message: message.to_owned(),
                decided_offline,
            }),
        };
        self.shared.store_event_in_background(event);
    }

    /// A request ccgate does not forward at all, reported so admins see tries.
    fn record_refusal(&self, message: &str) {
        let event = AgentEvent {
            id: uuid::Uuid::now_v7(),
            at: self.shared.now(),
            body: EventBody::Blocked(BlockedEvent {
                model: String::new(),
                kind: ccgate_quota::wire::RequestKind::Background,
                turn_key: None,
                reason: DenyReason::PathNotAllowed,
                message: message.to_owned(),
                decided_offline: false,
            }),
        };
        self.shared.store_event_in_background(event);
    }
}

/// Too many large requests at once: Claude Code retries a 503 by itself.
fn busy_reply() -> RequestOrResponse {
    let mut reply = error_reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded_error",
        "ccgate is reading too many large requests at once; try again in a moment.",
    );
    if let RequestOrResponse::Response(response) = &mut reply {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    reply
}

/// A block of a request that counts as a new prompt for a reason the person
/// may not expect says so first.
fn with_context(
    resolution: &Resolution,
    limits: &ccgate_quota::TurnLimits,
    message: String,
) -> String {
    let why = match resolution.count_reason() {
        Some(CountReason::TurnCap) => format!(
            "This turn went past ccgate's per-turn allowance ({} requests or {} tokens), so its next request counts as a new prompt. ",
            limits.max_requests_per_turn,
            ccgate_quota::thousands(limits.max_tokens_per_turn)
        ),
        Some(CountReason::RewrittenTurn) => {
            "A turn sent again with other text (a rewind, or a resume at an earlier message) counts as a new prompt. ".to_owned()
        }
        _ => return message,
    };
    if matches!(resolution, Resolution::Prompt { .. }) && message.starts_with("ccgate blocked") {
        format!("{why}{message}")
    } else {
        message
    }
}

impl HttpHandler for GateHandler {
    async fn handle_request(
        &mut self,
        _ctx: &HttpContext,
        request: Request<Body>,
    ) -> RequestOrResponse {
        let host = request.uri().host().map(str::to_owned);
        let anthropic = host.as_deref().is_some_and(routes::is_anthropic_host);
        if request.method() == Method::CONNECT {
            if self.refuse_other_hosts && !anthropic {
                tracing::warn!(?host, "refused a tunnel to another host");
                return Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .body(Body::empty())
                    .expect("response builds")
                    .into();
            }
            if !anthropic && !self.shared.egress.is_direct() {
                return self.tunnel_through_egress(request);
            }
            return request.into();
        }
        if host.is_none() {
            return self.shared.local.answer(&self.shared, &request);
        }
        if !anthropic {
            if self.refuse_other_hosts {
                return error_reply(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    "host not allowed",
                );
            }
            return request.into();
        }
        match routes::route(request.method(), request.uri()) {
            Ok((route, canonical)) => {
                let (mut parts, body) = request.into_parts();
                parts.uri = canonical;
                let request = Request::from_parts(parts, body);
                match route {
                    Route::Messages => self.messages(request).await,
                    Route::Forward => self.forward(request),
                }
            }
            Err(refusal) => {
                let message = refusal.to_string();
                let path = request.uri().path();
                tracing::warn!(method = %request.method(), path, "refused");
                if self
                    .shared
                    .refusals
                    .report(request.method(), path, self.shared.now())
                {
                    self.record_refusal(&message);
                }
                error_reply(StatusCode::FORBIDDEN, "permission_error", &message)
            }
        }
    }

    async fn handle_response(
        &mut self,
        _ctx: &HttpContext,
        response: Response<Body>,
    ) -> Response<Body> {
        let Some((mut exchange, started)) = self.exchange.take() else {
            return response;
        };
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        if let Some(usage) = SubscriptionUsage::from_headers(headers, self.shared.now()) {
            // Kept with the request's event (the history and its share of
            // the window) and as the latest figure (status, old servers).
            self.shared.subscription.observe(usage.clone());
            exchange.utilization = Some(usage);
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
        request.uri().host().is_some_and(routes::is_anthropic_host)
    }
}
