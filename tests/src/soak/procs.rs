//! The real `ccgate-server` and `ccgate-proxy` binaries as child processes
//! the soak can SIGKILL and start again on the same data: every child is
//! `kill_on_drop`, its output appended to a log file in the work dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use ccgate_proxy::config::ProxyConfig;
use ccgate_proxy::fsutil::{create_dir_with_mode, write_atomic};
use ccgate_proxy::paths::{Paths, Platform};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const ADMIN_PASSWORD: &str = "soak: correct horse battery staple";

/// Appends a marker line to a log file (between a child's runs).
pub fn log_marker(log: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(file, "===== soak {}: {text} =====", jiff::Timestamp::now());
    }
}

fn log_file(log: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    Ok((Stdio::from(file.try_clone()?), Stdio::from(file)))
}

/// Sends SIGTERM (no unsafe code in this workspace: through `kill`).
fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// SIGKILLs `child` and reaps it.
async fn kill_child(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}

/// SIGTERM, then SIGKILL after `grace`; the exit status if it stopped by itself.
async fn stop_child(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Some(pid) = child.id() {
        terminate(pid);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            kill_child(child).await;
            None
        }
    }
}

pub struct ServerProcess {
    pub bin: PathBuf,
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub log_level: String,
    child: Option<Child>,
    /// Processes started (the first start included).
    pub starts: u32,
}

impl ServerProcess {
    pub fn new(
        bin: PathBuf,
        address: SocketAddr,
        data_dir: PathBuf,
        log: PathBuf,
        log_level: String,
    ) -> Self {
        Self {
            bin,
            address,
            data_dir,
            log,
            log_level,
            child: None,
            starts: 0,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts the binary and waits (at most `limit`) for `/healthz`. A
    /// process that exits or stays unhealthy is killed and reported.
    pub async fn start(&mut self, limit: Duration, why: &str) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        log_marker(
            &self.log,
            &format!("server start #{}: {why}", self.starts + 1),
        );
        let (out, err) = log_file(&self.log)?;
        let mut child = Command::new(&self.bin)
            .arg("--port")
            .arg(self.address.port().to_string())
            .arg("--bind")
            .arg(self.address.ip().to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("PUBLIC_URL", self.url())
            .env("RUST_LOG", &self.log_level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.starts += 1;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .no_proxy()
            .build()?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("the server exited at start ({status})");
            }
            if let Ok(response) = http.get(format!("{}/healthz", self.url())).send().await
                && response.status().is_success()
            {
                self.child = Some(child);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                kill_child(&mut child).await;
                bail!("the server did not answer /healthz within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown path runs.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            log_marker(&self.log, "server SIGKILLed by the soak");
            kill_child(&mut child).await;
        }
    }

    /// SIGTERM and wait; `None` when it had to be killed.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        log_marker(&self.log, "server stopped (SIGTERM) by the soak");
        stop_child(&mut child, Duration::from_secs(20)).await
    }

    /// An exit nobody asked for.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        log_marker(&self.log, &format!("server exited by itself: {status}"));
        Some(status)
    }
}

/// An admin API client (bearer token).
pub struct Admin {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    pub async fn login(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()?;
        let response = http
            .post(format!("{url}/api/admin/login"))
            .json(&json!({"password": ADMIN_PASSWORD}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let token = body["token"]
            .as_str()
            .with_context(|| format!("admin login: {status} {body}"))?
            .to_owned();
        Ok(Self {
            url: url.to_owned(),
            token,
            http,
        })
    }

    /// Creates a user without limits; returns its install code.
    pub async fn create_user(&self, name: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/api/admin/users", self.url))
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "limits": []}))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        body["install_code"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("create user {name}: {status} {body}"))
    }
}

/// Registrations answered 429 (and retried).
pub static REGISTER_429: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Registers a device with an install code; returns (device id, token);
/// a 429 is waited out (its Retry-After) and tried again.
pub async fn register(
    http: &reqwest::Client,
    server_url: &str,
    code: &str,
    hostname: &str,
) -> anyhow::Result<(i64, String)> {
    let mut last = String::new();
    let mut wait = Duration::ZERO;
    for _ in 0..30 {
        tokio::time::sleep(wait).await;
        wait = Duration::from_millis(500);
        let sent = http
            .post(format!("{server_url}/api/agent/v1/register"))
            .json(&json!({
                "code": code,
                "device": {"hostname": hostname, "os": "linux", "arch": "x86_64",
                           "os_user": "soak", "agent_version": "soak"},
            }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await?;
                let id = body["device_id"].as_i64().context("device_id")?;
                let token = body["device_token"]
                    .as_str()
                    .context("device_token")?
                    .to_owned();
                return Ok((id, token));
            }
            Ok(response) => {
                let status = response.status();
                if let Some(seconds) = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    wait = Duration::from_secs(seconds.clamp(1, 10));
                }
                last = format!("{status} {}", response.text().await.unwrap_or_default());
                if status.as_u16() == 429 {
                    REGISTER_429.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if status.is_client_error() {
                    break;
                }
            }
            Err(error) => last = error.to_string(),
        }
    }
    bail!("register {hostname}: {last}")
}

/// A developer machine under a root prefix in the work dir, running the
/// real `ccgate-proxy` binary as its own process.
pub struct ProxyMachine {
    pub index: usize,
    pub paths: Paths,
    pub device_id: i64,
    pub address: SocketAddr,
    pub log: PathBuf,
    bin: PathBuf,
    upstream_connect_to: String,
    upstream_ca: PathBuf,
    log_level: String,
    child: Option<Child>,
    pub starts: u32,
}

pub struct ProxyLaunch {
    pub bin: PathBuf,
    pub upstream_connect_to: String,
    pub upstream_ca: PathBuf,
    pub log_level: String,
}

impl ProxyMachine {
    /// Writes the files `ccgate setup` would (config, token) under `root`.
    pub fn install(
        index: usize,
        root: &Path,
        server_url: &str,
        device_id: i64,
        token: &str,
        address: SocketAddr,
        launch: &ProxyLaunch,
    ) -> anyhow::Result<Self> {
        let paths = Paths::new(root, Platform::Linux);
        create_dir_with_mode(&paths.state_dir(), 0o700)?;
        let mut config = ProxyConfig::new(server_url, device_id);
        config.listen = address;
        config.check_timeout_ms = 1000;
        config.os_user = Some("soak".into());
        config.os_user_home = Some(root.join("home/soak"));
        write_atomic(&paths.config_file(), config.to_toml().as_bytes(), 0o600)?;
        write_atomic(&paths.device_token(), token.as_bytes(), 0o600)?;
        Ok(Self {
            index,
            log: root.join("proxy.log"),
            paths,
            device_id,
            address,
            bin: launch.bin.clone(),
            upstream_connect_to: launch.upstream_connect_to.clone(),
            upstream_ca: launch.upstream_ca.clone(),
            log_level: launch.log_level.clone(),
            child: None,
            starts: 0,
        })
    }

    /// Starts the daemon; waits (at most `limit`) until its status
    /// endpoint answers (with a policy, if `need_policy`).
    pub async fn start(
        &mut self,
        limit: Duration,
        need_policy: bool,
        why: &str,
    ) -> anyhow::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        log_marker(
            &self.log,
            &format!("proxy {} start #{}: {why}", self.index, self.starts + 1),
        );
        let (out, err) = log_file(&self.log)?;
        let mut child = Command::new(&self.bin)
            .arg("--root")
            .arg(self.paths.root())
            .env("CCGATE_UPSTREAM_CONNECT_TO", &self.upstream_connect_to)
            .env("CCGATE_UPSTREAM_CA_FILE", &self.upstream_ca)
            .env("CCGATE_TUNNEL_ONLY_ANTHROPIC", "1")
            .env("CCGATE_LOG", &self.log_level)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        self.starts += 1;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("proxy {} exited at start ({status})", self.index);
            }
            if let Some(status) = self.status().await
                && (!need_policy || !status["policy_version"].is_null())
            {
                self.child = Some(child);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                kill_child(&mut child).await;
                bail!("proxy {} had no policy within {limit:?}", self.index);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn status(&self) -> Option<Value> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .ok()?;
        http.get(format!("http://{}/ccgate/status", self.address))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    pub async fn kill(&mut self, why: &str) {
        if let Some(mut child) = self.child.take() {
            log_marker(&self.log, &format!("proxy SIGKILLed by the soak: {why}"));
            kill_child(&mut child).await;
        }
    }

    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        log_marker(&self.log, "proxy stopped (SIGTERM) by the soak");
        stop_child(&mut child, Duration::from_secs(15)).await
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        log_marker(&self.log, &format!("proxy exited by itself: {status}"));
        Some(status)
    }
}
