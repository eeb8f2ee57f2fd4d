//! What the benchmarks share: the server on its own runtime, users with a
//! registered proxy each, and a deterministic history of events written
//! straight into the database. (A module in a folder, so Cargo does not
//! build it as a benchmark of its own.)

// Each benchmark uses a part of it.
#![allow(dead_code)]

pub mod load;

use std::path::Path;
use std::time::{Duration, Instant};

use ccgate_quota::{ModelFamily, Totals};
use ccgate_server::db::{self, Db};
use ccgate_server::model::Event;
use ccgate_server::model::EventType;
use ccgate_server::{ServerConfig, serve};
use jiff::Timestamp;
use serde_json::{Value, json};

pub const PASSWORD: &str = "benchmark password";

/// A user with a registered proxy: (user id, device id, device token).
pub type Device = (i64, i64, String);

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The cores, and two runtimes with a worker per core: the server's (as
/// the binary has) and the load generator's, so their tasks do not queue
/// together.
pub fn runtimes() -> (usize, tokio::runtime::Runtime, tokio::runtime::Runtime) {
    let cores = cores();
    (
        cores,
        new_runtime(cores, "server"),
        new_runtime(cores, "client"),
    )
}

/// A multi-threaded runtime with `threads` workers named `name`.
pub fn new_runtime(threads: usize, name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

pub struct Running {
    pub url: String,
    /// From spawning the server until it answered `/healthz`.
    pub started_in: Duration,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ccgate_server::ServerError>>,
}

/// Starts the server on its own runtime (its own worker threads, as the
/// real binary has), so the load generator's tasks do not queue with it.
pub async fn start(server_runtime: &tokio::runtime::Handle, dir: &Path) -> Running {
    start_with(server_runtime, bench_config(dir)).await
}

/// The benchmarks' configuration: data in `dir`, the admin password set.
pub fn bench_config(dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(dir);
    config.admin_password = Some(PASSWORD.to_owned());
    config
}

/// Starts the server with `config` on `server_runtime`.
pub async fn start_with(server_runtime: &tokio::runtime::Handle, config: ServerConfig) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let began = Instant::now();
    let task = server_runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        serve(config, listener, async move {
            let _ = stopped.await;
        })
        .await
    });
    let http = reqwest::Client::new();
    while !http
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running {
        url,
        started_in: began.elapsed(),
        stop,
        task,
    }
}

pub async fn stop(server: Running) {
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

/// POSTs `body` to `url` (with `token` as the bearer, when given) and reads
/// the JSON answer.
async fn post_json(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// Creates `users` users, each with a registered proxy. `person(i)` gives
/// the i-th user (the body of `POST /api/admin/users`) and the device its
/// proxy registers with.
pub async fn seed_users(
    url: &str,
    users: usize,
    person: impl Fn(usize) -> (Value, Value),
) -> Vec<Device> {
    let http = reqwest::Client::new();
    let login = post_json(
        &http,
        format!("{url}/api/admin/login"),
        None,
        json!({ "password": PASSWORD }),
    )
    .await;
    let admin = login["token"].as_str().unwrap().to_owned();
    let mut devices = Vec::new();
    for i in 0..users {
        let (user, device) = person(i);
        let created = post_json(&http, format!("{url}/api/admin/users"), Some(&admin), user).await;
        let registered = post_json(
            &http,
            format!("{url}/api/agent/v1/register"),
            None,
            json!({ "code": created["install_code"], "device": device }),
        )
        .await;
        devices.push((
            created["user"]["id"].as_i64().unwrap(),
            registered["device_id"].as_i64().unwrap(),
            registered["device_token"].as_str().unwrap().to_owned(),
        ));
    }
    devices
}

/// A small deterministic generator (xorshift): the same history every run.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Adds `count` events spread over the last `days` days, written through
/// the server's own storage module (the server is stopped meanwhile); their
/// ids go on from `first`. Each is a request (about half of them counted
/// prompts) unless `other` draws another kind: its type and detail.
pub fn seed_history(
    dir: &Path,
    devices: &[Device],
    first: u64,
    count: u64,
    days: i64,
    mut other: impl FnMut(&mut Rng) -> Option<(EventType, Value)>,
) {
    let db = Db::open(&dir.join("ccgate.db")).unwrap();
    let now = Timestamp::now().as_millisecond();
    let span = days * 24 * 3600 * 1000;
    let families = [ModelFamily::Opus, ModelFamily::Sonnet, ModelFamily::Haiku];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ first);
    let mut written = 0;
    while written < count {
        let batch = 50_000.min(count - written);
        let rows: Vec<Event> = (0..batch)
            .map(|k| {
                let (user_id, device_id, _) =
                    &devices[(rng.next() % devices.len() as u64) as usize];
                let family = families[(rng.next() % 3) as usize];
                let at = now - (rng.next() % span as u64) as i64;
                let counted = rng.next().is_multiple_of(2);
                let (event_type, totals, detail) = match other(&mut rng) {
                    Some((event_type, detail)) => (event_type, Totals::default(), Some(detail)),
                    None => (
                        EventType::Request,
                        Totals {
                            prompts: u64::from(counted),
                            credits: if counted { 3 } else { 0 },
                            input_tokens: 1000 + rng.next() % 5000,
                            output_tokens: 100 + rng.next() % 2000,
                            cache_creation_input_tokens: 0,
                            cache_read_input_tokens: rng.next() % 20_000,
                        },
                        None,
                    ),
                };
                Event {
                    id: format!("00000000-0000-4000-8000-{:012x}", first + written + k),
                    user_id: *user_id,
                    device_id: Some(*device_id),
                    at: jiff::Timestamp::from_millisecond(at).expect("a time in range"),
                    received_at: jiff::Timestamp::from_millisecond(at).expect("a time in range"),
                    event_type,
                    model: Some(format!("claude-{family}-4-5")),
                    family: Some(family),
                    totals,
                    kind: Some(if counted { "prompt" } else { "continuation" }.to_owned()),
                    turn_key: Some(format!("h:{k}")),
                    session_id: Some("history".to_owned()),
                    detail,
                    count_reason: counted.then(|| "new_prompt".to_owned()),
                    estimated: false,
                    credential: None,
                }
            })
            .collect();
        db.write_blocking(|tx| db::events::insert_new(tx, &rows).map(|_| ()))
            .unwrap();
        written += batch;
    }
}
