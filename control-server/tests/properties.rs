//! Issue 9, property tests over hostile input: arbitrary JSON (from pure
//! noise to valid requests with one field made up) and arbitrary bytes,
//! posted to every endpoint of the agent API and the hook API that reads a
//! body, never get a 5xx, never take the connection down (a panicking
//! handler would), and leave the server answering. 64 cases per endpoint
//! and kind of body, so the suite stays fast; a failure is shrunk to the
//! smallest body that shows it.

mod common;

use std::time::Duration;

use common::TestServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Map, Value, json};

const CASES: u32 = 64;

/// Keys the APIs read, so that made-up objects reach past the first check.
const KEYS: &[&str] = &[
    "events",
    "subscription",
    "id",
    "at",
    "type",
    "model",
    "kind",
    "turn_key",
    "session_id",
    "prompt_counted",
    "status",
    "outcome",
    "stop_reason",
    "usage",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "duration_ms",
    "count_reason",
    "estimated",
    "credential",
    "reason",
    "message",
    "path",
    "what",
    "restored",
    "detail",
    "quarantined",
    "observed_at",
    "windows",
    "utilization",
    "resets_at",
    "code",
    "device",
    "hostname",
    "os",
    "arch",
    "agent_version",
    "auth_token",
    "platform",
    "claude_version",
    "timestamp",
];

/// Strings the APIs give meaning to, and some that stretch them.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        Just("claude-opus-4-5".to_owned()),
        Just("request".to_owned()),
        Just("blocked".to_owned()),
        Just("tamper".to_owned()),
        Just("turn_released".to_owned()),
        Just("delivery_fault".to_owned()),
        Just("prompt".to_owned()),
        Just("completed".to_owned()),
        Just("2026-12-02T10:00:00Z".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        Just("-009999-01-01T00:00:00Z".to_owned()),
        Just("CCG-AAAA-BBBB-CCCC-DDDD".to_owned()),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}",
        (0usize..70_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text().prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key(), inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `template` with some fields replaced, removed or added.
fn mutated(template: Value) -> impl Strategy<Value = Value> {
    proptest::collection::vec((key(), proptest::option::of(json())), 1..4).prop_map(
        move |changes| {
            let mut value = template.clone();
            if let Value::Object(map) = &mut value {
                for (key, change) in changes {
                    match change {
                        Some(new) => map.insert(key, new),
                        None => map.remove(&key),
                    };
                }
            }
            value
        },
    )
}

fn request_event() -> Value {
    json!({
        "id": "6f1f7c1e-3a43-4c59-9d0b-0a5f1b2c3d4e", "at": "2026-12-02T10:00:00Z",
        "type": "request", "model": "claude-opus-4-5", "kind": "prompt", "turn_key": "s:1",
        "session_id": "s1", "prompt_counted": true, "status": 200, "outcome": "completed",
        "stop_reason": "end_turn", "duration_ms": 1200,
        "usage": { "input_tokens": 10, "output_tokens": 7,
                   "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
    })
}

/// A body for `path`: made-up JSON, or a valid request with fields changed.
fn body_for(path: &'static str) -> BoxedStrategy<Value> {
    let near_valid: BoxedStrategy<Value> = match path {
        "/api/agent/v1/events" => (
            proptest::collection::vec(mutated(request_event()), 0..4),
            proptest::option::of(json()),
        )
            .prop_map(|(events, subscription)| {
                let mut events = events;
                events.push(request_event());
                json!({ "events": events, "subscription": subscription })
            })
            .boxed(),
        "/api/agent/v1/check" => mutated(json!({
            "turn_key": "s:1", "model": "claude-opus-4-5", "session_id": "s1",
        }))
        .boxed(),
        "/api/agent/v1/sync" | "/api/agent/v1/register" => mutated(json!({
            "code": "CCG-AAAA-BBBB-CCCC-DDDD",
            "device": { "hostname": "h", "os": "linux", "arch": "x86_64", "agent_version": "1" },
        }))
        .boxed(),
        _ => mutated(json!({
            "model": "opus", "session_id": "s1", "code": "CCG-AAAA-BBBB-CCCC-DDDD",
            "hostname": "h", "platform": "linux", "timestamp": "2026-12-02T10:00:00Z",
        }))
        .boxed(),
    };
    prop_oneof![json(), near_valid].boxed()
}

/// One server per property, with a proxy device and a hook device.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    server: TestServer,
    device_token: String,
    hook_token: String,
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (server, device_token, hook_token) = runtime.block_on(async {
        let server = TestServer::start().await;
        let limits =
            json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 3 }]);
        let (user_id, device_token) = server.user_with_proxy("Prop", limits).await;
        let code = server.hook_code(user_id).await;
        let (_, answer) = common::send(
            server
                .request(reqwest::Method::POST, "/api/v1/register")
                .json(&json!({ "code": code })),
        )
        .await;
        let hook_token = answer["auth_token"].as_str().unwrap().to_owned();
        (server, device_token, hook_token)
    });
    Fixture {
        runtime,
        server,
        device_token,
        hook_token,
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

impl Fixture {
    fn token_for(&self, path: &str) -> &str {
        if path.starts_with("/api/agent/") {
            &self.device_token
        } else {
            &self.hook_token
        }
    }

    /// Posts `body` (bytes, sent as JSON) to `path`; fails on a 5xx, on a
    /// dropped connection, or when the server stops answering afterwards.
    fn post(&self, path: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
        let server = &self.server;
        let token = self.token_for(path).to_owned();
        self.runtime.block_on(async {
            let response = server
                .client
                .post(server.path(path))
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header(CONTENT_TYPE, "application/json")
                .timeout(Duration::from_secs(30))
                .body(body)
                .send()
                .await
                .map_err(|error| TestCaseError::fail(format!("{path}: no answer: {error}")))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            prop_assert!(
                !status.is_server_error(),
                "{path} answered {status}: {text}"
            );
            let health = server
                .client
                .get(server.path("/healthz"))
                .send()
                .await
                .map_err(|error| TestCaseError::fail(format!("the server stopped: {error}")))?;
            prop_assert!(health.status().is_success());
            Ok(())
        })
    }
}

const AGENT_PATHS: [&str; 4] = [
    "/api/agent/v1/events",
    "/api/agent/v1/check",
    "/api/agent/v1/sync",
    "/api/agent/v1/register",
];
const HOOK_PATHS: [&str; 4] = [
    "/api/v1/register",
    "/api/v1/sync",
    "/api/v1/check",
    "/api/v1/count",
];

fn json_bodies_never_break(paths: [&'static str; 4]) {
    let fixture = fixture();
    for path in paths {
        runner()
            .run(&body_for(path), |body| {
                fixture.post(path, serde_json::to_vec(&body).unwrap())
            })
            .unwrap_or_else(|failure| panic!("{path}: {failure}"));
    }
}

fn byte_bodies_never_break(paths: [&'static str; 4]) {
    let fixture = fixture();
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // JSON cut short or with noise in the middle.
        (json(), any::<usize>(), any::<u8>()).prop_map(|(value, at, noise)| {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                if noise % 2 == 0 {
                    bytes.truncate(at);
                } else {
                    bytes[at] = noise;
                }
            }
            bytes
        }),
    ];
    for path in paths {
        runner()
            .run(&bytes, |body| fixture.post(path, body))
            .unwrap_or_else(|failure| panic!("{path}: {failure}"));
    }
}

#[test]
fn the_agent_api_survives_arbitrary_json() {
    json_bodies_never_break(AGENT_PATHS);
}

#[test]
fn the_agent_api_survives_arbitrary_bytes() {
    byte_bodies_never_break(AGENT_PATHS);
}

#[test]
fn the_hook_api_survives_arbitrary_json() {
    json_bodies_never_break(HOOK_PATHS);
}

#[test]
fn the_hook_api_survives_arbitrary_bytes() {
    byte_bodies_never_break(HOOK_PATHS);
}

/// Every event of a batch (each with a readable id) is answered for: stored,
/// a duplicate, or refused by id with a reason. Never a whole-batch error,
/// which would make the device send the same batch forever.
#[test]
fn every_event_of_a_batch_is_answered_for() {
    let fixture = fixture();
    let batches = proptest::collection::vec(mutated(request_event()), 1..6);
    runner()
        .run(&batches, |events| {
            let ids: Vec<String> = events
                .iter()
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect();
            let events: Vec<Value> = events
                .into_iter()
                .zip(&ids)
                .map(|(mut event, id)| {
                    if !event.is_object() {
                        event = json!({});
                    }
                    event["id"] = json!(id);
                    event
                })
                .collect();
            let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
            prop_assume!(body.len() <= ccgate_quota::limits::MAX_BATCH_BYTES);
            let server = &fixture.server;
            let (status, answer) = fixture.runtime.block_on(common::send(
                server
                    .client
                    .post(server.path("/api/agent/v1/events"))
                    .bearer_auth(&fixture.device_token)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body),
            ));
            prop_assert_eq!(status, reqwest::StatusCode::OK, "{}", answer);
            let refused: Vec<&str> = answer["refused"]
                .as_array()
                .map(|list| list.iter().filter_map(|r| r["id"].as_str()).collect())
                .unwrap_or_default();
            let answered = answer["accepted"].as_u64().unwrap_or(0)
                + answer["duplicates"].as_u64().unwrap_or(0)
                + refused.len() as u64;
            prop_assert_eq!(answered, ids.len() as u64, "{}", answer);
            prop_assert!(refused.iter().all(|id| ids.iter().any(|known| known == id)));
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
