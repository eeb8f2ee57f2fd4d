//! The load both check benchmarks drive: the same 100 people with six rules
//! each, and keep-alive connections sending checks back to back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Device;

pub const USERS: usize = 100;
/// Users whose opus limit is 0: their checks take the deny path (block
/// message, queued blocked event, live event).
pub const DENIED_USERS: usize = 10;
/// Events are spread over this many days before now.
pub const HISTORY_DAYS: i64 = 35;

/// The i-th benchmark person (the body of `POST /api/admin/users`) and the
/// device its proxy registers with: opus per day, sonnet per rolling 5 h,
/// monthly and weekly credits, a sliding-24 h token budget, a time-of-day
/// rule.
pub fn person(i: usize) -> (Value, Value) {
    let opus = if i < DENIED_USERS { 0 } else { 10_000_000 };
    let limits = json!([
        { "type": "per_model", "model": "opus", "window": "daily", "value": opus },
        { "type": "per_model", "model": "sonnet", "window": "rolling_5h", "value": 10_000_000 },
        { "type": "credits", "window": "monthly", "value": 1_000_000_000 },
        { "type": "credits", "window": "weekly", "value": 1_000_000_000 },
        { "type": "tokens", "window": "sliding_24h", "value": 1_000_000_000_000i64, "kind": "total" },
        { "type": "time_of_day", "schedule_start": "00:00", "schedule_end": "23:59" },
    ]);
    (
        json!({ "name": format!("Bench user {i}"), "limits": limits }),
        json!({ "hostname": format!("host-{i}"), "os": "linux", "arch": "x86_64", "agent_version": "bench" }),
    )
}

/// What a run of a check benchmark is told by the environment.
pub struct Knobs {
    /// `BENCH_SECONDS`: measured per run.
    pub seconds: u64,
    /// `BENCH_CONNECTIONS`: one run each.
    pub connections: Vec<usize>,
    /// `BENCH_HISTORY`: event counts to measure at.
    pub history: Vec<u64>,
}

impl Knobs {
    pub fn from_env(seconds: u64, connections: &str) -> Self {
        Self {
            seconds: super::env_or("BENCH_SECONDS", seconds),
            connections: env_list("BENCH_CONNECTIONS", connections),
            history: env_list("BENCH_HISTORY", "200000,1000000"),
        }
    }
}

/// A comma-separated list from the environment variable `name`, else
/// `default`.
fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

pub struct Figures {
    pub checks: u64,
    pub allowed: u64,
    pub seconds: f64,
    /// Client-side, sorted.
    pub latencies_us: Vec<u64>,
}

impl Figures {
    pub fn per_second(&self) -> f64 {
        self.checks as f64 / self.seconds
    }

    pub fn allowed_percent(&self) -> f64 {
        100.0 * self.allowed as f64 / self.checks.max(1) as f64
    }

    /// p50, p99 and p99.9 in ms.
    pub fn percentiles_ms(&self) -> [f64; 3] {
        [0.50, 0.99, 0.999].map(|p| percentile(&self.latencies_us, p))
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0
    }
}

pub async fn hammer(url: &str, devices: &[Device], connections: usize, seconds: u64) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let allowed = Arc::new(AtomicU64::new(0));
    let devices = Arc::new(devices.to_vec());
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (stop, measuring, allowed, devices) = (
            stop.clone(),
            measuring.clone(),
            allowed.clone(),
            devices.clone(),
        );
        let endpoint = format!("{url}/api/agent/v1/check");
        tasks.push(tokio::spawn(async move {
            // One keep-alive connection per task.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut latencies = Vec::with_capacity(200_000);
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                let (_, _, token) = &devices[i % devices.len()];
                let model = ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"][i % 3];
                let body = format!(
                    r#"{{"turn_key":"bench:{c}:{i}","model":"{model}","session_id":"s{c}"}}"#
                );
                let began = Instant::now();
                let response = client
                    .post(&endpoint)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let bytes = response.bytes().await.unwrap();
                let elapsed = began.elapsed();
                assert!(
                    status.is_success(),
                    "{status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(elapsed.as_micros() as u64);
                    if bytes.starts_with(br#"{"allowed":true"#) {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += connections;
            }
            latencies
        }));
    }
    // One second of warm-up, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await.unwrap());
    }
    latencies_us.sort_unstable();
    Figures {
        checks: latencies_us.len() as u64,
        allowed: allowed.load(Ordering::Relaxed),
        seconds: elapsed,
        latencies_us,
    }
}
