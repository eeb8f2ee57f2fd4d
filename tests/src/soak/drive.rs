//! Drives a real proxy as Claude Code would: sessions of prompts (some ask
//! for a tool, whose result continues the turn) through the proxy to the
//! fake Anthropic, each turn retried like the CLI retries until it
//! completes. On request, lane 0 opens a slow stream and says when its
//! first bytes arrived, so the soak can kill the daemon mid-stream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccgate_tests::client::{Answer, Turn};
use ccgate_tests::upstream::{Reply, Usage, default_responder, last_user_blocks};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use super::rng::Rng;
use super::sim::Tally;

/// Text of a prompt whose reply streams slowly (40 deltas, 50 ms apart).
const SLOW: &str = "stream slowly";

/// The fake Anthropic's answers: [`default_responder`], plus a slow stream
/// for prompts that ask for one.
pub fn responder(body: &Value) -> Reply {
    let slow = last_user_blocks(body)
        .iter()
        .filter_map(|b| b["text"].as_str())
        .any(|text| text.contains(SLOW));
    let tool_result = last_user_blocks(body)
        .iter()
        .any(|b| b["type"] == "tool_result");
    if slow && !tool_result {
        return Reply::slow_text(
            &"slowly ".repeat(40),
            Usage::new(120, 40, 0, 0),
            40,
            Duration::from_millis(50),
        );
    }
    default_responder(body)
}

/// Asks lane 0 of a driver for a slow stream; answered with the turn key
/// once its first bytes came through the proxy.
pub struct KillRequest {
    pub streaming: oneshot::Sender<String>,
}

#[derive(Default)]
pub struct DriverStats {
    /// (proxy, turn key) of every turn that completed.
    pub completed: Mutex<Vec<(usize, String)>>,
    /// (proxy, turn key, last failure) of turns given up on.
    pub abandoned: Mutex<Vec<(usize, String, String)>>,
    /// Attempts by outcome: `ok`, `cut`, `http 503`, `connect`, …
    pub attempts: Tally,
    /// Requests that completed (`proxy N`), to hold against the ledgers.
    pub completed_requests: Tally,
}

const MAX_ATTEMPTS: u32 = 40;
const TURN_LIMIT: Duration = Duration::from_secs(120);

#[allow(clippy::too_many_arguments)]
pub async fn lane(
    proxy: usize,
    lane: usize,
    address: SocketAddr,
    ca_pem: Vec<u8>,
    mut rng: Rng,
    think: Duration,
    tool_time: Duration,
    stats: Arc<DriverStats>,
    mut kills: Option<mpsc::Receiver<KillRequest>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{address}"))?)
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_pem)?])
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut session = 0u32;
    let mut index = 0u64;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let request = kills.as_mut().and_then(|k| k.try_recv().ok());
        if request.is_none() {
            tokio::select! {
                _ = tokio::time::sleep(rng.exponential(think)) => {}
                _ = stop.changed() => return Ok(()),
            }
        }
        if session == 0 || rng.chance(0.05) {
            session += 1;
            index = 0;
        }
        index += 1;
        let session_id = format!("soak-p{proxy}-l{lane}-s{session}");
        let text = if request.is_some() {
            format!("{SLOW} please, turn {index}")
        } else if rng.chance(0.3) {
            format!("please run echo lab, turn {index}")
        } else {
            format!("hello, turn {index}")
        };
        let turn = Turn::prompt(&session_id, index, &text);
        let key = format!("{session_id}:{index}");
        let signal = request.map(|r| r.streaming);
        match run_turn(
            &client, &turn, &key, signal, tool_time, proxy, &stats, &mut rng,
        )
        .await
        {
            Ok(()) => stats.completed.lock().unwrap().push((proxy, key)),
            Err(last) => stats.abandoned.lock().unwrap().push((proxy, key, last)),
        }
    }
}

/// Sends a turn until its prompt (and the continuation its tool call asks
/// for) complete; the last failure if it gives up.
#[allow(clippy::too_many_arguments)]
async fn run_turn(
    client: &reqwest::Client,
    turn: &Turn,
    key: &str,
    mut signal: Option<oneshot::Sender<String>>,
    tool_time: Duration,
    proxy: usize,
    stats: &DriverStats,
    rng: &mut Rng,
) -> Result<(), String> {
    let attempts = &stats.attempts;
    let deadline = tokio::time::Instant::now() + TURN_LIMIT;
    let mut current = turn.clone();
    let mut last = String::new();
    let mut failures = 0u32;
    while failures < MAX_ATTEMPTS && tokio::time::Instant::now() < deadline {
        match send(client, &current, key, &mut signal).await {
            Ok(answer) if answer.status == 200 && answer.body.contains("message_stop") => {
                attempts.add("ok", 1);
                stats.completed_requests.add(format!("proxy {proxy}"), 1);
                if current.tool_result.is_none() && !answer.tool_use_ids().is_empty() {
                    // The tool runs, then its result continues the turn.
                    tokio::time::sleep(tool_time).await;
                    current = current.continuation(&answer);
                    continue;
                }
                return Ok(());
            }
            Ok(answer) => {
                last = if answer.status == 200 {
                    "cut".to_owned()
                } else {
                    format!("http {}: {}", answer.status, answer.error_message())
                };
                attempts.add(
                    if answer.status == 200 {
                        "cut".to_owned()
                    } else {
                        format!("http {}", answer.status)
                    },
                    1,
                );
            }
            Err(kind) => {
                attempts.add(kind.clone(), 1);
                last = kind;
            }
        }
        failures += 1;
        let backoff = Duration::from_millis(100 * (1u64 << failures.min(6)));
        tokio::time::sleep(rng.between(backoff / 2, backoff.min(Duration::from_secs(5)))).await;
    }
    Err(last)
}

/// One request through the proxy, read to its end (or its cut).
async fn send(
    client: &reqwest::Client,
    turn: &Turn,
    key: &str,
    signal: &mut Option<oneshot::Sender<String>>,
) -> Result<Answer, String> {
    let mut request = client
        .post("https://api.anthropic.com/v1/messages?beta=true")
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-ant-soak");
    for (name, value) in turn.headers() {
        request = request.header(name, value);
    }
    let response = request
        .body(turn.body().to_string())
        .send()
        .await
        .map_err(|e| super::sim::error_kind(&e))?;
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                body.extend_from_slice(&bytes);
                if let Some(tell) = signal.take() {
                    let _ = tell.send(key.to_owned());
                }
            }
            Err(_) => break,
        }
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
