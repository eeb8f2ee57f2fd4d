//! Starting and stopping the daemon: load config, token, CA and ledger,
//! restore the cached policy and usage, start the background tasks and the
//! proxy, and on shutdown let every ending reach the ledger.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ccgate_quota::wire::DeviceInfo;
use hudsucker::Proxy;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::ca::{CaError, MachineCa};
use crate::config::{ConfigError, ProxyConfig, UpstreamOverrides};
use crate::egress::Egress;
use crate::handler::GateHandler;
use crate::ledger::{Ledger, LedgerError};
use crate::link::ServerLink;
use crate::paths::Paths;
use crate::state::{Hooks, NoHooks, SAVED_SYNC_KEY, SavedSync, Shared};
use crate::turns::TURN_MEMORY;
use crate::upstream::{self, UpstreamError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Token(#[from] ccgate_machine::token::TokenError),
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Egress(#[from] crate::egress::BadProxyUrl),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("proxy failed: {0}")]
    Proxy(String),
}

pub struct DaemonOptions {
    pub paths: Paths,
    pub overrides: UpstreamOverrides,
    pub hooks: Box<dyn Hooks>,
}

impl DaemonOptions {
    pub fn new(paths: Paths) -> Self {
        Self {
            paths,
            overrides: UpstreamOverrides::default(),
            hooks: Box::new(NoHooks),
        }
    }
}

pub use ccgate_machine::token::read_token;

fn device_info(config: &ProxyConfig, paths: &Paths) -> DeviceInfo {
    DeviceInfo {
        hostname: crate::os::hostname(),
        os: paths.platform().as_str().to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        os_version: None,
        os_user: config.os_user.clone(),
        claude_version: None,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        // The installed daemon's bytes: what the server compares with its
        // release (a daemon run from elsewhere reports the installed one).
        agent_build: crate::fsutil::sha256_file(&paths.daemon_binary()).ok(),
    }
}

/// The extra CA for the server link too (a TLS-inspecting proxy sees both).
fn server_roots(
    extra_ca: Option<&std::path::Path>,
) -> Result<Vec<reqwest::Certificate>, DaemonError> {
    let Some(path) = extra_ca else {
        return Ok(Vec::new());
    };
    upstream::read_certificates(path)?
        .iter()
        .map(|der| {
            reqwest::Certificate::from_der(der).map_err(|e| {
                DaemonError::Upstream(UpstreamError::CaFile {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
            })
        })
        .collect()
}

/// A daemon running in this process (tests and `main`).
pub struct RunningDaemon {
    pub address: SocketAddr,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), DaemonError>>,
}

impl RunningDaemon {
    /// Stops gracefully: every reply that ended is in the ledger.
    pub async fn stop(self) -> Result<(), DaemonError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| DaemonError::Proxy(e.to_string()))?
    }

    /// Stops like a crash: nothing is flushed (tests of durability).
    pub fn abort(self) {
        self.task.abort();
    }

    /// Waits until the daemon stops by itself (main).
    pub async fn wait(self) -> Result<(), DaemonError> {
        self.task
            .await
            .map_err(|e| DaemonError::Proxy(e.to_string()))?
    }

    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Starts the daemon on `listener` (or on the configured address).
pub async fn start(
    options: DaemonOptions,
    listener: Option<TcpListener>,
) -> Result<RunningDaemon, DaemonError> {
    // Both rustls backends are linked (hudsucker and rcgen pull different
    // ones); name the one to use process-wide.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let paths = options.paths;
    let config = ProxyConfig::load(&paths.config_file())?;
    let token = read_token(&paths)?;
    let ca = MachineCa::load_or_create(&paths)?;
    let ledger = Ledger::open(&paths.state_db())?;
    let egress = Egress::new(config.upstream_proxy.as_deref())?;
    let connector = upstream::connector(&options.overrides, &egress, config.extra_ca.as_deref())?;
    let extra_roots = server_roots(config.extra_ca.as_deref())?;
    let listener = match listener {
        Some(listener) => listener,
        None => TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                address: config.listen,
                source,
            })?,
    };
    let address = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            address: config.listen,
            source,
        })?;
    // Accepted sockets inherit it: SSE chunks go out at once instead of
    // waiting for the client's delayed ACK (Nagle), which cost ~40 ms.
    if let Err(error) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
        tracing::warn!("cannot set TCP_NODELAY on the listener: {error}");
    }

    let (endings_tx, endings_rx) = mpsc::unbounded_channel();
    let link = ServerLink::through(
        config.server_url(),
        token,
        paths.device_token(),
        &egress,
        &extra_roots,
    );
    let device = device_info(&config, &paths);
    let shared = Arc::new(Shared::new(
        paths,
        config,
        address,
        link,
        ledger,
        device,
        endings_tx,
        options.hooks,
    ));
    restore(&shared)?;

    let (stop, stop_rx) = watch::channel(false);
    let handler = GateHandler::new(shared.clone(), options.overrides.refuse_other_hosts);
    let mut proxy_stop = stop_rx.clone();
    let proxy = Proxy::builder()
        .with_listener(listener)
        .with_ca(ca.into_authority())
        .with_http_connector(connector)
        .with_http_handler(handler)
        .with_graceful_shutdown(async move {
            let _ = proxy_stop.wait_for(|stop| *stop).await;
        })
        .build()
        .map_err(|e| DaemonError::Proxy(e.to_string()))?;

    let tasks = vec![
        tokio::spawn(crate::sender::run(shared.clone(), stop_rx.clone())),
        tokio::spawn(crate::live::run_sync(shared.clone(), stop_rx.clone())),
        tokio::spawn(crate::live::run_stream(shared.clone(), stop_rx.clone())),
        tokio::spawn(crate::housekeeping::run(shared.clone(), stop_rx.clone())),
        tokio::spawn(crate::guard::watchdog::run(shared.clone(), stop_rx.clone())),
        tokio::spawn(crate::credential_task::run(shared.clone(), stop_rx.clone())),
        tokio::spawn(crate::update::run(shared.clone(), stop_rx.clone())),
    ];
    let recorder = tokio::spawn(crate::recorder::run(
        shared.clone(),
        endings_rx,
        stop_rx.clone(),
    ));
    tracing::info!(%address, server = shared.link.server_url(), "ccgate-proxy listening");
    let task = tokio::spawn(async move {
        let result = proxy
            .start()
            .await
            .map_err(|e| DaemonError::Proxy(e.to_string()));
        for task in tasks {
            let _ = task.await;
        }
        let _ = recorder.await;
        result
    });
    Ok(RunningDaemon {
        address,
        shared,
        stop,
        task,
    })
}

/// Runs until `shutdown` completes (the binary's entry point).
pub async fn serve(
    options: DaemonOptions,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Exit, DaemonError> {
    let daemon = start(options, listener).await?;
    let stop = daemon.stop_handle();
    let mut restart = daemon.shared.updates.restart_requested();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => {}
            _ = restart.wait_for(Option::is_some) => {}
        }
        let _ = stop.send(true);
    });
    let restart = daemon.shared.updates.restart_requested();
    daemon.wait().await?;
    let into = restart.borrow().clone();
    Ok(into.map_or(Exit::Stopped, Exit::Restart))
}

/// How the daemon ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop.
    Stopped,
    /// An update is in place: run this binary (with the same arguments).
    Restart(PathBuf),
}

/// Restores the cached policy, the usage recorded since its snapshot and the
/// turns already counted, so a restart neither forgets nor double-counts.
fn restore(shared: &Arc<Shared>) -> Result<(), DaemonError> {
    let ledger = &shared.ledger;
    let mut included_seq = 0;
    if let Some(saved) = ledger.get(SAVED_SYNC_KEY)? {
        match serde_json::from_str::<SavedSync>(&saved) {
            Ok(saved) => {
                included_seq = saved.included_seq;
                shared.apply_sync(saved.sync, saved.included_seq, false);
            }
            Err(e) => tracing::warn!("ignoring an unreadable cached policy: {e}"),
        }
    }
    let since = Timestamp::now()
        .checked_sub(TURN_MEMORY)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    shared.accounting.restore(
        ledger.usage_after(included_seq)?,
        ledger.counted_turns_since(since)?,
        ledger.tool_uses_since(since)?,
    );
    let first_unacked = ledger.unacked(1)?.events.first().map(|(seq, _)| *seq);
    let acked_through = match first_unacked {
        Some(seq) => seq - 1,
        None => ledger.last_seq()?,
    };
    shared.outbox.set_acked_through(acked_through);
    Ok(())
}
