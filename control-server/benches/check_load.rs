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

use std::time::Instant;

use common::load::{DENIED_USERS, HISTORY_DAYS, Knobs, USERS, hammer, person};
use common::{runtimes, seed_history, seed_users, start, stop};

fn main() {
    let Knobs {
        seconds,
        connections: connection_counts,
        history,
    } = Knobs::from_env(10, "8,16,32");
    let (cores, server_runtime, runtime) = runtimes();
    let server_handle = server_runtime.handle().clone();
    runtime.block_on(async {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let server = start(&server_handle, dir).await;
        let devices = seed_users(&server.url, USERS, person).await;
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
                let [p50, p99, p999] = figures.percentiles_ms();
                println!(
                    "{:>10} {:>7.2} {:>6} {:>10.0} {:>7.0}% {:>8.3} {:>8.3} {:>9.3} {:>8.2}",
                    seeded,
                    server.started_in.as_secs_f64(),
                    connections,
                    figures.per_second(),
                    figures.allowed_percent(),
                    p50,
                    p99,
                    p999,
                    figures.max_ms(),
                );
            }
            eprintln!("  (seeded in {:.1} s)", seed_time.as_secs_f64());
            stop(server).await;
        }
    });
}
