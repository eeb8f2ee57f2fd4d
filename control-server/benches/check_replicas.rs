//! `POST /api/agent/v1/check` over real HTTP on loopback, the same load on
//! three set-ups: one server on SQLite, one on PostgreSQL, and two on one
//! PostgreSQL behind a small round-robin load balancer (issue 13).
//!
//! The people, their rules and the load are those of `check_load`
//! (`common::load`); the history (200,000 then 1,000,000 events over 35
//! days) is written while the servers are stopped: through the server's
//! own `db` module into SQLite, server-side with `generate_series` in time
//! order into a fresh PostgreSQL database per size (through the running
//! totals' trigger). PostgreSQL
//! is a throwaway cluster on loopback (`fsync=off`), started here from
//! Debian's `postgresql` package as `tests/common/postgres.rs` does.
//!
//! ```sh
//! cargo bench -p ccgate-server --bench check_replicas
//! ```
//! Knobs: `BENCH_SECONDS` (5), `BENCH_CONNECTIONS` (`1,16`),
//! `BENCH_HISTORY` (`200000,1000000`, cumulative event counts).
//!
//! The balancer works as HAProxy's `mode tcp` with `balance roundrobin`
//! does: each new connection goes to the next replica and its bytes are
//! copied both ways, so with keep-alive connections the checks are spread
//! evenly. It runs on the load generator's runtime: its copying is on the
//! same 2 cores as everything else.

mod common;
#[path = "../tests/common/postgres.rs"]
mod postgres;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use ccgate_server::ServerConfig;
use ccgate_server::config::Database;
use common::load::{HISTORY_DAYS, Knobs, USERS, hammer, person};
use common::{
    Device, Running, bench_config, runtimes, seed_history, seed_users, start, start_with, stop,
};
use postgres::Postgres;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const DATABASE: &str = "ccgate_bench";

/// A loopback load balancer handing each new connection to the next
/// upstream in turn. Stops when dropped.
struct Balancer {
    url: String,
    task: JoinHandle<()>,
}

impl Balancer {
    async fn start(upstreams: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            for turn in 0.. {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstreams[turn % upstreams.len()];
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Self { url, task }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn address(server: &Running) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().unwrap()
}

/// Runs the load at each connection count against `url` and prints a row
/// each.
async fn measure(
    setup: &str,
    history: u64,
    url: &str,
    devices: &[Device],
    connections: &[usize],
    seconds: u64,
) {
    for &connections in connections {
        let figures = hammer(url, devices, connections, seconds).await;
        let [p50, p99, p999] = figures.percentiles_ms();
        println!(
            "| {setup} | {history} | {connections} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} | {:.1} |",
            figures.per_second(),
            figures.allowed_percent(),
            p50,
            p99,
            p999,
            figures.max_ms(),
        );
    }
}

/// Stores `count` events for the benchmark's devices in PostgreSQL, oldest
/// first: spread over the last 35 days, every third model, every other one
/// a counted prompt.
async fn seed_postgres_history(client: &tokio_postgres::Client, count: i64) {
    let now = jiff::Timestamp::now().as_millisecond();
    let span = HISTORY_DAYS * 86_400_000;
    client
        .execute(
            "INSERT INTO events (id, user_id, device_id, at, received_at, type, model, family,
                                 prompts, credits, input_tokens, output_tokens,
                                 cache_read_input_tokens, kind, count_reason)
             SELECT 'h' || n, d.user_id, d.id, t.at, t.at, 'request',
                    'claude-' || f.family || '-4-5', f.family,
                    (n % 2 = 0)::INT, CASE WHEN n % 2 = 0 THEN 3 ELSE 0 END,
                    1000 + n % 5000, 100 + n % 2000, n % 20000,
                    CASE WHEN n % 2 = 0 THEN 'prompt' ELSE 'continuation' END,
                    CASE WHEN n % 2 = 0 THEN 'new_prompt' END
             FROM generate_series(0::BIGINT, $1::BIGINT - 1) AS n
             CROSS JOIN LATERAL (SELECT $2::BIGINT - $3::BIGINT + n * $3::BIGINT / $1::BIGINT AS at) AS t
             CROSS JOIN LATERAL (SELECT (ARRAY['opus', 'sonnet', 'haiku'])[1 + n % 3] AS family) AS f
             JOIN (SELECT id, user_id, row_number() OVER (ORDER BY id) - 1 AS k FROM devices) AS d
               ON d.k = n % $4::BIGINT
             ORDER BY n",
            &[&count, &now, &span, &(USERS as i64)],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE").await.unwrap();
}

/// A replica's configuration: data (its key file) in `dir`, the record in
/// the database at `url`.
fn replica(dir: &Path, url: &str) -> ServerConfig {
    let mut config = bench_config(dir);
    config.database = Database::postgres(url);
    config
}

fn main() {
    let Knobs {
        seconds,
        connections,
        history,
    } = Knobs::from_env(5, "1,16");
    let (cores, server_runtime, runtime) = runtimes();
    let server = server_runtime.handle().clone();
    runtime.block_on(async {
        println!(
            "check over HTTP, {USERS} people, 6 rules each, {seconds} s per run, {cores} cores \
             shared by the servers, PostgreSQL and the load generator"
        );
        println!(
            "| set-up | history | connections | checks/s | allowed | p50 ms | p99 ms | p99.9 ms | max ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");

        let sqlite = tempfile::tempdir().unwrap();
        let first = start(&server, sqlite.path()).await;
        let devices = seed_users(&first.url, USERS, person).await;
        stop(first).await;
        let mut seeded = 0;
        for &target in &history {
            seed_history(
                sqlite.path(),
                &devices,
                seeded,
                target.saturating_sub(seeded),
                HISTORY_DAYS,
                |_| None,
            );
            seeded = seeded.max(target);
            let one = start(&server, sqlite.path()).await;
            measure("SQLite", seeded, &one.url, &devices, &connections, seconds).await;
            stop(one).await;
        }

        let cluster = Postgres::start().await;
        for &target in &history {
            // A database per size, so that the history is stored in time
            // order (an event older than the running totals' last bucket
            // updates every later bucket: fine for a device's late replay,
            // slow for a million).
            let database = format!("{DATABASE}_{target}");
            let url = cluster.create_database(&database).await;
            let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
            let first = start_with(&server, replica(dirs[0].path(), &url)).await;
            let devices = seed_users(&first.url, USERS, person).await;
            stop(first).await;
            // Replicas share the server key, as the compose profile's do.
            std::fs::copy(
                dirs[0].path().join("secret.key"),
                dirs[1].path().join("secret.key"),
            )
            .unwrap();
            let admin = cluster.connect(&database).await;
            let began = Instant::now();
            seed_postgres_history(&admin, target as i64).await;
            eprintln!(
                "  (PostgreSQL: {target} events seeded in {:.1} s)",
                began.elapsed().as_secs_f64()
            );
            let a = start_with(&server, replica(dirs[0].path(), &url)).await;
            measure("PostgreSQL, 1 replica", target, &a.url, &devices, &connections, seconds).await;
            // The two replicas start without the prompts the last run held.
            admin
                .batch_execute("DELETE FROM reservations")
                .await
                .unwrap();
            let b = start_with(&server, replica(dirs[1].path(), &url)).await;
            let balancer = Balancer::start(vec![address(&a), address(&b)]).await;
            measure(
                "PostgreSQL, 2 replicas",
                target,
                &balancer.url,
                &devices,
                &connections,
                seconds,
            )
            .await;
            drop(balancer);
            stop(b).await;
            stop(a).await;
        }
    });
}
