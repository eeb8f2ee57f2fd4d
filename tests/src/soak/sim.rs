//! A lightweight simulated device: it speaks the agent API directly, as a
//! proxy would. Before each prompt it asks `/check` (deciding alone when
//! the server does not answer), records its events with its own UUIDv7 ids
//! in an in-memory ledger, and delivers them in batches, retrying with
//! backoff on any failure. It forgets an event only when the server
//! answered for it (a 200 whose `refused` does not list it); a refused
//! event is set aside, as the proxy quarantines it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::rng::Rng;

/// Counts by label (failure kinds, status codes), shared by every device.
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    pub fn add(&self, key: impl Into<String>, n: u64) {
        *self.0.lock().unwrap().entry(key.into()).or_default() += n;
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
}

/// What `later` has more of than `earlier`, as `key n, key n`.
pub fn delta(earlier: &BTreeMap<String, u64>, later: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = later
        .iter()
        .filter_map(|(key, n)| {
            let d = n - earlier.get(key).copied().unwrap_or(0);
            (d > 0).then(|| format!("{key} {d}"))
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Traffic of all simulated devices.
#[derive(Default)]
pub struct SimStats {
    /// `POST /events` outcomes: `ok`, `http 500`, `connect`, `timeout`, …
    pub posts: Tally,
    /// `POST /check` outcomes.
    pub checks: Tally,
    /// Live links (`GET /stream`): opened, ended, failures.
    pub links: Tally,
    pub recorded: AtomicU64,
    pub acked: AtomicU64,
    /// Events the server said it already had (a resend after a lost answer).
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    /// Answers whose accepted + duplicates + refused did not add up to the batch.
    pub miscounted_answers: AtomicU64,
    /// Sample of refusal reasons.
    pub refusals: Mutex<Vec<(Uuid, String)>>,
}

/// One event as the device recorded it.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub prompt: bool,
    pub kind: &'static str,
}

#[derive(Default)]
pub struct SimLedger {
    pub recorded: HashMap<Uuid, RecordedEvent>,
    pub pending: VecDeque<(Uuid, Value)>,
    pub acked: HashMap<Uuid, ()>,
    pub refused: HashMap<Uuid, String>,
}

pub struct SimDevice {
    pub index: usize,
    pub device_id: i64,
    token: String,
    pub ledger: Mutex<SimLedger>,
    wake: Notify,
}

const MODELS: [&str; 3] = ["claude-opus-5-5", "claude-sonnet-5", "claude-haiku-5"];
const BATCH: usize = 100;

impl SimDevice {
    pub fn new(index: usize, device_id: i64, token: String) -> Self {
        Self {
            index,
            device_id,
            token,
            ledger: Mutex::new(SimLedger::default()),
            wake: Notify::new(),
        }
    }

    pub fn pending(&self) -> usize {
        self.ledger.lock().unwrap().pending.len()
    }

    fn record(&self, stats: &SimStats, events: Vec<(RecordedEvent, Value)>) {
        let mut ledger = self.ledger.lock().unwrap();
        for (recorded, event) in events {
            let id: Uuid = event["id"].as_str().and_then(|s| s.parse().ok()).unwrap();
            ledger.recorded.insert(id, recorded);
            ledger.pending.push_back((id, event));
            stats.recorded.fetch_add(1, Ordering::Relaxed);
        }
        drop(ledger);
        self.wake.notify_one();
    }

    /// Sends prompts until `stop` turns true.
    pub async fn prompts(
        self: Arc<Self>,
        http: reqwest::Client,
        server: String,
        mut rng: Rng,
        think: Duration,
        stats: Arc<SimStats>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut session = 0u32;
        let mut turn = 0u64;
        // Devices start at different times.
        let first = rng.between(Duration::ZERO, think);
        if sleep_or_stop(first, &mut stop).await {
            return;
        }
        loop {
            if rng.chance(0.05) || session == 0 {
                session += 1;
                turn = 0;
            }
            turn += 1;
            let session_id = format!("sim{}-s{session}", self.index);
            let turn_key = format!("{session_id}:{turn}");
            let model = MODELS[rng.below(3) as usize];
            let answer = http
                .post(format!("{server}/api/agent/v1/check"))
                .bearer_auth(&self.token)
                .json(&json!({"turn_key": turn_key, "model": model, "session_id": session_id}))
                .timeout(Duration::from_millis(1500))
                .send()
                .await;
            let (allowed, offline) = match answer {
                Ok(response) if response.status().is_success() => {
                    let body: Value = response.json().await.unwrap_or_default();
                    match body["allowed"].as_bool() {
                        Some(allowed) => {
                            stats
                                .checks
                                .add(if allowed { "allowed" } else { "denied" }, 1);
                            (allowed, false)
                        }
                        None => {
                            stats.checks.add("unreadable answer", 1);
                            (true, true)
                        }
                    }
                }
                Ok(response) => {
                    stats
                        .checks
                        .add(format!("http {}", response.status().as_u16()), 1);
                    (true, true)
                }
                Err(error) => {
                    stats.checks.add(error_kind(&error), 1);
                    (true, true)
                }
            };
            let mut events = Vec::new();
            if allowed {
                if rng.chance(0.03) {
                    // Every attempt failed upstream: nothing counts, the
                    // reservation is released.
                    events.push(request_event(
                        &mut rng,
                        model,
                        &session_id,
                        &turn_key,
                        "prompt",
                        false,
                        offline,
                        529,
                    ));
                    events.push(released_event(&turn_key));
                } else {
                    events.push(request_event(
                        &mut rng,
                        model,
                        &session_id,
                        &turn_key,
                        "prompt",
                        true,
                        offline,
                        200,
                    ));
                    for _ in 0..rng.below(4) {
                        events.push(request_event(
                            &mut rng,
                            model,
                            &session_id,
                            &turn_key,
                            "continuation",
                            false,
                            offline,
                            200,
                        ));
                    }
                }
            }
            if rng.chance(0.002) {
                events.push(tamper_event(self.index));
            }
            self.record(&stats, events);
            if sleep_or_stop(rng.exponential(think), &mut stop).await {
                return;
            }
        }
    }

    /// Delivers the ledger until `stop` turns true.
    pub async fn deliver(
        self: Arc<Self>,
        http: reqwest::Client,
        server: String,
        mut rng: Rng,
        stats: Arc<SimStats>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failures = 0u32;
        loop {
            if self.pending() == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    return;
                }
                // Let a few events gather, as a proxy's sender does.
                if sleep_or_stop(
                    rng.between(Duration::from_millis(100), Duration::from_millis(600)),
                    &mut stop,
                )
                .await
                {
                    return;
                }
            }
            let batch: Vec<(Uuid, Value)> = {
                let ledger = self.ledger.lock().unwrap();
                ledger.pending.iter().take(BATCH).cloned().collect()
            };
            if batch.is_empty() {
                continue;
            }
            let events: Vec<&Value> = batch.iter().map(|(_, e)| e).collect();
            let sent = http
                .post(format!("{server}/api/agent/v1/events"))
                .bearer_auth(&self.token)
                .json(&json!({ "events": events }))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            let wait = match sent {
                Ok(response) if response.status().is_success() => {
                    let status = response.status().as_u16();
                    match response.json::<Value>().await {
                        Ok(answer) if answer["accepted"].is_u64() => {
                            self.acknowledged(&batch, &answer, &stats);
                            stats.posts.add("ok", 1);
                            failures = 0;
                            None
                        }
                        Ok(answer) => {
                            stats.posts.add(format!("http {status}, unreadable"), 1);
                            eprintln!(
                                "soak: device {} got an answer without `accepted`: {answer}",
                                self.index
                            );
                            Some(None)
                        }
                        Err(_) => {
                            stats.posts.add(format!("http {status}, body cut"), 1);
                            Some(None)
                        }
                    }
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(30)));
                    let label = if retry_after.is_some() {
                        format!("http {status} + Retry-After")
                    } else {
                        format!("http {status}")
                    };
                    stats.posts.add(label, 1);
                    Some(retry_after)
                }
                Err(error) => {
                    stats.posts.add(error_kind(&error), 1);
                    Some(None)
                }
            };
            if let Some(retry_after) = wait {
                failures += 1;
                let backoff = Duration::from_millis(250 * (1u64 << failures.min(5)));
                let wait = retry_after.unwrap_or_else(|| {
                    rng.between(backoff / 2, backoff.min(Duration::from_secs(8)))
                });
                if sleep_or_stop(wait, &mut stop).await {
                    return;
                }
            }
        }
    }

    /// Holds the live link (`GET /stream`) open, as a proxy does, until
    /// `stop`: a fleet of devices is a fleet of long-lived connections.
    pub async fn live_link(
        self: Arc<Self>,
        http: reqwest::Client,
        server: String,
        mut rng: Rng,
        stats: Arc<SimStats>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut failures = 0u32;
        loop {
            let opened = tokio::select! {
                opened = http
                    .get(format!("{server}/api/agent/v1/stream"))
                    .bearer_auth(&self.token)
                    .timeout(Duration::from_secs(3600))
                    .send() => opened,
                _ = stop.changed() => return,
            };
            match opened {
                Ok(response) if response.status().is_success() => {
                    stats.links.add("opened", 1);
                    failures = 0;
                    let mut body = response.bytes_stream();
                    loop {
                        tokio::select! {
                            chunk = futures_util::StreamExt::next(&mut body) => match chunk {
                                Some(Ok(_)) => {}
                                _ => break,
                            },
                            _ = stop.changed() => return,
                        }
                    }
                    stats.links.add("ended", 1);
                }
                Ok(response) => {
                    stats
                        .links
                        .add(format!("http {}", response.status().as_u16()), 1);
                    failures += 1;
                }
                Err(error) => {
                    stats.links.add(error_kind(&error), 1);
                    failures += 1;
                }
            }
            let backoff = Duration::from_millis(250 * (1u64 << failures.min(5)));
            let wait = rng.between(backoff / 2, backoff.min(Duration::from_secs(8)));
            if sleep_or_stop(wait, &mut stop).await {
                return;
            }
        }
    }

    fn acknowledged(&self, batch: &[(Uuid, Value)], answer: &Value, stats: &SimStats) {
        let refused: HashMap<Uuid, String> = answer["refused"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|r| {
                        let id = r["id"].as_str()?.parse().ok()?;
                        Some((id, r["reason"].as_str().unwrap_or("").to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let accepted = answer["accepted"].as_u64().unwrap_or(0);
        let duplicates = answer["duplicates"].as_u64().unwrap_or(0);
        stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        if accepted + duplicates + refused.len() as u64 != batch.len() as u64 {
            stats.miscounted_answers.fetch_add(1, Ordering::Relaxed);
        }
        let mut ledger = self.ledger.lock().unwrap();
        let ids: HashMap<Uuid, ()> = batch.iter().map(|(id, _)| (*id, ())).collect();
        ledger.pending.retain(|(id, _)| !ids.contains_key(id));
        for (id, _) in batch {
            match refused.get(id) {
                Some(reason) => {
                    ledger.refused.insert(*id, reason.clone());
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    let mut sample = stats.refusals.lock().unwrap();
                    if sample.len() < 20 {
                        sample.push((*id, reason.clone()));
                    }
                }
                None => {
                    ledger.acked.insert(*id, ());
                    stats.acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Sleeps; true when `stop` turned true meanwhile.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = stop.changed() => true,
    }
}

pub fn error_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".into()
    } else if error.is_connect() {
        "connect".into()
    } else if error.is_body() || error.is_decode() {
        "body cut".into()
    } else {
        "connection broken".into()
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

#[allow(clippy::too_many_arguments)]
fn request_event(
    rng: &mut Rng,
    model: &str,
    session_id: &str,
    turn_key: &str,
    kind: &'static str,
    counted: bool,
    offline: bool,
    status: u16,
) -> (RecordedEvent, Value) {
    let id = Uuid::now_v7();
    let ok = status == 200;
    let outcome = if ok { "completed" } else { "upstream_error" };
    let stop_reason = ok.then_some("end_turn");
    let (input, output) = if ok {
        (100 + rng.below(5000), 10 + rng.below(2000))
    } else {
        (0, 0)
    };
    let mut event = json!({
        "id": id, "at": now(), "type": "request",
        "model": model, "kind": kind, "turn_key": turn_key, "session_id": session_id,
        "prompt_counted": counted, "status": status,
        "outcome": outcome,
        "stop_reason": stop_reason,
        "usage": {
            "input_tokens": input,
            "output_tokens": output,
            "cache_creation_input_tokens": rng.below(3) * 1000,
            "cache_read_input_tokens": rng.below(20_000),
        },
        "duration_ms": 200 + rng.below(20_000),
        "decided_offline": offline,
    });
    if counted {
        event["count_reason"] = json!("new_prompt");
    }
    (
        RecordedEvent {
            prompt: counted,
            kind: "request",
        },
        event,
    )
}

fn released_event(turn_key: &str) -> (RecordedEvent, Value) {
    let id = Uuid::now_v7();
    (
        RecordedEvent {
            prompt: false,
            kind: "turn_released",
        },
        json!({"id": id, "at": now(), "type": "turn_released", "turn_key": turn_key}),
    )
}

fn tamper_event(index: usize) -> (RecordedEvent, Value) {
    let id = Uuid::now_v7();
    (
        RecordedEvent {
            prompt: false,
            kind: "tamper",
        },
        json!({"id": id, "at": now(), "type": "tamper", "path": "/etc/ccgate/config.toml",
               "what": "modified", "restored": true, "detail": format!("soak device {index}")}),
    )
}

/// Checks that the events this module writes still read as the wire type
/// (the agent API may have moved on), before the soak depends on them.
pub fn check_event_shapes() -> anyhow::Result<()> {
    let mut rng = Rng::new(0);
    let samples = [
        request_event(&mut rng, "m", "s", "s:1", "prompt", true, false, 200).1,
        request_event(&mut rng, "m", "s", "s:1", "continuation", false, true, 529).1,
        released_event("s:1").1,
        tamper_event(0).1,
    ];
    for sample in samples {
        serde_json::from_value::<ccgate_quota::wire::AgentEvent>(sample.clone()).map_err(
            |error| {
                anyhow::anyhow!(
                    "a simulated event no longer reads as an AgentEvent ({error}): {sample}"
                )
            },
        )?;
    }
    Ok(())
}
