//! The command line: `ccgate setup | status | sync | uninstall | doctor`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use ccgate_machine::paths::Paths;
use clap::{Args, Parser, Subcommand};

use crate::setup::SetupOptions;
use crate::{doctor, local, setup, status, uninstall};

#[derive(Debug, Parser)]
#[command(
    name = "ccgate",
    version,
    about = "Installs and inspects ccgate, which meters and gates Claude Code on this machine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Root prefix of every path (staging and tests use a directory).
    #[arg(long, global = true, default_value = "/")]
    pub root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register this machine and install ccgate (root).
    Setup(SetupArgs),
    /// Your usage against your limits (no root needed).
    Status {
        /// Print the daemon's report as JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// The daemon's port, if not the installed one.
        #[arg(long)]
        port: Option<u16>,
    },
    /// Make the daemon pull the policy from the server now.
    Sync {
        #[arg(long)]
        port: Option<u16>,
    },
    /// Remove ccgate and give the managed settings back (root).
    Uninstall,
    /// Check a downloaded release before it is installed (the install script
    /// runs this): signed by a key this machine trusts, binaries as signed.
    #[command(hide = true)]
    VerifyRelease {
        /// The server's SHA256SUMS.
        #[arg(long)]
        sums: PathBuf,
        /// Its SHA256SUMS.minisig, if the server has one.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The directory holding the downloaded `ccgate` and `ccgate-proxy`.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Check every part of the install; each failure comes with its fix.
    Doctor {
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// The install code from your ccgate admin (omit to repair an install
    /// whose registration still works).
    #[arg(long)]
    pub code: Option<String>,
    /// The ccgate server, e.g. https://ccgate.example.com
    #[arg(long)]
    pub server: String,
    /// Port of the local proxy (default 47770).
    #[arg(long)]
    pub port: Option<u16>,
    /// The OS account whose Claude Code goes through ccgate (default: the
    /// user who ran sudo).
    #[arg(long)]
    pub user: Option<String>,
    /// Install no service and start no daemon (run ccgate-proxy yourself).
    #[arg(long)]
    pub no_service: bool,
    /// The daemon binary to install (default: ccgate-proxy next to ccgate).
    #[arg(long)]
    pub proxy_binary: Option<PathBuf>,
    /// Accept a plain http:// server on another machine (the device token
    /// and counts then cross the network unprotected).
    #[arg(long)]
    pub insecure: bool,
    /// The network's HTTP proxy, when this machine reaches the internet only
    /// through one (http://HOST:PORT): the daemon reaches Anthropic and the
    /// server through it.
    #[arg(long, value_name = "URL")]
    pub upstream_proxy: Option<String>,
    /// A CA certificate (PEM) to trust besides the public roots, for a
    /// proxy that inspects TLS.
    #[arg(long, value_name = "FILE")]
    pub extra_ca: Option<PathBuf>,
}

pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let paths = Paths::for_current_os(&cli.root);
    match cli.command {
        Command::Setup(args) => {
            let options = SetupOptions {
                root: cli.root,
                code: args.code,
                server: args.server,
                port: args.port,
                user: args.user,
                no_service: args.no_service,
                proxy_binary: args.proxy_binary,
                upstream_proxy: args.upstream_proxy,
                extra_ca: args.extra_ca,
                insecure: args.insecure,
            };
            let outcome = setup::setup(&options, out).await?;
            Ok(match outcome.doctor.failures() {
                0 => ExitCode::SUCCESS,
                n => {
                    writeln!(
                        out,
                        "ccgate is installed, but doctor found {n} problem(s) above."
                    )?;
                    ExitCode::FAILURE
                }
            })
        }
        Command::Status { json, port } => {
            let address = local::daemon_address(&paths, port);
            let report = local::fetch_status(address).await.with_context(|| {
                "ccgate's daemon is not running, so there is no usage to show. \
                 If ccgate is installed here, an admin can run sudo ccgate doctor"
            })?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                write!(out, "{}", status::render(&report))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { port } => sync(&paths, port, out).await,
        Command::Uninstall => {
            let problems = uninstall::uninstall(&cli.root, out).await?;
            if problems.is_empty() {
                writeln!(out, "ccgate is uninstalled.")?;
                Ok(ExitCode::SUCCESS)
            } else {
                for problem in &problems {
                    writeln!(out, "problem: {problem}")?;
                }
                Ok(ExitCode::FAILURE)
            }
        }
        Command::VerifyRelease {
            sums,
            signature,
            dir,
        } => {
            use crate::verify_release::{Checked, verify_release};
            match verify_release(&paths, &sums, signature.as_deref(), &dir) {
                Ok(Checked::Signed { version }) => {
                    writeln!(
                        out,
                        "release {version} is signed with a key this machine trusts"
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Checked::NoTrustedKey) => {
                    writeln!(
                        out,
                        "no release key is trusted on this machine yet: the binaries were checked against the server's SHA256SUMS only"
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    writeln!(out, "the release does not check out: {why}")?;
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Doctor { port } => {
            let report = doctor::run(&paths, port).await;
            write!(out, "{}", report.render())?;
            Ok(if report.failures() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Asks the daemon to sync, then waits (bounded) to see the result.
async fn sync(paths: &Paths, port: Option<u16>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let address = local::daemon_address(paths, port);
    let before = local::fetch_status(address)
        .await
        .context("cannot ask the daemon to sync")?;
    local::request_sync(address).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = local::fetch_status(address).await?;
        if now.server.last_sync_at > before.server.last_sync_at {
            let version = now
                .policy_version
                .map_or("none".to_owned(), |v| v.to_string());
            writeln!(
                out,
                "Synced with {}: policy version {version}.",
                now.server_url
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() >= deadline {
            let why = now
                .server
                .last_error
                .unwrap_or_else(|| "no answer within 15 s".to_owned());
            writeln!(
                out,
                "The daemon could not sync with {}: {why}",
                now.server_url
            )?;
            return Ok(ExitCode::FAILURE);
        }
    }
}
