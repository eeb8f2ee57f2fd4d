//! `ccgate doctor`: every check of an install, each failure with the exact
//! command that fixes it. Works without root from what the daemon reports;
//! as root it also reads ccgate's own files.

use std::fmt::Write as _;

use ccgate_machine::config::{ProxyConfig, plain_http_off_loopback};
use ccgate_machine::local_api::StatusReport;
use ccgate_machine::manifest::{Manifest, ServiceKind};
use ccgate_machine::paths::{Paths, Platform};
use ccgate_machine::settings;
use ccgate_proxy::guard::integrity::{self, Item};

use crate::server::{ServerClient, TokenCheck};
use crate::{ca_check, local, service};

/// Larger clock differences break time windows and certificate checks.
const MAX_CLOCK_SKEW_SECS: i64 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Not a failure: informational (e.g. `--no-service`).
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// The command (or step) that fixes a failure.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DoctorReport {
    pub checks: Vec<Check>,
}

impl DoctorReport {
    pub fn failures(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count()
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let mark = match check.verdict {
                Verdict::Pass => "ok  ",
                Verdict::Warn => "note",
                Verdict::Fail => "FAIL",
            };
            let _ = writeln!(out, "[{mark}] {:<17} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                let _ = writeln!(out, "       fix: {fix}");
            }
        }
        let _ = match self.failures() {
            0 => writeln!(out, "All checks passed."),
            n => writeln!(out, "{n} check(s) failed."),
        };
        out
    }

    fn push(&mut self, name: &'static str, verdict: Verdict, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            name,
            verdict,
            detail,
            fix,
        });
    }
}

/// Everything doctor could find out about the install.
struct Facts {
    config: Option<ProxyConfig>,
    config_error: Option<String>,
    manifest: Option<Manifest>,
    status: Result<StatusReport, String>,
}

/// `sudo ccgate setup` with the server it is installed against.
fn repair_command(facts: &Facts) -> String {
    let server = facts
        .config
        .as_ref()
        .map(|c| c.server_url().to_owned())
        .or_else(|| facts.status.as_ref().ok().map(|s| s.server_url.clone()))
        .unwrap_or_else(|| "URL".to_owned());
    format!("sudo ccgate setup --server {server}")
}

pub async fn run(paths: &Paths, port: Option<u16>) -> DoctorReport {
    let (config, config_error) = match ProxyConfig::load(&paths.config_file()) {
        Ok(config) => (Some(config), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let manifest = Manifest::load(paths).ok().flatten();
    let address = local::daemon_address(paths, port);
    let status = local::fetch_status(address)
        .await
        .map_err(|e| e.to_string());
    let facts = Facts {
        config,
        config_error,
        manifest,
        status,
    };
    let mut report = DoctorReport::default();
    check_install(paths, &facts, &mut report);
    check_service_and_proxy(paths, &facts, address, &mut report);
    check_ca(paths, &facts, &mut report);
    check_settings(paths, &facts, &mut report);
    check_server(paths, &facts, &mut report).await;
    check_delivery(paths, &facts, &mut report);
    report
}

/// Events the server refused: kept on this machine, not counted there.
fn check_delivery(paths: &Paths, facts: &Facts, report: &mut DoctorReport) {
    let Ok(status) = &facts.status else {
        return;
    };
    if status.quarantined_events == 0 {
        report.push(
            "delivery",
            Verdict::Pass,
            format!(
                "{} events waiting for the server, none refused",
                status.pending_events
            ),
            None,
        );
        return;
    }
    // Root can read the ledger for the reasons.
    let reasons = ccgate_proxy::ledger::Ledger::open(&paths.state_db())
        .and_then(|ledger| ledger.quarantined(3))
        .map(|held| {
            held.iter()
                .map(|q| format!("{} ({})", q.id, q.reason))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|_| "run as root to see why".to_owned());
    report.push(
        "delivery",
        Verdict::Fail,
        format!(
            "the server refused {} events; they are kept in {}: {reasons}",
            status.quarantined_events,
            paths.state_db().display()
        ),
        Some("tell your ccgate admin (the server's event log lists a delivery fault for this device)".to_owned()),
    );
}

fn check_install(paths: &Paths, facts: &Facts, report: &mut DoctorReport) {
    let root = ccgate_machine::os::is_root();
    match (&facts.config, &facts.manifest) {
        (Some(config), Some(manifest)) => {
            report.push(
                "installed",
                Verdict::Pass,
                format!(
                    "device {} of {}, service: {}",
                    config.device_id,
                    config.server_url(),
                    manifest.service.as_str()
                ),
                None,
            );
            let damage = integrity::inspect(
                paths,
                manifest,
                &Item::all(manifest),
                &mut integrity::HashCache::default(),
            );
            if damage.is_empty() {
                report.push(
                    "own files",
                    Verdict::Pass,
                    format!("{} files match the manifest", manifest.files.len()),
                    None,
                );
            } else {
                let list = damage
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {} ({})",
                            paths.to_system(&d.item.path(paths)).display(),
                            d.what,
                            d.detail
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                report.push(
                    "own files",
                    Verdict::Fail,
                    format!("changed: {list} (the running daemon restores them within seconds)"),
                    Some(repair_command(facts)),
                );
            }
        }
        _ if !root && facts.status.is_ok() => report.push(
            "installed",
            Verdict::Warn,
            "ccgate's own files are root-only: run sudo ccgate doctor to check them too".to_owned(),
            None,
        ),
        (config, _) => report.push(
            "installed",
            Verdict::Fail,
            match (config, &facts.config_error) {
                (Some(_), _) => format!(
                    "the integrity manifest {} is missing",
                    paths.manifest().display()
                ),
                (None, Some(error)) => format!("ccgate is not installed here: {error}"),
                (None, None) => "ccgate is not installed here".to_owned(),
            },
            Some("sudo ccgate setup --code CODE --server URL (the code comes from your ccgate admin)".to_owned()),
        ),
    }
}

fn check_service_and_proxy(
    paths: &Paths,
    facts: &Facts,
    address: std::net::SocketAddr,
    report: &mut DoctorReport,
) {
    let kind = facts.manifest.as_ref().map(|m| m.service);
    let restart = service::restart_command(kind.unwrap_or(ServiceKind::None), paths);
    match kind.map(|kind| (kind, service::is_running(kind, paths))) {
        Some((kind, Some(true))) => report.push(
            "service",
            Verdict::Pass,
            format!("{} service is running", kind.as_str()),
            None,
        ),
        Some((kind, Some(false))) => report.push(
            "service",
            Verdict::Fail,
            format!("the {} service is not running", kind.as_str()),
            Some(restart.clone()),
        ),
        Some((_, None)) => report.push(
            "service",
            Verdict::Warn,
            "no service installed (--no-service): whoever installed starts the daemon".to_owned(),
            None,
        ),
        None => {}
    }
    match &facts.status {
        Ok(status) => {
            let policy = status
                .policy_version
                .map_or("no policy yet".to_owned(), |v| format!("policy v{v}"));
            report.push(
                "proxy",
                Verdict::Pass,
                format!(
                    "answering on {address} (ccgate-proxy {}, {policy})",
                    status.agent_version
                ),
                None,
            );
            match &status.integrity_problem {
                None => report.push(
                    "integrity",
                    Verdict::Pass,
                    "the daemon reports no problem".to_owned(),
                    None,
                ),
                Some(problem) => report.push(
                    "integrity",
                    Verdict::Fail,
                    format!("prompts are blocked: {problem}"),
                    Some(repair_command(facts)),
                ),
            }
            match (status.credential_mode.as_deref(), status.team_credential_held) {
                (Some("team_credential"), true) => report.push(
                    "login",
                    Verdict::Pass,
                    "team credential mode: the daemon holds the subscription's credential".to_owned(),
                    None,
                ),
                (Some("team_credential"), false) => report.push(
                    "login",
                    Verdict::Fail,
                    "team credential mode, but the daemon has not received the subscription's credential: every request fails until it does".to_owned(),
                    Some("check that the server is reachable over https (ccgate status), then sudo ccgate sync".to_owned()),
                ),
                (Some(_), _) => report.push(
                    "login",
                    Verdict::Pass,
                    "personal logins: each person signs Claude Code in themselves".to_owned(),
                    None,
                ),
                (None, _) => {}
            }
        }
        Err(error) if kind == Some(ServiceKind::None) => report.push(
            "proxy",
            Verdict::Warn,
            format!("the daemon is not running ({error}); with --no-service, start it yourself"),
            Some(restart),
        ),
        Err(error) => report.push(
            "proxy",
            Verdict::Fail,
            error.clone(),
            Some(if kind.is_some() {
                restart
            } else {
                "sudo ccgate setup --code CODE --server URL".to_owned()
            }),
        ),
    }
}

fn check_ca(paths: &Paths, facts: &Facts, report: &mut DoctorReport) {
    let cert = match std::fs::read(paths.ca_cert()) {
        Ok(cert) => cert,
        Err(e) => {
            report.push(
                "CA",
                Verdict::Fail,
                format!("cannot read {}: {e}", paths.ca_cert().display()),
                Some(repair_command(facts)),
            );
            return;
        }
    };
    let key = std::fs::read_to_string(paths.ca_key()).ok();
    match ca_check::check(&cert, key.as_deref()) {
        Ok(detail) => report.push("CA", Verdict::Pass, detail, None),
        Err(problem) => report.push(
            "CA",
            Verdict::Fail,
            format!("{}: {problem}", paths.ca_cert().display()),
            Some(repair_command(facts)),
        ),
    }
}

fn check_settings(paths: &Paths, facts: &Facts, report: &mut DoctorReport) {
    let path = paths.managed_settings();
    let expected = match (&facts.manifest, &facts.status) {
        (Some(manifest), _) => manifest.settings.env.clone(),
        (None, Ok(status)) => settings::ccgate_env(status.listen, &paths.ca_cert()),
        (None, Err(_)) => match &facts.config {
            Some(config) => settings::ccgate_env(config.listen, &paths.ca_cert()),
            None => return,
        },
    };
    let verdict = match std::fs::read(&path) {
        Ok(bytes) => settings::drifted_keys(&bytes, &expected).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match verdict {
        Ok(keys) if keys.is_empty() => report.push(
            "managed settings",
            Verdict::Pass,
            format!("{} routes Claude Code through ccgate", path.display()),
            None,
        ),
        Ok(keys) => report.push(
            "managed settings",
            Verdict::Fail,
            format!(
                "{}: ccgate's keys changed or missing: {}",
                path.display(),
                keys.join(", ")
            ),
            Some(repair_command(facts)),
        ),
        Err(error) => report.push(
            "managed settings",
            Verdict::Fail,
            format!("{}: {error}", path.display()),
            Some(repair_command(facts)),
        ),
    }
}

fn clock_fix() -> String {
    match Platform::current() {
        Platform::Linux => "sudo timedatectl set-ntp true".to_owned(),
        Platform::MacOs => "sudo sntp -sS time.apple.com".to_owned(),
    }
}

async fn check_server(paths: &Paths, facts: &Facts, report: &mut DoctorReport) {
    let url = match (&facts.status, &facts.config) {
        (Ok(status), _) => Some(status.server_url.as_str()),
        (Err(_), Some(config)) => Some(config.server_url()),
        (Err(_), None) => None,
    };
    if let Some(url) = url.filter(|url| plain_http_off_loopback(url)) {
        report.push(
            "link",
            Verdict::Warn,
            format!("{url} is plain http: the device token and counts cross the network unprotected (set up with --insecure)"),
            Some("when the server has https: sudo ccgate setup --server https://…".to_owned()),
        );
    }
    let new_code = |url: &str| {
        format!(
            "ask your ccgate admin for a new install code, then: sudo ccgate setup --code CODE --server {url}"
        )
    };
    if let Ok(status) = &facts.status {
        let url = status.server_url.clone();
        let health = &status.server;
        if health.reachable {
            let live = if health.live_link {
                ", live link open"
            } else {
                ""
            };
            report.push(
                "server",
                Verdict::Pass,
                format!("{url} reachable{live}"),
                None,
            );
        } else {
            report.push(
                "server",
                Verdict::Fail,
                format!(
                    "{url} not reachable from the daemon: {}",
                    health.last_error.as_deref().unwrap_or("no answer yet")
                ),
                Some(format!(
                    "check the network and {url}/healthz, then: sudo ccgate sync"
                )),
            );
        }
        if health.unauthorized {
            report.push(
                "token",
                Verdict::Fail,
                "the server no longer accepts this device's token".to_owned(),
                Some(new_code(&url)),
            );
        } else if health.reachable {
            report.push(
                "token",
                Verdict::Pass,
                "accepted by the server".to_owned(),
                None,
            );
        }
        if health.last_sync_at.is_some() {
            push_clock(report, status.clock_offset_ms / 1000);
        }
        return;
    }
    // The daemon is down: ask the server directly (needs the root-only files).
    let Some(config) = &facts.config else {
        return;
    };
    let url = config.server_url().to_owned();
    let client = match ServerClient::new(&url) {
        Ok(client) => client,
        Err(e) => {
            report.push("server", Verdict::Fail, e.to_string(), None);
            return;
        }
    };
    if let Err(error) = client.healthy().await {
        report.push(
            "server",
            Verdict::Fail,
            error.to_string(),
            Some(format!("check the network and {url}/healthz")),
        );
        return;
    }
    report.push("server", Verdict::Pass, format!("{url} reachable"), None);
    let token = match ccgate_machine::token::read_token(paths) {
        Ok(token) => token,
        Err(error) => {
            report.push(
                "token",
                Verdict::Fail,
                error.to_string(),
                Some(new_code(&url)),
            );
            return;
        }
    };
    match client.check_token(&token).await {
        Ok(TokenCheck::Accepted { server_time }) => {
            report.push(
                "token",
                Verdict::Pass,
                "accepted by the server".to_owned(),
                None,
            );
            let skew = server_time.duration_since(jiff::Timestamp::now()).as_secs();
            push_clock(report, skew);
        }
        Ok(TokenCheck::Refused) => report.push(
            "token",
            Verdict::Fail,
            "the server no longer accepts this device's token".to_owned(),
            Some(new_code(&url)),
        ),
        Err(error) => report.push("token", Verdict::Fail, error.to_string(), None),
    }
}

fn push_clock(report: &mut DoctorReport, skew_secs: i64) {
    if skew_secs.abs() <= MAX_CLOCK_SKEW_SECS {
        report.push(
            "clock",
            Verdict::Pass,
            format!("within {}s of the server", skew_secs.abs()),
            None,
        );
    } else {
        report.push(
            "clock",
            Verdict::Fail,
            format!("{skew_secs:+}s off the server's clock (more than {MAX_CLOCK_SKEW_SECS}s)"),
            Some(clock_fix()),
        );
    }
}
