//! `ccgate-proxy`: the enforcing proxy daemon. Normally started by systemd
//! or launchd; `--daemon` detaches it where neither runs.

use std::path::PathBuf;

use anyhow::Context;
use ccgate_proxy::config::UpstreamOverrides;
use ccgate_proxy::daemon::{DaemonOptions, Exit, serve};
use ccgate_proxy::guard::GuardHooks;
use ccgate_proxy::paths::Paths;
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "ccgate's enforcing proxy for Claude Code")]
struct Args {
    /// Root prefix of every path (tests and staging use a directory).
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Detach from the terminal and write a pid file (no service manager).
    #[arg(long)]
    daemon: bool,
    /// Log filter, e.g. `info` or `ccgate_proxy=debug`.
    #[arg(long, env = "CCGATE_LOG", default_value = "info")]
    log: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let paths = Paths::for_current_os(&args.root);
    if args.daemon {
        detach(&paths)?;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut options = DaemonOptions::new(paths);
    options.overrides = UpstreamOverrides::from_env();
    options.hooks = Box::new(GuardHooks::system());
    let exit = runtime
        .block_on(serve(options, None, shutdown_signal()))
        .context("ccgate-proxy stopped")?;
    drop(runtime);
    match exit {
        Exit::Stopped => Ok(()),
        Exit::Restart(binary) => restart_into(&binary),
    }
}

/// Runs the updated binary in this process (same pid, so the service
/// manager, the pid file and `--daemon`'s detachment stay as they are).
fn restart_into(binary: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|arg| arg != "--daemon")
        .collect();
    tracing::info!(binary = %binary.display(), "restarting into the updated daemon");
    let error = std::process::Command::new(binary).args(args).exec();
    Err(error).with_context(|| format!("cannot run the updated daemon {}", binary.display()))
}

/// Forks into the background before any thread exists (daemonize's rule).
fn detach(paths: &Paths) -> anyhow::Result<()> {
    let log_dir = paths.log_dir();
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("ccgate-proxy.log"))
        .context("cannot open the log file")?;
    if let Some(dir) = paths.pid_file().parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    daemonize::Daemonize::new()
        .pid_file(paths.pid_file())
        .working_directory("/")
        .stdout(log.try_clone().context("cannot share the log file")?)
        .stderr(log)
        .start()
        .context("cannot detach into the background")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
}
