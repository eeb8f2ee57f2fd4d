//! `POST /api/agent/v1/check` under load, against a real server in-process.
//!
//! Seeds 100 users with a proxy each, then a history of events (first
//! 200,000, then 1,000,000 in all) straight into the database, restarts the
//! server so it loads them, and drives concurrent keep-alive connections
//! hammering `check` for a few seconds per history size. Prints checks/s,
//! p50, p99 and p99.9 (client-side, over real HTTP on loopback).
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-server cargo bench -p ccgate-server --bench check_load
//! ```
//! Knobs: `BENCH_SECONDS` (10), `BENCH_CONNECTIONS` (`8,16,32`: one run
//! each), `BENCH_HISTORY` (`200000,1000000`: cumulative event counts to
//! measure at). The server runs on its own runtime with one worker per core,
//! like the binary; the load generator has its own, on the same cores.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Device, cores, env_or, new_runtime, seed_history, seed_users, start, stop};
use serde_json::json;

const USERS: usize = 100;
/// Users whose opus limit is 0: their checks take the deny path (block
/// message, queued blocked event, live event).
const DENIED_USERS: usize = 10;
/// Events are spread over this many days before now.
const HISTORY_DAYS: i64 = 35;

struct Figures {
    checks: u64,
    allowed: u64,
    seconds: f64,
    latencies_us: Vec<u64>,
}

async fn hammer(url: &str, devices: &[Device], connections: usize, seconds: u64) -> Figures {
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

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let connection_counts: Vec<usize> = std::env::var("BENCH_CONNECTIONS")
        .unwrap_or_else(|_| "8,16,32".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let history: Vec<u64> = std::env::var("BENCH_HISTORY")
        .unwrap_or_else(|_| "200000,1000000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let cores = cores();
    let server_runtime = new_runtime(cores, "server");
    let server_handle = server_runtime.handle().clone();
    let runtime = new_runtime(cores, "client");
    runtime.block_on(async {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let server = start(&server_handle, dir).await;
        let devices = seed_users(&server.url, USERS, |i| {
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
        })
        .await;
        stop(server).await;
        println!(
            "check_load: {USERS} users ({DENIED_USERS} refused opus), 1 proxy each, 6 rules each, \
             {seconds} s per run, {cores} cores (server and load generator share them)"
        );
        println!(
            "{:>10} {:>7} {:>6} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8}",
            "history",
            "load s",
            "conns",
            "checks/s",
            "allowed",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        let mut seeded = 0;
        for target in history {
            let began = Instant::now();
            seed_history(
                dir,
                &devices,
                seeded,
                target.saturating_sub(seeded),
                HISTORY_DAYS,
                |_| None,
            );
            let seed_time = began.elapsed();
            seeded = target.max(seeded);
            let server = start(&server_handle, dir).await;
            for &connections in &connection_counts {
                let figures = hammer(&server.url, &devices, connections, seconds).await;
                println!(
                    "{:>10} {:>7.2} {:>6} {:>10.0} {:>7.0}% {:>8.3} {:>8.3} {:>9.3} {:>8.2}",
                    seeded,
                    server.started_in.as_secs_f64(),
                    connections,
                    figures.checks as f64 / figures.seconds,
                    100.0 * figures.allowed as f64 / figures.checks.max(1) as f64,
                    percentile(&figures.latencies_us, 0.50),
                    percentile(&figures.latencies_us, 0.99),
                    percentile(&figures.latencies_us, 0.999),
                    figures.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
                );
            }
            eprintln!("  (seeded in {:.1} s)", seed_time.as_secs_f64());
            stop(server).await;
        }
    });
}
