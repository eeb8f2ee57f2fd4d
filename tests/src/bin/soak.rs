//! Fault soak of ccgate's event delivery (issue 9, "Proof at scale").
//!
//! ```sh
//! cargo build --release -p ccgate-server -p ccgate-proxy -p ccgate-tests
//! sudo target/release/ccgate-soak --server-bin target/release/ccgate-server \
//!     --proxy-bin target/release/ccgate-proxy
//! ```
//!
//! 200 devices on loopback send prompts and events for a few minutes: a
//! few real `ccgate-proxy` daemons (the release binary, each its own
//! process, driven through the fake Anthropic as Claude Code would) and
//! the rest simulated devices speaking the agent API directly. Meanwhile
//! the real `ccgate-server` binary (its own process, its data on a small
//! tmpfs) is SIGKILLed and started again, its disk fills up and frees
//! again, and proxies are SIGKILLed mid-stream and started again on the
//! same state. When the faults are over and everything has settled, every
//! event any device recorded must be in the server's database exactly
//! once, nothing else may be there, and the counted prompts must match.
//! The closing line says what was lost or doubled; the exit code is 1 if
//! anything was (details and logs are kept in the work dir).

#[path = "../soak/mod.rs"]
mod soak;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use ccgate_tests::upstream::FakeAnthropic;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use soak::disk::{DataDisk, DiskKind};
use soak::drive::{self, DriverStats, KillRequest};
use soak::procs::{self, Admin, ProxyLaunch, ProxyMachine, ServerProcess};
use soak::rng::Rng;
use soak::sim::{self, SimDevice, SimStats};
use soak::verify::{self, DeviceEvent, DeviceLedger, Held};

struct Options {
    devices: usize,
    proxies: usize,
    minutes: f64,
    server_bin: PathBuf,
    proxy_bin: PathBuf,
    seed: u64,
    think_ms: u64,
    proxy_think_ms: u64,
    tool_ms: u64,
    tmpfs_mb: u64,
    no_tmpfs: bool,
    no_faults: bool,
    port: u16,
    work_dir: Option<PathBuf>,
    keep: bool,
    settle_secs: u64,
    server_log: String,
    proxy_log: String,
}

const USAGE: &str = "ccgate-soak [--devices 200] [--proxies 6] [--minutes 3] [--seed 1]
    [--server-bin target/release/ccgate-server] [--proxy-bin target/release/ccgate-proxy]
    [--think-ms 2000] [--proxy-think-ms 700] [--tool-ms 0] [--tmpfs-mb 256] [--no-tmpfs] [--no-faults] [--port N]
    [--work-dir DIR] [--keep] [--settle-secs 180] [--server-log info] [--proxy-log info]";

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        devices: 200,
        proxies: 6,
        minutes: 3.0,
        server_bin: PathBuf::from("target/release/ccgate-server"),
        proxy_bin: PathBuf::from("target/release/ccgate-proxy"),
        seed: 1,
        think_ms: 2000,
        proxy_think_ms: 700,
        tool_ms: 0,
        tmpfs_mb: 256,
        no_tmpfs: false,
        no_faults: false,
        port: 0,
        work_dir: None,
        keep: false,
        settle_secs: 180,
        server_log: "info".into(),
        proxy_log: "info".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--devices" => o.devices = value()?.parse()?,
            "--proxies" => o.proxies = value()?.parse()?,
            "--minutes" => o.minutes = value()?.parse()?,
            "--server-bin" => o.server_bin = PathBuf::from(value()?),
            "--proxy-bin" => o.proxy_bin = PathBuf::from(value()?),
            "--seed" => o.seed = value()?.parse()?,
            "--think-ms" => o.think_ms = value()?.parse()?,
            "--proxy-think-ms" => o.proxy_think_ms = value()?.parse()?,
            "--tool-ms" => o.tool_ms = value()?.parse()?,
            "--tmpfs-mb" => o.tmpfs_mb = value()?.parse()?,
            "--no-tmpfs" => o.no_tmpfs = true,
            "--no-faults" => o.no_faults = true,
            "--port" => o.port = value()?.parse()?,
            "--work-dir" => o.work_dir = Some(PathBuf::from(value()?)),
            "--keep" => o.keep = true,
            "--settle-secs" => o.settle_secs = value()?.parse()?,
            "--server-log" => o.server_log = value()?,
            "--proxy-log" => o.proxy_log = value()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if o.proxies == 0 || o.proxies > o.devices {
        bail!("--proxies must be between 1 and --devices");
    }
    if !(0.2..=120.0).contains(&o.minutes) {
        bail!("--minutes must be between 0.2 and 120");
    }
    Ok(o)
}

fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("ccgate-soak: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // On Ctrl-C or SIGTERM the run is dropped: its children are killed and
    // the tmpfs unmounted as their handles drop.
    let outcome = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            outcome = run(options) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        }
    });
    // Whatever is still running is killed as its handle drops.
    runtime.shutdown_timeout(Duration::from_secs(5));
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(error) => {
            eprintln!("ccgate-soak: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// What the soak does, when (from the start of the load).
#[derive(Debug, Clone)]
enum Action {
    KillServer { down: Duration },
    DiskFull,
    DiskFree,
    KillProxyMidStream { proxy: usize },
}

fn plan(load: Duration, proxies: usize, rng: &mut Rng) -> Vec<(Duration, Action)> {
    let mut at = |fraction: f64| load.mul_f64(fraction + (rng.unit() - 0.5) * 0.03);
    let second = 1 % proxies;
    let mut plan = vec![
        (
            at(0.10),
            Action::KillServer {
                down: Duration::from_secs(3),
            },
        ),
        (at(0.18), Action::DiskFull),
        // Killed while its disk is full: it has to start on a full disk.
        (
            at(0.24),
            Action::KillServer {
                down: Duration::from_secs(2),
            },
        ),
        (at(0.31), Action::DiskFree),
        (at(0.38), Action::KillProxyMidStream { proxy: 0 }),
        // A long outage, and a proxy killed during it: its ledger holds
        // events the server has not seen.
        (
            at(0.47),
            Action::KillServer {
                down: Duration::from_secs(12),
            },
        ),
        (at(0.50), Action::KillProxyMidStream { proxy: second }),
        (at(0.62), Action::DiskFull),
        (at(0.75), Action::DiskFree),
        (
            at(0.86),
            Action::KillServer {
                down: Duration::from_secs(2),
            },
        ),
    ];
    plan.sort_by_key(|(at, _)| *at);
    plan
}

/// A disk-full period and what the devices met during it.
struct DiskWindow {
    start: Duration,
    end: Option<Duration>,
    filled_mb: u64,
    posts_before: BTreeMap<String, u64>,
    checks_before: BTreeMap<String, u64>,
    attempts_before: BTreeMap<String, u64>,
    report: String,
}

struct ProxyKill {
    proxy: usize,
    at: Duration,
    turn: String,
    server_down: bool,
    pending_events: Option<u64>,
}

/// Everything that runs and everything that happened to it.
struct World {
    started: Instant,
    // Dropped in this order: the server before its disk is unmounted.
    server: ServerProcess,
    disk: DataDisk,
    server_down_until: Option<Instant>,
    proxies: Vec<ProxyMachine>,
    proxy_restart_at: Vec<Option<Instant>>,
    kill_channels: Vec<mpsc::Sender<KillRequest>>,
    pending_kill: Option<(usize, oneshot::Receiver<String>, Instant)>,
    disk_full: bool,
    sims: Vec<Arc<SimDevice>>,
    sim_stats: Arc<SimStats>,
    driver_stats: Arc<DriverStats>,
    // What happened.
    server_kills: u32,
    disk_windows: Vec<DiskWindow>,
    proxy_kills: Vec<ProxyKill>,
    failed_server_starts: Vec<(Duration, String)>,
    failed_proxy_starts: Vec<(usize, Duration, String)>,
    server_crashes: Vec<(Duration, String)>,
    proxy_crashes: Vec<(usize, Duration, String)>,
    missed_kills: Vec<String>,
}

impl World {
    fn t(&self) -> Duration {
        self.started.elapsed()
    }

    fn say(&self, text: &str) {
        println!("[{:>6.1}s] {text}", self.t().as_secs_f64());
    }

    async fn act(&mut self, action: &Action) {
        match action {
            Action::KillServer { down } => {
                if !self.server.is_running() {
                    self.say("server kill skipped: it is down already");
                    return;
                }
                let pid = self.server.pid();
                self.server.kill().await;
                self.server_kills += 1;
                self.server_down_until = Some(Instant::now() + *down);
                self.say(&format!(
                    "server SIGKILLed (pid {pid:?}), restarting in {down:?}{}",
                    if self.disk_full {
                        " on a full disk"
                    } else {
                        ""
                    }
                ));
            }
            Action::DiskFull => {
                if !self.disk.can_fill() {
                    self.say("disk full skipped: no disk to fill (see above)");
                    return;
                }
                let filled = self.disk.fill().unwrap_or_else(|error| {
                    self.say(&format!("filling the disk failed: {error}"));
                    0
                });
                self.disk_full = true;
                self.disk_windows.push(DiskWindow {
                    start: self.t(),
                    end: None,
                    filled_mb: filled >> 20,
                    posts_before: self.sim_stats.posts.snapshot(),
                    checks_before: self.sim_stats.checks.snapshot(),
                    attempts_before: self.driver_stats.attempts.snapshot(),
                    report: String::new(),
                });
                self.say(&format!(
                    "disk full: {} MiB filler written, {} bytes left",
                    filled >> 20,
                    self.disk.available().unwrap_or(0)
                ));
            }
            Action::DiskFree => self.free_disk(),
            Action::KillProxyMidStream { proxy } => {
                if self.pending_kill.is_some() {
                    return;
                }
                let (tell, told) = oneshot::channel();
                if self.kill_channels[*proxy]
                    .send(KillRequest { streaming: tell })
                    .await
                    .is_ok()
                {
                    self.pending_kill = Some((*proxy, told, Instant::now()));
                    self.say(&format!("proxy {proxy}: waiting for a slow stream to kill"));
                }
            }
        }
    }

    fn free_disk(&mut self) {
        if !self.disk_full {
            return;
        }
        if let Err(error) = self.disk.free() {
            self.say(&format!("freeing the disk failed: {error}"));
        }
        self.disk_full = false;
        let t = self.t();
        let posts = self.sim_stats.posts.snapshot();
        let checks = self.sim_stats.checks.snapshot();
        let attempts = self.driver_stats.attempts.snapshot();
        if let Some(window) = self.disk_windows.last_mut() {
            window.end = Some(t);
            window.report = format!(
                "events posts: {}; checks: {}; proxy requests: {}",
                sim::delta(&window.posts_before, &posts),
                sim::delta(&window.checks_before, &checks),
                sim::delta(&window.attempts_before, &attempts),
            );
        }
        self.say(&format!(
            "disk freed ({} MiB available)",
            self.disk.available().unwrap_or(0) >> 20
        ));
    }

    /// Restarts what is due, notices what died on its own, kills the proxy
    /// whose slow stream has started, keeps a full disk full.
    async fn tick(&mut self) {
        if let Some(status) = self.server.exited() {
            let text = format!("server exited by itself: {status}");
            self.say(&format!("FINDING: {text}"));
            self.server_crashes.push((self.t(), text));
            self.server_down_until = Some(Instant::now());
        }
        if !self.server.is_running()
            && self
                .server_down_until
                .is_none_or(|until| Instant::now() >= until)
        {
            let why = if self.disk_full {
                "restart on a full disk"
            } else {
                "restart"
            };
            match self.server.start(Duration::from_secs(15), why).await {
                Ok(()) => {
                    self.server_down_until = None;
                    self.say(&format!(
                        "server started again (pid {:?})",
                        self.server.pid()
                    ));
                }
                Err(error) => {
                    let text = format!(
                        "{error:#}{}",
                        if self.disk_full { " (disk full)" } else { "" }
                    );
                    if self.failed_server_starts.len() < 1000 {
                        self.failed_server_starts.push((self.t(), text.clone()));
                    }
                    if self.failed_server_starts.len() <= 3
                        || self.failed_server_starts.len().is_multiple_of(10)
                    {
                        self.say(&format!(
                            "server did not start ({} so far): {text}",
                            self.failed_server_starts.len()
                        ));
                    }
                    self.server_down_until = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
        for i in 0..self.proxies.len() {
            if let Some(status) = self.proxies[i].exited() {
                let text = format!("proxy {i} exited by itself: {status}");
                self.say(&format!("FINDING: {text}"));
                self.proxy_crashes.push((i, self.t(), text));
                self.proxy_restart_at[i] = Some(Instant::now());
            }
            if let Some(at) = self.proxy_restart_at[i]
                && Instant::now() >= at
            {
                match self.proxies[i]
                    .start(Duration::from_secs(20), false, "restart after a kill")
                    .await
                {
                    Ok(()) => {
                        self.proxy_restart_at[i] = None;
                        self.say(&format!("proxy {i} started again"));
                    }
                    Err(error) => {
                        self.say(&format!("proxy {i} did not start: {error:#}"));
                        self.failed_proxy_starts
                            .push((i, self.t(), format!("{error:#}")));
                        self.proxy_restart_at[i] = Some(Instant::now() + Duration::from_secs(1));
                    }
                }
            }
        }
        if let Some((proxy, mut told, asked)) = self.pending_kill.take() {
            match told.try_recv() {
                Ok(turn) => {
                    let pending_events = self.proxies[proxy]
                        .status()
                        .await
                        .and_then(|s| s["pending_events"].as_u64());
                    self.proxies[proxy]
                        .kill(&format!("mid-stream of turn {turn}"))
                        .await;
                    let server_down = !self.server.is_running();
                    self.say(&format!(
                        "proxy {proxy} SIGKILLed mid-stream (turn {turn}, {} events pending in its ledger, server {})",
                        pending_events.map_or("?".to_owned(), |n| n.to_string()),
                        if server_down { "down" } else { "up" }
                    ));
                    self.proxy_kills.push(ProxyKill {
                        proxy,
                        at: self.t(),
                        turn,
                        server_down,
                        pending_events,
                    });
                    self.proxy_restart_at[proxy] = Some(Instant::now() + Duration::from_secs(1));
                }
                Err(oneshot::error::TryRecvError::Empty)
                    if asked.elapsed() < Duration::from_secs(30) =>
                {
                    self.pending_kill = Some((proxy, told, asked));
                }
                Err(_) => {
                    let text = format!("proxy {proxy}: no slow stream started within 30 s");
                    self.say(&text);
                    self.missed_kills.push(text);
                }
            }
        }
        if self.disk_full {
            let _ = self.disk.fill();
        }
    }

    fn sim_pending(&self) -> usize {
        self.sims.iter().map(|d| d.pending()).sum()
    }

    async fn proxies_pending(&self) -> (u64, bool) {
        let mut pending = 0;
        let mut all_answered = true;
        for proxy in &self.proxies {
            match proxy.status().await {
                Some(status) => {
                    pending += status["pending_events"].as_u64().unwrap_or(0)
                        + status["pending_writes"].as_u64().unwrap_or(0);
                }
                None => all_answered = false,
            }
        }
        (pending, all_answered)
    }

    async fn progress(&self) {
        let (proxy_pending, _) = self.proxies_pending().await;
        let s = &self.sim_stats;
        self.say(&format!(
            "simulated: {} recorded, {} acknowledged, {} waiting, {} refused | proxies: {} turns completed, {} events waiting | server {} | disk {}",
            s.recorded.load(Ordering::Relaxed),
            s.acked.load(Ordering::Relaxed),
            self.sim_pending(),
            s.refused.load(Ordering::Relaxed),
            self.driver_stats.completed.lock().unwrap().len(),
            proxy_pending,
            if self.server.is_running() { "up" } else { "DOWN" },
            if self.disk_full {
                "FULL".to_owned()
            } else {
                format!("{} MiB free", self.disk.available().unwrap_or(0) >> 20)
            }
        ));
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn run(o: Options) -> anyhow::Result<bool> {
    sim::check_event_shapes()?;
    for bin in [&o.server_bin, &o.proxy_bin] {
        if !bin.is_file() {
            bail!(
                "{} not found: cargo build --release -p ccgate-server -p ccgate-proxy -p ccgate-tests",
                bin.display()
            );
        }
    }
    let work = match &o.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("ccgate-soak-")
            .tempdir()?
            .keep(),
    };
    let began = std::time::Instant::now();
    let load = Duration::from_secs_f64(o.minutes * 60.0);
    let mut rng = Rng::new(o.seed);
    println!(
        "ccgate-soak: {} devices ({} real proxies, {} simulated), {:.1} min of load, seed {}",
        o.devices,
        o.proxies,
        o.devices - o.proxies,
        o.minutes,
        o.seed
    );
    println!("work dir: {} (logs, databases, findings)", work.display());
    let disk = DataDisk::prepare(&work.join("server-data"), o.tmpfs_mb, !o.no_tmpfs)?;
    match &disk.kind {
        DiskKind::Tmpfs { size_mb } => println!(
            "server data: tmpfs of {size_mb} MiB on {}",
            disk.dir.display()
        ),
        DiskKind::SameFileSystem { reason } | DiskKind::Unavailable { reason } => {
            println!("server data: {} ({reason})", disk.dir.display())
        }
    }
    let port = if o.port == 0 { free_port()? } else { o.port };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = ServerProcess::new(
        o.server_bin.clone(),
        address,
        disk.dir.clone(),
        work.join("server.log"),
        o.server_log.clone(),
    );
    server.start(Duration::from_secs(30), "first start").await?;
    let url = server.url();
    println!("server: {} at {url}", o.server_bin.display());

    let admin = Admin::login(&url).await?;
    let mut codes = Vec::with_capacity(o.devices);
    for i in 0..o.devices {
        codes.push(admin.create_user(&format!("soak-{i:03}")).await?);
    }
    let upstream = FakeAnthropic::start().await;
    upstream.set_responder(drive::responder);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(512)
        .build()?;

    // The real proxies.
    let launch = ProxyLaunch {
        bin: o.proxy_bin.clone(),
        upstream_connect_to: upstream.connect_to(),
        upstream_ca: upstream.ca_file(),
        log_level: o.proxy_log.clone(),
    };
    let mut proxies = Vec::new();
    for (i, code) in codes.iter().enumerate().take(o.proxies) {
        let (device_id, token) = procs::register(&http, &url, code, &format!("proxy-{i}")).await?;
        let root = work.join(format!("proxy-{i}"));
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut machine =
            ProxyMachine::install(i, &root, &url, device_id, &token, address, &launch)?;
        machine
            .start(Duration::from_secs(30), true, "first start")
            .await?;
        proxies.push(machine);
    }
    println!(
        "proxies: {} × {} (logs in {}/proxy-N/proxy.log)",
        o.proxies,
        o.proxy_bin.display(),
        work.display()
    );

    // The simulated devices.
    let registered: Vec<anyhow::Result<(usize, i64, String)>> =
        futures_util::stream::iter(codes.iter().enumerate().skip(o.proxies))
            .map(|(i, code)| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let (id, token) =
                        procs::register(&http, &url, code, &format!("sim-{i:03}")).await?;
                    Ok((i, id, token))
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let mut sims = Vec::new();
    for device in registered {
        let (i, id, token) = device?;
        sims.push(Arc::new(SimDevice::new(i, id, token)));
    }
    sims.sort_by_key(|d| d.index);
    let refused = procs::REGISTER_429.load(Ordering::Relaxed);
    println!(
        "simulated devices: {} registered{}",
        sims.len(),
        if refused > 0 {
            format!(" ({refused} registrations answered 429 and retried)")
        } else {
            String::new()
        }
    );

    let (load_stop, load_stopped) = watch::channel(false);
    let (deliver_stop, deliver_stopped) = watch::channel(false);
    let sim_stats = Arc::new(SimStats::default());
    let mut sim_tasks = Vec::new();
    let think = Duration::from_millis(o.think_ms);
    for device in &sims {
        let tag = device.index as u64;
        sim_tasks.push(tokio::spawn(device.clone().prompts(
            http.clone(),
            url.clone(),
            rng.fork(tag * 3),
            think,
            sim_stats.clone(),
            load_stopped.clone(),
        )));
        sim_tasks.push(tokio::spawn(device.clone().deliver(
            http.clone(),
            url.clone(),
            rng.fork(tag * 3 + 1),
            sim_stats.clone(),
            deliver_stopped.clone(),
        )));
        sim_tasks.push(tokio::spawn(device.clone().live_link(
            http.clone(),
            url.clone(),
            rng.fork(tag * 3 + 2),
            sim_stats.clone(),
            deliver_stopped.clone(),
        )));
    }
    let driver_stats = Arc::new(DriverStats::default());
    let mut drivers = Vec::new();
    let mut kill_channels = Vec::new();
    for proxy in &proxies {
        let ca = std::fs::read(proxy.paths.ca_cert()).context("the proxy's CA")?;
        let (send, receive) = mpsc::channel(1);
        kill_channels.push(send);
        let mut receive = Some(receive);
        for lane in 0..2 {
            drivers.push(tokio::spawn(drive::lane(
                proxy.index,
                lane,
                proxy.address,
                ca.clone(),
                rng.fork(10_000 + proxy.index as u64 * 10 + lane as u64),
                Duration::from_millis(o.proxy_think_ms),
                Duration::from_millis(o.tool_ms),
                driver_stats.clone(),
                receive.take(),
                load_stopped.clone(),
            )));
        }
    }

    let schedule = if o.no_faults {
        Vec::new()
    } else {
        plan(load, o.proxies, &mut rng)
    };
    let mut world = World {
        started: Instant::now(),
        disk,
        server,
        server_down_until: None,
        proxy_restart_at: vec![None; proxies.len()],
        proxies,
        kill_channels,
        pending_kill: None,
        disk_full: false,
        sims,
        sim_stats: sim_stats.clone(),
        driver_stats: driver_stats.clone(),
        server_kills: 0,
        disk_windows: Vec::new(),
        proxy_kills: Vec::new(),
        failed_server_starts: Vec::new(),
        failed_proxy_starts: Vec::new(),
        server_crashes: Vec::new(),
        proxy_crashes: Vec::new(),
        missed_kills: Vec::new(),
    };
    world.say(&format!(
        "load starts at {}; faults planned at {}",
        jiff::Timestamp::now()
            .round(jiff::Unit::Millisecond)
            .unwrap_or(jiff::Timestamp::now()),
        schedule
            .iter()
            .map(|(at, action)| format!("{:.0}s {action:?}", at.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut next = 0;
    let mut last_progress = Instant::now();
    while world.t() < load {
        while next < schedule.len() && world.t() >= schedule[next].0 {
            world.act(&schedule[next].1).await;
            next += 1;
        }
        world.tick().await;
        if last_progress.elapsed() >= Duration::from_secs(10) {
            world.progress().await;
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Faults planned past the end do not happen; the load stops.
    let _ = load_stop.send(true);
    world.free_disk();
    world.say("load stopped; waiting for every device to deliver");

    // Settle: the server up, every ledger empty, every driver done.
    let settle_deadline = Instant::now() + Duration::from_secs(o.settle_secs);
    let mut settled = false;
    while Instant::now() < settle_deadline {
        world.tick().await;
        let drivers_done = drivers.iter().all(|d| d.is_finished());
        let (proxy_pending, answered) = world.proxies_pending().await;
        if world.server.is_running()
            && world.pending_kill.is_none()
            && world.proxy_restart_at.iter().all(Option::is_none)
            && drivers_done
            && answered
            && proxy_pending == 0
            && world.sim_pending() == 0
        {
            settled = true;
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            world.progress().await;
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settle_time = world.t().saturating_sub(load);
    if settled {
        world.say(&format!(
            "settled {:.1} s after the load stopped",
            settle_time.as_secs_f64()
        ));
    } else {
        world.say(&format!(
            "FINDING: not settled within {} s: {} simulated events and {:?} proxy events still waiting",
            o.settle_secs,
            world.sim_pending(),
            world.proxies_pending().await.0
        ));
    }
    let _ = deliver_stop.send(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    for mut task in sim_tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
    for driver in drivers {
        driver.abort();
    }

    // Stop the proxies, then read their ledgers.
    let mut ledgers = Vec::new();
    let mut proxy_exit_problems = Vec::new();
    for proxy in &mut world.proxies {
        match proxy.stop().await {
            Some(status) if status.success() => {}
            Some(status) => {
                proxy_exit_problems.push(format!("proxy {} stopped with {status}", proxy.index))
            }
            None => proxy_exit_problems.push(format!(
                "proxy {} did not stop within 15 s of SIGTERM (killed)",
                proxy.index
            )),
        }
        let events = verify::read_proxy_ledger(&proxy.paths.state_db())?;
        ledgers.push(DeviceLedger {
            name: format!("proxy-{}", proxy.index),
            device_id: proxy.device_id,
            events,
        });
    }
    for device in &world.sims {
        let ledger = device.ledger.lock().unwrap();
        let events = ledger
            .recorded
            .iter()
            .map(|(id, recorded)| DeviceEvent {
                id: id.to_string(),
                kind: recorded.kind.to_owned(),
                prompt: recorded.prompt,
                held: if let Some(reason) = ledger.refused.get(id) {
                    Held::Refused(reason.clone())
                } else if ledger.acked.contains_key(id) {
                    Held::Acked
                } else {
                    Held::Pending
                },
            })
            .collect();
        ledgers.push(DeviceLedger {
            name: format!("sim-{:03}", device.index),
            device_id: device.device_id,
            events,
        });
    }

    // Stop the server, read its database, keep a copy.
    let server_stop = world.server.stop().await;
    let server_stop_problem = match server_stop {
        Some(status) if status.success() => None,
        Some(status) => Some(format!("the server stopped with {status}")),
        None if world.server_crashes.is_empty() && world.server.starts > 0 => {
            Some("the server did not stop within 20 s of SIGTERM (killed)".to_owned())
        }
        None => None,
    };
    let db = world.disk.dir.join("ccgate.db");
    let stored = verify::read_server(&db)?;
    for suffix in ["", "-wal"] {
        let from = world.disk.dir.join(format!("ccgate.db{suffix}"));
        if from.exists() {
            let _ = std::fs::copy(&from, work.join(format!("ccgate.db{suffix}")));
        }
    }
    world.disk.unmount();

    let reckoning = verify::reckon(&ledgers, &stored);
    let report = Report {
        o: &o,
        world: &world,
        ledgers: &ledgers,
        stored: &stored,
        reckoning: &reckoning,
        upstream: &upstream,
        work: &work,
        settled,
        settle_time,
        proxy_exit_problems: &proxy_exit_problems,
        server_stop_problem: server_stop_problem.as_deref(),
        total: began.elapsed(),
    };
    let clean = report.print()?;
    if clean && !o.keep && o.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("work dir kept: {}", work.display());
    }
    Ok(clean)
}

struct Report<'a> {
    o: &'a Options,
    world: &'a World,
    ledgers: &'a [DeviceLedger],
    stored: &'a [verify::ServerEvent],
    reckoning: &'a verify::Reckoning,
    upstream: &'a FakeAnthropic,
    work: &'a Path,
    settled: bool,
    settle_time: Duration,
    proxy_exit_problems: &'a [String],
    server_stop_problem: Option<&'a str>,
    total: Duration,
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn grep_count(path: &Path, needles: &[&str]) -> usize {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter(|line| needles.iter().any(|n| line.contains(n)))
                .count()
        })
        .unwrap_or(0)
}

impl Report<'_> {
    /// Prints the findings and the closing line; true when nothing is wrong.
    fn print(&self) -> anyhow::Result<bool> {
        let (w, r) = (self.world, self.reckoning);
        let mut details = String::new();
        let mut findings: Vec<String> = Vec::new();
        println!();
        println!("== faults ==");
        println!(
            "server: {} SIGKILLs, {} starts in all, {} failed starts",
            w.server_kills,
            w.server.starts,
            w.failed_server_starts.len()
        );
        let mut failed_reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, reason) in &w.failed_server_starts {
            *failed_reasons.entry(reason.as_str()).or_default() += 1;
        }
        for (reason, n) in failed_reasons {
            println!("  failed start ×{n}: {reason}");
        }
        for window in &w.disk_windows {
            println!(
                "disk full {:.1}s – {}: {} MiB filler; devices met: {}",
                window.start.as_secs_f64(),
                window
                    .end
                    .map_or("end".to_owned(), |e| format!("{:.1}s", e.as_secs_f64())),
                window.filled_mb,
                window.report
            );
        }
        for kill in &w.proxy_kills {
            println!(
                "proxy {} SIGKILLed mid-stream at {:.1}s (turn {}, {} events pending, server {})",
                kill.proxy,
                kill.at.as_secs_f64(),
                kill.turn,
                kill.pending_events
                    .map_or("?".to_owned(), |n| n.to_string()),
                if kill.server_down { "down" } else { "up" }
            );
        }
        for (proxy, t, text) in &w.failed_proxy_starts {
            println!(
                "proxy {proxy} did not start at {:.1}s: {text}",
                t.as_secs_f64()
            );
        }
        for text in &w.missed_kills {
            println!("not done: {text}");
        }
        for (t, text) in &w.server_crashes {
            findings.push(format!("{text} at {:.1}s", t.as_secs_f64()));
        }
        for (_, t, text) in &w.proxy_crashes {
            findings.push(format!("{text} at {:.1}s", t.as_secs_f64()));
        }
        for text in self.proxy_exit_problems {
            findings.push(text.clone());
        }
        if let Some(text) = self.server_stop_problem {
            findings.push(text.to_owned());
        }

        println!();
        println!("== traffic ==");
        let s = &w.sim_stats;
        println!(
            "simulated devices: {} events recorded, {} acknowledged ({} as already stored), {} refused; events posts: {:?}",
            s.recorded.load(Ordering::Relaxed),
            s.acked.load(Ordering::Relaxed),
            s.duplicates.load(Ordering::Relaxed),
            s.refused.load(Ordering::Relaxed),
            s.posts.snapshot()
        );
        println!("simulated checks: {:?}", s.checks.snapshot());
        println!("simulated live links: {:?}", s.links.snapshot());
        let miscounted = s.miscounted_answers.load(Ordering::Relaxed);
        if miscounted > 0 {
            findings.push(format!(
                "{miscounted} events answers whose accepted + duplicates + refused did not add up to the batch"
            ));
        }
        for (id, reason) in s.refusals.lock().unwrap().iter() {
            println!("  refused {id}: {reason}");
        }
        let completed = w.driver_stats.completed.lock().unwrap().clone();
        let abandoned = w.driver_stats.abandoned.lock().unwrap().clone();
        println!(
            "real proxies: {} turns completed, {} abandoned; requests by outcome: {:?}",
            completed.len(),
            abandoned.len(),
            w.driver_stats.attempts.snapshot()
        );
        for (proxy, key, last) in abandoned.iter().take(10) {
            println!("  abandoned on proxy {proxy}: {key} ({last})");
        }
        let upstream_requests = self.upstream.messages_requests();
        for proxy in &w.proxies {
            let prefix = format!("soak-p{}-", proxy.index);
            let reached = upstream_requests
                .iter()
                .filter(|q| {
                    q.header("x-claude-code-session-id")
                        .is_some_and(|s| s.starts_with(&prefix))
                })
                .count();
            let ledger = &self.ledgers[proxy.index];
            let requests = ledger.events.iter().filter(|e| e.kind == "request").count();
            let quarantined = ledger
                .events
                .iter()
                .filter(|e| matches!(e.held, Held::Refused(_)))
                .count();
            let completed_requests = w
                .driver_stats
                .completed_requests
                .snapshot()
                .get(&format!("proxy {}", proxy.index))
                .copied()
                .unwrap_or(0) as usize;
            println!(
                "  proxy {}: {} events in its ledger ({} requests, {} prompts, {} quarantined); {} requests reached the fake Anthropic, {} completed at the client; {} starts",
                proxy.index,
                ledger.events.len(),
                requests,
                ledger.events.iter().filter(|e| e.prompt).count(),
                quarantined,
                reached,
                completed_requests,
                proxy.starts
            );
            // A reply the client got whole is in the ledger, unless the
            // daemon died before writing it down.
            if requests < completed_requests {
                findings.push(format!(
                    "proxy {}: {} requests completed at the client but only {} request events in its ledger",
                    proxy.index, completed_requests, requests
                ));
            }
        }

        // Every completed turn of a real proxy counted once at the server.
        let counted: HashSet<(i64, String)> = self
            .stored
            .iter()
            .filter(|e| e.prompts > 0)
            .filter_map(|e| {
                Some((
                    e.device_id?,
                    verify::turn_base(e.turn_key.as_deref()?).to_owned(),
                ))
            })
            .collect();
        let device_of: HashMap<usize, i64> =
            w.proxies.iter().map(|p| (p.index, p.device_id)).collect();
        let uncounted: Vec<&(usize, String)> = completed
            .iter()
            .filter(|(proxy, key)| !counted.contains(&(device_of[proxy], key.clone())))
            .collect();

        let server_log = self.work.join("server.log");
        let server_panics = grep_count(&server_log, &["panicked"]);
        let server_full = grep_count(
            &server_log,
            &["disk is full", "SQLITE_FULL", "DiskFull", "No space left"],
        );
        let proxy_panics: usize = w
            .proxies
            .iter()
            .map(|p| grep_count(&p.log, &["panicked"]))
            .sum();
        println!(
            "server log: {server_full} lines about a full disk, {server_panics} panics; proxy logs: {proxy_panics} panics"
        );
        if server_panics > 0 {
            findings.push(format!("{server_panics} panics in server.log"));
        }
        if proxy_panics > 0 {
            findings.push(format!("{proxy_panics} panics in the proxies' logs"));
        }

        println!();
        println!("== reckoning ==");
        println!(
            "recorded by devices: {} events ({} counted prompts); in ccgate.db: {} events ({} counted prompts)",
            thousands(r.recorded as u64),
            thousands(r.prompts_recorded),
            thousands(r.at_server as u64),
            thousands(r.prompts_at_server)
        );
        let mut list = |title: &str, rows: Vec<String>| {
            if rows.is_empty() {
                return;
            }
            let _ = writeln!(details, "{title} ({}):", rows.len());
            for row in &rows {
                let _ = writeln!(details, "  {row}");
            }
            println!("{title}: {}", rows.len());
            for row in rows.iter().take(10) {
                println!("  {row}");
            }
            if rows.len() > 10 {
                println!("  … (all in findings.txt)");
            }
        };
        list(
            "LOST: acknowledged by the server, not in its database",
            r.lost_after_ack
                .iter()
                .map(|(d, id, k)| format!("{d} {id} {k}"))
                .collect(),
        );
        list(
            "LOST: never delivered (still in a device's ledger)",
            r.undelivered
                .iter()
                .map(|(d, id, k)| format!("{d} {id} {k}"))
                .collect(),
        );
        list(
            "LOST: refused by the server and set aside",
            r.refused
                .iter()
                .map(|(d, id, why)| format!("{d} {id}: {why}"))
                .collect(),
        );
        list(
            "stored under another device",
            r.misplaced
                .iter()
                .map(|(d, id, other)| format!("{d} {id} stored for device {other:?}"))
                .collect(),
        );
        list(
            "at the server, recorded by no device",
            r.unknown
                .iter()
                .map(|(id, device, kind)| format!("{id} device {device:?} {kind}"))
                .collect(),
        );
        list(
            "DOUBLED: a turn counted more than once",
            r.doubled_turns
                .iter()
                .map(|(device, key, reasons)| {
                    format!(
                        "device {device} turn {key}: {} times ({})",
                        reasons.len(),
                        reasons.join(", ")
                    )
                })
                .collect(),
        );
        list("DOUBLED: an id stored twice", r.doubled_ids.clone());
        list(
            "counted prompts differ (device: recorded, at the server)",
            r.prompt_mismatch
                .iter()
                .map(|(d, mine, theirs)| format!("{d}: {mine}, {theirs}"))
                .collect(),
        );
        list(
            "completed turns of a real proxy never counted at the server",
            uncounted
                .iter()
                .map(|(proxy, key)| format!("proxy {proxy} turn {key}"))
                .collect(),
        );
        if !r.misplaced.is_empty() {
            findings.push(format!(
                "{} events stored under another device",
                r.misplaced.len()
            ));
        }
        if !r.unknown.is_empty() {
            findings.push(format!(
                "{} events at the server that no device recorded",
                r.unknown.len()
            ));
        }
        if !r.prompt_mismatch.is_empty() {
            findings.push(format!(
                "counted prompts differ on {} devices",
                r.prompt_mismatch.len()
            ));
        }
        if !uncounted.is_empty() {
            findings.push(format!(
                "{} completed turns of real proxies never counted",
                uncounted.len()
            ));
        }
        if !self.settled {
            findings.push("delivery did not settle (a wedge?)".to_owned());
        }
        for finding in &findings {
            println!("FINDING: {finding}");
            let _ = writeln!(details, "FINDING: {finding}");
        }
        std::fs::write(self.work.join("findings.txt"), &details)?;

        let kills = w.proxy_kills.len();
        let disk_periods = w.disk_windows.len();
        println!();
        println!(
            "duration: {} min {} s in all (setup, {:.1} min of load, settled {:.1} s after it, the reckoning)",
            self.total.as_secs() / 60,
            self.total.as_secs() % 60,
            self.o.minutes,
            self.settle_time.as_secs_f64()
        );
        // Why turns were counted twice, by the reason of each extra count.
        let mut extra: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, reasons) in &r.doubled_turns {
            for reason in reasons.iter().skip(1) {
                *extra.entry(reason.as_str()).or_default() += 1;
            }
        }
        let why = if extra.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = extra
                .iter()
                .map(|(reason, n)| match *reason {
                    "unconfirmed" => format!("{n} tool results counted as new prompts"),
                    other => format!("{n} counted again as {other}"),
                })
                .collect();
            format!(" ({})", parts.join(", "))
        };
        println!(
            "soak: {} events from {} devices, {} server kill{}, {} disk-full period{}, {} prox{} killed mid-stream: {} lost, {} doubled{why}",
            thousands(r.recorded as u64),
            self.ledgers.len(),
            w.server_kills,
            if w.server_kills == 1 { "" } else { "s" },
            disk_periods,
            if disk_periods == 1 { "" } else { "s" },
            kills,
            if kills == 1 { "y" } else { "ies" },
            r.lost(),
            r.doubled()
        );
        Ok(r.lost() == 0 && r.doubled() == 0 && findings.is_empty())
    }
}
