//! A developer machine installed by the real `ccgate setup` under a temp
//! root prefix (`--no-service`), with the daemon started in-process from
//! that prefix against the fake upstream, and a snapshot of the prefix to
//! compare before and after.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ccgate_installer::setup::{SetupFailed, SetupOptions, SetupOutcome};
use ccgate_proxy::config::UpstreamOverrides;
use ccgate_proxy::daemon::{self, DaemonOptions, RunningDaemon};
use ccgate_proxy::guard::GuardHooks;
use ccgate_proxy::guard::logout::{CommandRunner, SystemRunner};
use ccgate_proxy::paths::{Paths, Platform};
use tokio::net::TcpListener;

use crate::upstream::FakeAnthropic;

/// Managed settings an admin had before ccgate came.
pub const ADMIN_SETTINGS: &str =
    "{\n  \"permissions\": {\"deny\": [\"WebFetch\"]},\n  \"env\": {\"TEAM\": \"blue\"}\n}\n";

pub struct InstalledMachine {
    pub paths: Paths,
    pub port: u16,
    /// A file that stands in for the daemon binary setup installs.
    pub proxy_binary: PathBuf,
    root: tempfile::TempDir,
    _tools: tempfile::TempDir,
}

impl InstalledMachine {
    /// A prefix holding what a developer machine has before ccgate:
    /// the admin's managed settings, an account database, alice's login.
    pub fn prepare() -> Self {
        let root = tempfile::tempdir().expect("temp root");
        let paths = Paths::new(root.path(), Platform::Linux);
        let settings = paths.managed_settings();
        std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
        std::fs::write(&settings, ADMIN_SETTINGS).unwrap();
        std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(
            paths.passwd_file(),
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n",
        )
        .unwrap();
        let credentials = paths.claude_credentials(Path::new("/home/alice"));
        std::fs::create_dir_all(credentials.parent().unwrap()).unwrap();
        std::fs::write(&credentials, "{\"claudeAiOauth\":{\"accessToken\":\"x\"}}").unwrap();
        let tools = tempfile::tempdir().expect("temp tools");
        let proxy_binary = tools.path().join("ccgate-proxy");
        std::fs::write(&proxy_binary, "#!/bin/sh\necho stand-in for ccgate-proxy\n").unwrap();
        std::fs::set_permissions(&proxy_binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            paths,
            port: free_port(),
            proxy_binary,
            root,
            _tools: tools,
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Setup's options for this machine (`--no-service`).
    pub fn options(&self, server_url: &str, code: Option<&str>) -> SetupOptions {
        SetupOptions {
            root: self.root().to_owned(),
            code: code.map(str::to_owned),
            server: server_url.to_owned(),
            port: Some(self.port),
            user: Some("alice".to_owned()),
            no_service: true,
            proxy_binary: Some(self.proxy_binary.clone()),
            insecure: false,
            upstream_proxy: None,
            extra_ca: None,
        }
    }

    /// Runs the real setup; returns its outcome and what it printed.
    pub async fn setup(
        &self,
        server_url: &str,
        code: Option<&str>,
    ) -> (Result<SetupOutcome, SetupFailed>, String) {
        let mut printed = Vec::new();
        let outcome =
            ccgate_installer::setup::setup(&self.options(server_url, code), &mut printed).await;
        (outcome, String::from_utf8_lossy(&printed).into_owned())
    }

    /// Starts the daemon from the prefix (on the port setup wrote), with
    /// the watchdog and the kill-switch hooks.
    pub async fn start_daemon(&self, upstream: &FakeAnthropic) -> RunningDaemon {
        self.start_daemon_with(upstream, Arc::new(SystemRunner::default()))
            .await
    }

    pub async fn start_daemon_with(
        &self,
        upstream: &FakeAnthropic,
        runner: Arc<dyn CommandRunner>,
    ) -> RunningDaemon {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the port setup configured");
        let mut options = DaemonOptions::new(self.paths.clone());
        options.overrides = UpstreamOverrides {
            connect_to: Some(upstream.connect_to()),
            ca_file: Some(upstream.ca_file()),
            refuse_other_hosts: true,
        };
        options.hooks = Box::new(GuardHooks::with_runner(runner));
        daemon::start(options, Some(listener))
            .await
            .expect("the daemon starts from the installed prefix")
    }

    /// The `env` setup wrote into the prefix's managed settings.
    pub fn managed_env(&self) -> Vec<(String, String)> {
        let bytes = std::fs::read(self.paths.managed_settings()).expect("managed settings");
        let settings: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        settings["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
            .collect()
    }

    /// Runs a `ccgate` command line in-process; returns (success, output).
    pub async fn ccgate(&self, args: &[&str]) -> (bool, String) {
        use clap::Parser;
        let mut argv = vec!["ccgate", "--root", self.root().to_str().unwrap()];
        argv.extend_from_slice(args);
        let cli = ccgate_installer::cli::Cli::try_parse_from(argv).expect("arguments parse");
        let mut printed = Vec::new();
        let result = ccgate_installer::cli::run(cli, &mut printed).await;
        let mut text = String::from_utf8_lossy(&printed).into_owned();
        let ok = match result {
            Ok(code) => code == std::process::ExitCode::SUCCESS,
            Err(error) => {
                text.push_str(&format!("{error:#}"));
                false
            }
        };
        (ok, text)
    }
}

/// Every path under `root` with its kind, mode and content hash.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let metadata = std::fs::symlink_metadata(&path).expect("metadata");
        let mode = metadata.permissions().mode() & 0o7777;
        let relative = path.strip_prefix(root).unwrap().to_owned();
        if metadata.is_dir() {
            out.insert(relative, format!("dir {mode:o}"));
            walk(root, &path, out);
        } else {
            let hash = ccgate_proxy::fsutil::sha256_file(&path).expect("hash");
            out.insert(relative, format!("file {mode:o} {hash}"));
        }
    }
}

/// A port that was free a moment ago (setup needs it before the daemon
/// binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
