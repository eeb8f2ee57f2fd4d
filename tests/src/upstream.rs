//! A fake api.anthropic.com on 127.0.0.1: TLS with a test CA, the Messages
//! API's real SSE and JSON formats, tool-use replies, slow streams, error
//! replies, mid-stream errors and dropped connections, tool calls the real
//! CLI runs (a slow Bash command, the `/loop` skill's `ScheduleWakeup`), and
//! an optional required credential. It records every request and the usage
//! it reported, so tests can compare exact sums.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Token counts a reply reports: the wire type the proxy sends on.
pub use ccgate_quota::wire::TokenUsage as Usage;

#[derive(Debug, Clone)]
pub enum Reply {
    /// A text answer, streamed in `chunks` deltas `delay` apart.
    Text {
        text: String,
        usage: Usage,
        chunks: usize,
        delay: Duration,
    },
    /// A tool call (e.g. Bash with `{"command": "echo lab"}`).
    ToolUse {
        name: String,
        input: Value,
        usage: Usage,
    },
    /// A Bash tool call whose stream holds its last events (message_delta
    /// and message_stop) until `hold` is notified: the client has the tool
    /// call's id before the proxy has seen the reply end.
    HeldToolUse {
        command: String,
        usage: Usage,
        hold: Arc<tokio::sync::Notify>,
    },
    /// An HTTP error reply in the API's shape.
    Error {
        status: u16,
        kind: String,
        message: String,
    },
    /// A stream that starts, then sends an SSE `error` event.
    MidStreamError { usage: Usage },
    /// A stream that starts, then the connection is cut.
    Drop { usage: Usage },
    /// A stream that sends `first`, then waits for `gate` before the rest:
    /// shows whether chunks pass through as they arrive.
    Gated {
        first: String,
        rest: String,
        gate: Arc<tokio::sync::Notify>,
        usage: Usage,
    },
}

impl Reply {
    /// A Bash tool call running `command`.
    pub fn bash(command: &str, usage: Usage) -> Self {
        Self::ToolUse {
            name: "Bash".into(),
            input: json!({"command": command, "description": "Run the command"}),
            usage,
        }
    }

    pub fn text(text: &str, usage: Usage) -> Self {
        Self::Text {
            text: text.to_owned(),
            usage,
            chunks: 3,
            delay: Duration::ZERO,
        }
    }

    pub fn slow_text(text: &str, usage: Usage, chunks: usize, delay: Duration) -> Self {
        Self::Text {
            text: text.to_owned(),
            usage,
            chunks,
            delay,
        }
    }

    /// The usage this reply reports to the client (what a meter should see).
    pub fn reported_usage(&self) -> Usage {
        match self {
            Self::Text { usage, .. }
            | Self::ToolUse { usage, .. }
            | Self::HeldToolUse { usage, .. }
            | Self::Gated { usage, .. } => *usage,
            // Only message_start's counts went out before the failure.
            Self::MidStreamError { usage } | Self::Drop { usage } => Usage {
                output_tokens: 1,
                ..*usage
            },
            Self::Error { .. } => Usage::default(),
        }
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub reply: Option<Reply>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The credential the request carried: `x-api-key`, else the
    /// `Authorization: Bearer` token.
    pub fn credential(&self) -> Option<String> {
        self.header("x-api-key").or_else(|| {
            self.header("authorization")
                .and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned))
        })
    }

    /// The billing fields of `system[0]` (`cc_turn_origin=…; cc_turn_index=…`).
    pub fn billing(&self) -> std::collections::BTreeMap<String, String> {
        let json = self.json();
        let first = match &json["system"] {
            Value::String(text) => text.clone(),
            Value::Array(blocks) => blocks
                .first()
                .and_then(|b| b["text"].as_str())
                .unwrap_or("")
                .to_owned(),
            _ => String::new(),
        };
        let Some(fields) = first.strip_prefix("x-anthropic-billing-header:") else {
            return Default::default();
        };
        fields
            .split(';')
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// The text of every text block (and string content) of the last
    /// `user` message, in order.
    pub fn last_user_texts(&self) -> Vec<String> {
        last_user_blocks(&self.json())
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// Whether the last `user` message holds a `tool_result` block.
    pub fn is_tool_result(&self) -> bool {
        last_user_blocks(&self.json())
            .iter()
            .any(|b| b["type"] == "tool_result")
    }

    /// The names of the tools the request offers.
    pub fn tool_names(&self) -> Vec<String> {
        self.json()["tools"]
            .as_array()
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The blocks of the last `user` message (string content as one text block).
pub fn last_user_blocks(body: &Value) -> Vec<Value> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last_user = messages.iter().rev().find(|m| m["role"] == "user");
    match last_user.map(|m| &m["content"]) {
        Some(Value::Array(blocks)) => blocks.clone(),
        Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
        _ => vec![],
    }
}

type Responder = dyn Fn(&Value) -> Reply + Send + Sync;

struct FakeState {
    queue: Mutex<VecDeque<Reply>>,
    responder: Mutex<Arc<Responder>>,
    recorded: Mutex<Vec<Recorded>>,
    rate_limit_headers: Mutex<Vec<(String, String)>>,
    required_credential: Mutex<Option<String>>,
    counter: Mutex<u64>,
}

pub struct FakeAnthropic {
    pub address: SocketAddr,
    /// The test CA, PEM, that signs the fake's certificate.
    pub ca_pem: String,
    ca_dir: tempfile::TempDir,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The default behaviour, close to a model's: tool results get a closing
/// sentence, a prompt asking to run something gets a Bash call, anything
/// else a greeting. Usage depends on the request so sums are not trivial.
///
/// A prompt asking to "run slowly" gets a Bash call to [`SLOW_COMMAND`], so a
/// person can type while the tool runs.
pub fn default_responder(body: &Value) -> Reply {
    let blocks = last_user_blocks(body);
    let tool_result = blocks.iter().any(|b| b["type"] == "tool_result");
    let text: String = blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let size = body.to_string().len() as u64;
    let usage = Usage::new(size / 40 + 7, 23, 110, 2048);
    if tool_result {
        Reply::text(
            "The tool said lab. Done.",
            Usage {
                output_tokens: 11,
                ..usage
            },
        )
    } else if text.contains("run slowly") {
        Reply::bash(
            SLOW_COMMAND,
            Usage {
                output_tokens: 37,
                ..usage
            },
        )
    } else if text.contains("run echo") {
        Reply::ToolUse {
            name: "Bash".into(),
            input: json!({"command": "echo lab", "description": "Print lab"}),
            usage: Usage {
                output_tokens: 31,
                ..usage
            },
        }
    } else {
        Reply::text("hi from the fake upstream", usage)
    }
}

/// The Bash command a "run slowly" prompt gets: long enough for a person
/// to type while it runs, short enough for a test.
pub const SLOW_COMMAND: &str = "sleep 4; echo lab";

/// The text the `/loop` skill's turn carries (its command tag).
pub const LOOP_COMMAND_TAG: &str = "<command-name>/loop</command-name>";

/// The shortest wake-up delay the CLI accepts (`ScheduleWakeup` clamps
/// `delaySeconds` to [60, 3600]).
pub const SHORTEST_WAKEUP_SECS: u64 = 60;

/// [`default_responder`], plus the `/loop` flow: the `/loop` turn and every
/// scheduled wake-up (`cc_turn_origin=scheduled`) answer with a
/// `ScheduleWakeup` call for the shortest delay the CLI allows, and the
/// tool's result gets a short closing text, so the CLI arms the next
/// wake-up and ends the turn.
pub fn loop_responder(body: &Value) -> Reply {
    let blocks = last_user_blocks(body);
    let text: String = blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let billing = body["system"][0]["text"].as_str().unwrap_or("");
    let scheduled = billing.contains("cc_turn_origin=scheduled");
    let offers_wakeup = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["name"] == "ScheduleWakeup"));
    let tool_result = blocks.iter().any(|b| b["type"] == "tool_result");
    let usage = Usage::new(body.to_string().len() as u64 / 40 + 7, 19, 0, 0);
    if tool_result && offers_wakeup && (scheduled || body.to_string().contains(LOOP_COMMAND_TAG)) {
        return Reply::text("Loop tick handled.", usage);
    }
    if offers_wakeup && (scheduled || text.contains(LOOP_COMMAND_TAG)) {
        return Reply::ToolUse {
            name: "ScheduleWakeup".into(),
            input: json!({
                "delaySeconds": SHORTEST_WAKEUP_SECS,
                "reason": "check the lab again",
                "prompt": "/loop check the lab",
            }),
            usage,
        };
    }
    default_responder(body)
}

impl FakeAnthropic {
    pub async fn start() -> Self {
        let (ca_pem, server_config) = test_tls();
        let ca_dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(ca_dir.path().join("upstream-ca.pem"), &ca_pem).expect("write CA");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let address = listener.local_addr().expect("address");
        let state = Arc::new(FakeState {
            queue: Mutex::new(VecDeque::new()),
            responder: Mutex::new(Arc::new(default_responder)),
            recorded: Mutex::new(Vec::new()),
            rate_limit_headers: Mutex::new(Vec::new()),
            required_credential: Mutex::new(None),
            counter: Mutex::new(0),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let state = task_state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            address,
            ca_pem,
            ca_dir,
            state,
            task,
        }
    }

    /// `HOST:PORT` for `CCGATE_UPSTREAM_CONNECT_TO`.
    pub fn connect_to(&self) -> String {
        self.address.to_string()
    }

    /// A file holding the test CA, for `CCGATE_UPSTREAM_CA_FILE`.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.ca_dir.path().join("upstream-ca.pem")
    }

    /// The next Messages request gets this reply (before the responder).
    pub fn push_reply(&self, reply: Reply) {
        self.state.queue.lock().unwrap().push_back(reply);
    }

    pub fn set_responder(&self, responder: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        *self.state.responder.lock().unwrap() = Arc::new(responder);
    }

    /// Every request whose `x-api-key` or `Authorization: Bearer` is not
    /// `secret` gets 401 `authentication_error` (and is still recorded);
    /// `None` accepts any credential.
    pub fn set_required_credential(&self, secret: Option<&str>) {
        *self.state.required_credential.lock().unwrap() = secret.map(str::to_owned);
    }

    /// The credentials that arrived, one per request, in order (`None` for a
    /// request without one).
    pub fn credentials_seen(&self) -> Vec<Option<String>> {
        self.requests().iter().map(Recorded::credential).collect()
    }

    /// Headers added to every Messages reply (e.g. unified rate limits).
    pub fn set_rate_limit_headers(&self, headers: &[(&str, &str)]) {
        *self.state.rate_limit_headers.lock().unwrap() = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.recorded.lock().unwrap().clone()
    }

    /// The Messages requests received.
    pub fn messages_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/messages")
            .collect()
    }

    /// Total usage the fake reported to its clients.
    pub fn reported_usage(&self) -> Usage {
        let mut total = Usage::default();
        for request in self.requests() {
            if let Some(reply) = &request.reply {
                total += reply.reported_usage();
            }
        }
        total
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

async fn handle(state: Arc<FakeState>, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let mut recorded = Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
        reply: None,
    };
    let required = state.required_credential.lock().unwrap().clone();
    if let Some(secret) = required
        && recorded.credential().as_deref() != Some(secret.as_str())
    {
        let reply = Reply::Error {
            status: 401,
            kind: "authentication_error".into(),
            message: "invalid x-api-key".into(),
        };
        recorded.reply = Some(reply);
        state.recorded.lock().unwrap().push(recorded);
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("content-type", "application/json")
            .header("request-id", "req_fake_unauthorized")
            .header("x-should-retry", "false")
            .body(full(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            ))
            .unwrap();
    }
    if path != "/v1/messages" {
        state.recorded.lock().unwrap().push(recorded);
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("content-type", "application/json")
            .body(full(
                r#"{"type":"error","error":{"type":"not_found_error","message":"not found"}}"#,
            ))
            .unwrap();
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = {
        let queued = state.queue.lock().unwrap().pop_front();
        queued.unwrap_or_else(|| {
            let responder = state.responder.lock().unwrap().clone();
            responder(&json)
        })
    };
    recorded.reply = Some(reply.clone());
    state.recorded.lock().unwrap().push(recorded);
    let number = {
        let mut counter = state.counter.lock().unwrap();
        *counter += 1;
        *counter
    };
    let model = json["model"]
        .as_str()
        .unwrap_or("claude-opus-5-5")
        .to_owned();
    let stream = json["stream"].as_bool().unwrap_or(false);
    let mut builder = Response::builder().header("request-id", format!("req_fake_{number}"));
    for (name, value) in state.rate_limit_headers.lock().unwrap().iter() {
        builder = builder.header(name, value);
    }
    if let Reply::Error {
        status,
        kind,
        message,
    } = &reply
    {
        let body = json!({"type": "error", "error": {"type": kind, "message": message}});
        return builder
            .status(*status)
            .header("content-type", "application/json")
            .header("x-should-retry", "false")
            .body(full(body.to_string()))
            .unwrap();
    }
    if !stream {
        return builder
            .status(200)
            .header("content-type", "application/json")
            .body(full(json_message(&reply, &model, number).to_string()))
            .unwrap();
    }
    let (sender, receiver) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(write_stream(sender, reply, model, number));
    builder
        .status(200)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(BoxBody::new(StreamBody::new(ReceiverStream::new(receiver))))
        .unwrap()
}

fn event(name: &str, data: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn usage_json(usage: Usage, output: u64) -> Value {
    json!({
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": output,
    })
}

fn json_message(reply: &Reply, model: &str, number: u64) -> Value {
    let (content, stop, usage) = match reply {
        Reply::ToolUse { name, input, usage } => (
            json!([{"type": "tool_use", "id": format!("toolu_fake_{number}"), "name": name, "input": input}]),
            "tool_use",
            *usage,
        ),
        Reply::HeldToolUse { command, usage, .. } => (
            json!([{"type": "tool_use", "id": format!("toolu_fake_{number}"), "name": "Bash", "input": {"command": command}}]),
            "tool_use",
            *usage,
        ),
        Reply::Text { text, usage, .. } => {
            (json!([{"type": "text", "text": text}]), "end_turn", *usage)
        }
        Reply::Gated {
            first, rest, usage, ..
        } => (
            json!([{"type": "text", "text": format!("{first}{rest}")}]),
            "end_turn",
            *usage,
        ),
        Reply::MidStreamError { usage } | Reply::Drop { usage } => (
            json!([{"type": "text", "text": "fallback answer"}]),
            "end_turn",
            *usage,
        ),
        Reply::Error { .. } => unreachable!("errors are answered before"),
    };
    json!({
        "id": format!("msg_fake_{number}"), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": usage_json(usage, usage.output_tokens),
    })
}

async fn write_stream(
    sender: mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
    reply: Reply,
    model: String,
    number: u64,
) {
    let send = |bytes: Bytes| {
        let sender = sender.clone();
        async move { sender.send(Ok(Frame::data(bytes))).await.is_ok() }
    };
    let usage = match &reply {
        Reply::Text { usage, .. }
        | Reply::ToolUse { usage, .. }
        | Reply::HeldToolUse { usage, .. }
        | Reply::MidStreamError { usage }
        | Reply::Drop { usage }
        | Reply::Gated { usage, .. } => *usage,
        Reply::Error { .. } => return,
    };
    let start = json!({"type": "message_start", "message": {
        "id": format!("msg_fake_{number}"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage_json(usage, 1)}});
    if !send(event("message_start", start)).await {
        return;
    }
    let _ = send(event("ping", json!({"type": "ping"}))).await;
    let stop_reason = match &reply {
        Reply::Text {
            text,
            chunks,
            delay,
            ..
        } => {
            let _ = send(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))).await;
            let pieces = split_text(text, (*chunks).max(1));
            for piece in pieces {
                if !delay.is_zero() {
                    tokio::time::sleep(*delay).await;
                }
                let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}});
                if !send(event("content_block_delta", delta)).await {
                    return;
                }
            }
            let _ = send(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ))
            .await;
            "end_turn"
        }
        Reply::Gated {
            first, rest, gate, ..
        } => {
            let _ = send(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))).await;
            for piece in [first, rest] {
                let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}});
                if !send(event("content_block_delta", delta)).await {
                    return;
                }
                if piece == first {
                    gate.notified().await;
                }
            }
            let _ = send(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ))
            .await;
            "end_turn"
        }
        Reply::ToolUse { name, input, .. } => {
            for frame in tool_use_block(name, input, number) {
                let _ = send(frame).await;
            }
            "tool_use"
        }
        Reply::HeldToolUse { command, hold, .. } => {
            for frame in tool_use_block("Bash", &json!({"command": command}), number) {
                let _ = send(frame).await;
            }
            hold.notified().await;
            "tool_use"
        }
        Reply::MidStreamError { .. } => {
            let _ = send(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))).await;
            let _ = send(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial "}}))).await;
            let _ = send(event("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))).await;
            return;
        }
        Reply::Drop { .. } => {
            let _ = send(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))).await;
            let _ = send(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial "}}))).await;
            // Let the frames reach the client before the cut.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = sender
                .send(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut",
                )))
                .await;
            return;
        }
        Reply::Error { .. } => return,
    };
    let delta = json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": usage.output_tokens}});
    let _ = send(event("message_delta", delta)).await;
    let _ = send(event("message_stop", json!({"type": "message_stop"}))).await;
}

/// A tool_use content block, as three SSE events.
fn tool_use_block(name: &str, input: &Value, number: u64) -> [Bytes; 3] {
    let start = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": format!("toolu_fake_{number}"), "name": name, "input": {}}});
    let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}});
    let stop = json!({"type": "content_block_stop", "index": 0});
    [
        event("content_block_start", start),
        event("content_block_delta", delta),
        event("content_block_stop", stop),
    ]
}

fn split_text(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A test CA and a certificate for api.anthropic.com signed by it.
fn test_tls() -> (String, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ccgate tests: fake Anthropic CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params = CertificateParams::default();
    leaf_params.subject_alt_names = vec![SanType::DnsName("api.anthropic.com".try_into().unwrap())];
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    )
    .expect("server config");
    (ca_cert.pem(), config)
}
