//! `PgDb::check` (issue 13's check on PostgreSQL) against a real throwaway
//! PostgreSQL cluster on loopback, as history grows.
//!
//! Seeds 100 people and a history of events spread over 35 days (50,000,
//! 200,000 and 1,000,000, each in a database of its own, written
//! server-side with `generate_series` in time order through the running
//! totals' trigger), then runs checks for a few seconds at each size:
//! once from one task on one replica, once from 16 tasks spread over two
//! replicas (two pools, as two servers would hold). Each person's policy
//! has a daily Opus limit, a weekly credit limit and a rolling 5-hour
//! limit, all too high to bite, so every check reads three windows and
//! reserves. Prints checks/s, p50 and p99 (client-side).
//!
//! ```sh
//! cargo bench -p ccgate-server --bench check_pg
//! ```
//! Knobs: `BENCH_SECONDS` (5), `BENCH_HISTORY` (`50000,200000,1000000`).

#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccgate_quota::{CompiledPolicy, GateKind, ModelFamily, Policy};
use ccgate_server::postgres::PgDb;
use ccgate_server::postgres::gate::Check;
use jiff::Timestamp;
use postgres::Postgres;

const PEOPLE: i64 = 100;
const HISTORY_DAYS: i64 = 35;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn policy() -> CompiledPolicy {
    let policy: Policy = serde_json::from_value(serde_json::json!({
        "version": 1,
        "team": "Team",
        "user": { "id": 1, "name": "P", "slug": "p" },
        "status": "active",
        "time_zone": "Europe/Berlin",
        "credit_weights": ccgate_quota::CreditWeights::default(),
        "rules": [
            { "type": "per_model", "model": "opus", "window": "daily", "value": 1_000_000_000u64 },
            { "type": "credits", "window": "weekly", "value": 1_000_000_000u64 },
            { "type": "per_model", "window": "rolling_5h", "value": 1_000_000_000u64 },
        ],
    }))
    .unwrap();
    CompiledPolicy::new(policy).unwrap()
}

/// A history of `total` events spread evenly over people and the last 35
/// days, stored oldest first as devices report them (the running totals'
/// trigger then touches one bucket per event).
async fn seed_history(client: &tokio_postgres::Client, total: i64, now: i64) {
    let span = HISTORY_DAYS * 86_400_000;
    client
        .execute(
            "INSERT INTO events (id, user_id, device_id, at, received_at, type, family, prompts, credits,
                                 input_tokens, output_tokens)
             SELECT 'h' || n, 1 + n % $2::BIGINT, 1 + n % $2::BIGINT, $3::BIGINT - $4::BIGINT + n * $4::BIGINT / $1::BIGINT, $3::BIGINT, 'request',
                    (ARRAY['opus', 'sonnet', 'haiku'])[1 + n % 3], 1, 5, 1000, 200
             FROM generate_series(0::BIGINT, $1::BIGINT - 1) AS n ORDER BY n",
            &[&total, &PEOPLE, &now, &span],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
}

struct Figures {
    checks: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

async fn run(replicas: &Arc<[PgDb; 2]>, tasks: usize, seconds: u64, round: usize) -> Figures {
    let policy = Arc::new(policy());
    let began = Instant::now();
    let until = began + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let (replicas, policy) = (Arc::clone(replicas), Arc::clone(&policy));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0usize;
                while Instant::now() < until {
                    let person = ((task * 7 + n) as i64 % PEOPLE) + 1;
                    let key = format!("r{round}-t{task}-{n}");
                    let started = Instant::now();
                    let decision = replicas[task % 2]
                        .check(
                            &policy,
                            &Check {
                                user_id: person,
                                device_id: person,
                                key: &key,
                                model: "claude-opus-4-5",
                                family: ModelFamily::Opus,
                                kind: GateKind::Prompt,
                                now: Timestamp::now(),
                                hold: Duration::from_secs(1800),
                                shares: Vec::new(),
                                hook: false,
                                session_id: None,
                            },
                        )
                        .await
                        .unwrap();
                    assert!(decision.decision.allowed());
                    latencies.push(started.elapsed().as_micros() as u64);
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for worker in workers {
        latencies_us.extend(worker.await.unwrap());
    }
    latencies_us.sort_unstable();
    Figures {
        checks: latencies_us.len(),
        seconds: began.elapsed().as_secs_f64(),
        latencies_us,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(0) as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let history: Vec<i64> = std::env::var("BENCH_HISTORY")
        .unwrap_or_else(|_| "50000,200000,1000000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let cluster = Postgres::start().await;
    println!("PgDb::check, {PEOPLE} people, PostgreSQL on loopback, {seconds} s per run");
    println!("| history | tasks | replicas | checks/s | p50 ms | p99 ms | seeding s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let now = Timestamp::now().as_millisecond();
    for (round, total) in history.into_iter().enumerate() {
        // A database per size, so every history is stored in time order.
        let url = cluster.create_database(&format!("ccgate_{total}")).await;
        let replicas = Arc::new([
            PgDb::open(&url, 16).await.unwrap(),
            PgDb::open(&url, 16).await.unwrap(),
        ]);
        let admin = cluster.connect(&format!("ccgate_{total}")).await;
        admin
            .execute(
                "INSERT INTO users (id, name, slug, created_at)
                 SELECT n, 'Person ' || n, 'p' || n, 0 FROM generate_series(1, $1::BIGINT) AS n",
                &[&PEOPLE],
            )
            .await
            .unwrap();
        let seeding = Instant::now();
        seed_history(&admin, total, now).await;
        let seeding = seeding.elapsed().as_secs_f64();
        for (tasks, replicas_used) in [(1, 1), (16, 2)] {
            admin
                .batch_execute("DELETE FROM reservations")
                .await
                .unwrap();
            let figures = run(&replicas, tasks, seconds, round * 10 + tasks).await;
            println!(
                "| {total} | {tasks} | {replicas_used} | {:.0} | {:.2} | {:.2} | {seeding:.0} |",
                figures.checks as f64 / figures.seconds,
                percentile(&figures.latencies_us, 0.50),
                percentile(&figures.latencies_us, 0.99),
            );
        }
    }
}
