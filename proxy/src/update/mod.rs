//! Upgrades without a visit: when the server offers an agent release and the
//! team leaves auto-update on, the daemon downloads it, checks its signature
//! and checksums ([`verify`]), puts it in place ([`install`]), reports what
//! happened, and restarts into it. A failed update leaves the running
//! version alone and is reported to the server.

mod install;
pub mod verify;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccgate_quota::release::{
    AgentRelease, DAEMON, PROGRAMS, SIGNATURE_FILE, SUMS_FILE, file_name, is_newer, this_platform,
};
use ccgate_quota::wire::{AgentEvent, AgentUpdate, EventBody, UpdateOutcome};
use tokio::sync::{Notify, watch};

use crate::fsutil::sha256_hex;
use crate::state::Shared;

/// A release that failed is tried again after this long (or when the
/// server offers a different one).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(3600);
/// How often the offered release is looked at without a new sync.
const RECHECK: Duration = Duration::from_secs(600);
/// The release version this machine installed last (the binary's own
/// version may be older when a bundle re-signs the same build).
const INSTALLED_RELEASE_KEY: &str = "installed_release";

#[derive(Debug)]
pub struct Updates {
    offered: Mutex<Option<AgentRelease>>,
    wakeup: Notify,
    restart: watch::Sender<Option<PathBuf>>,
    state: Mutex<UpdateState>,
}

#[derive(Debug, Default)]
struct UpdateState {
    /// SHA-256 of the installed daemon binary.
    installed_build: Option<String>,
    /// The newest version known to run here.
    running: String,
    last_failure: Option<(String, Instant)>,
}

impl Default for Updates {
    fn default() -> Self {
        Self {
            offered: Mutex::new(None),
            wakeup: Notify::new(),
            restart: watch::Sender::new(None),
            state: Mutex::new(UpdateState::default()),
        }
    }
}

impl Updates {
    /// The server's latest word on its release (every sync).
    pub fn offer(&self, release: Option<AgentRelease>) {
        let mut offered = self.offered.lock().unwrap_or_else(|e| e.into_inner());
        if *offered != release {
            *offered = release;
            self.wakeup.notify_one();
        }
    }

    /// Set to the binary to run once an update is in place.
    pub fn restart_requested(&self) -> watch::Receiver<Option<PathBuf>> {
        self.restart.subscribe()
    }

    fn offered(&self) -> Option<AgentRelease> {
        self.offered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, UpdateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Watches for offered releases until shutdown (or until one is installed).
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    {
        let installed = shared.ledger.get(INSTALLED_RELEASE_KEY).ok().flatten();
        let own = env!("CARGO_PKG_VERSION").to_owned();
        let mut state = shared.updates.state();
        state.installed_build = shared.device.agent_build.clone();
        state.running = match installed {
            Some(installed) if is_newer(&installed, &own) => installed,
            _ => own,
        };
    }
    loop {
        if let Some(release) = shared.updates.offered()
            && due(&shared, &release)
            && let Some(daemon) = try_release(&shared, &release).await
        {
            let _ = shared.updates.restart.send(Some(daemon));
            return;
        }
        tokio::select! {
            _ = shared.updates.wakeup.notified() => {}
            _ = tokio::time::sleep(RECHECK) => {}
            _ = crate::stopped(&mut stop) => return,
        }
    }
}

/// Whether `release` should be tried now.
fn due(shared: &Shared, release: &AgentRelease) -> bool {
    let auto_update = shared.policy().is_some_and(|p| p.policy.auto_update);
    let state = shared.updates.state();
    let worth = verify::worth_trying(
        release,
        auto_update,
        state.installed_build.as_deref(),
        &state.running,
        &this_platform(),
    );
    let target = release
        .sha256_of(DAEMON, &this_platform())
        .unwrap_or_default();
    let failed_lately = state
        .last_failure
        .as_ref()
        .is_some_and(|(sha, at)| sha == target && at.elapsed() < RETRY_AFTER_FAILURE);
    worth && !failed_lately
}

/// Installs `release`; the daemon's path when it is in place. Either way
/// the outcome goes to the server.
async fn try_release(shared: &Arc<Shared>, release: &AgentRelease) -> Option<PathBuf> {
    let from = shared.updates.state().running.clone();
    tracing::info!(from = %from, to = %release.version, "installing the server's agent release");
    let result = fetch_and_install(shared).await;
    let (to_version, outcome, detail) = match &result {
        Ok((version, sha)) => {
            let mut state = shared.updates.state();
            state.installed_build = Some(sha.clone());
            state.running = version.clone();
            drop(state);
            if let Err(error) = shared.ledger.put(INSTALLED_RELEASE_KEY, version) {
                tracing::warn!("cannot note the installed release: {error}");
            }
            tracing::info!(version = %version, "agent release installed; restarting into it");
            (
                version.clone(),
                UpdateOutcome::Installed,
                format!("daemon {sha}"),
            )
        }
        Err(reason) => {
            tracing::error!(version = %release.version, "agent update failed: {reason}");
            let target = release
                .sha256_of(DAEMON, &this_platform())
                .unwrap_or_default();
            shared.updates.state().last_failure = Some((target.to_owned(), Instant::now()));
            (
                release.version.clone(),
                UpdateOutcome::Failed,
                reason.clone(),
            )
        }
    };
    let event = AgentEvent {
        id: uuid::Uuid::now_v7(),
        at: shared.now(),
        body: EventBody::AgentUpdate(AgentUpdate {
            from_version: from,
            to_version,
            outcome,
            detail,
        }),
    };
    let stored = {
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || shared.store_event(event)).await
    };
    if stored.is_err() {
        tracing::error!("cannot store the update's event");
    }
    result.ok().map(|_| shared.paths.daemon_binary())
}

/// Downloads, verifies and installs; the signed version and the new
/// daemon's SHA-256.
async fn fetch_and_install(shared: &Arc<Shared>) -> Result<(String, String), String> {
    let download = async |file: &str| {
        shared
            .link
            .download(file)
            .await
            .map_err(|e| format!("cannot download {file}: {e}"))
    };
    let sums = download(SUMS_FILE).await?;
    let signature = download(SIGNATURE_FILE).await?;
    let keys_file = shared.paths.release_keys();
    let keys = verify::trusted_keys(&keys_file);
    let running = shared.updates.state().running.clone();
    let verified = verify::verify(
        &sums,
        &String::from_utf8_lossy(&signature),
        &keys,
        &running,
        &keys_file,
    )
    .map_err(|e| e.to_string())?;
    let platform = this_platform();
    let mut binaries = Vec::new();
    for program in PROGRAMS {
        let name = file_name(program, &platform);
        let expected = verified
            .files
            .get(&name)
            .ok_or_else(|| format!("release {} has no {name}", verified.version))?;
        let bytes = download(&name).await?;
        let actual = sha256_hex(&bytes);
        if actual != *expected {
            return Err(format!(
                "{name} does not match the signed SHA256SUMS (expected {expected}, got {actual})"
            ));
        }
        binaries.push((program, bytes, actual));
    }
    let daemon = binaries.iter().find(|(p, _, _)| *p == DAEMON).cloned();
    let cli = binaries.iter().find(|(p, _, _)| *p != DAEMON).cloned();
    let (Some((_, daemon, daemon_sha)), Some((_, cli, _))) = (daemon, cli) else {
        return Err("the release lacks a program".to_owned());
    };
    let paths = shared.paths.clone();
    tokio::task::spawn_blocking(move || install::install(&paths, &daemon, &cli))
        .await
        .map_err(|e| e.to_string())??;
    Ok((verified.version, daemon_sha))
}
