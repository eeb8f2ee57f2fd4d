//! The service that keeps the daemon running: a systemd unit on Linux, a
//! LaunchDaemon on macOS, or, where neither runs (containers, WSL without
//! systemd) or under a root prefix, the daemon detached by setup itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ccgate_machine::manifest::ServiceKind;
use ccgate_machine::paths::{Paths, Platform};

use crate::error::{InstallError, Result};

pub const SYSTEMD_TEMPLATE: &str = include_str!("../../systemd/ccgate-proxy.service");
pub const LAUNCHD_TEMPLATE: &str = include_str!("../../launchd/dev.ccgate.proxy.plist");
pub const SYSTEMD_UNIT: &str = "ccgate-proxy.service";
pub const LAUNCHD_LABEL: &str = "dev.ccgate.proxy";

/// Which service manager setup uses. Under a root prefix the real service
/// managers are never touched (they act on the real system).
pub fn choose(paths: &Paths, no_service: bool) -> ServiceKind {
    if no_service {
        return ServiceKind::None;
    }
    if !paths.is_system_root() {
        return ServiceKind::Detached;
    }
    match paths.platform() {
        Platform::MacOs => ServiceKind::Launchd,
        // systemd's own test for "booted with systemd" (sd_booted).
        Platform::Linux if Path::new("/run/systemd/system").is_dir() => ServiceKind::Systemd,
        Platform::Linux => ServiceKind::Detached,
    }
}

/// The daemon's command line for this root.
fn daemon_args(paths: &Paths) -> Vec<String> {
    vec![
        paths.daemon_binary().display().to_string(),
        "--root".to_owned(),
        paths.root().display().to_string(),
    ]
}

/// Quotes a word for a systemd unit when it needs it.
fn systemd_word(word: &str) -> String {
    if word.is_empty() || word.contains([' ', '\t', '"', '\'', '\\', ';', '$', '%']) {
        let escaped = word
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
            .replace('$', "$$");
        format!("\"{escaped}\"")
    } else {
        word.to_owned()
    }
}

/// The systemd unit with the real paths. `home` is the gated user's home
/// (a system path), whose `.claude` the kill switch writes to.
pub fn render_systemd(paths: &Paths, home: Option<&Path>) -> String {
    let exec_start = daemon_args(paths)
        .iter()
        .map(|w| systemd_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    let mut writable: Vec<String> = [
        paths.state_dir(),
        dir_of(&paths.managed_settings()),
        dir_of(&paths.daemon_binary()),
        dir_of(&paths.service_file()),
    ]
    .iter()
    .map(|p| systemd_word(&p.display().to_string()))
    .collect();
    if let Some(home) = home {
        // "-": the directory may not exist (the person never logged in).
        let claude_dir = paths.under_root(home).join(".claude");
        writable.push(format!(
            "-{}",
            systemd_word(&claude_dir.display().to_string())
        ));
    }
    SYSTEMD_TEMPLATE
        .replace("{{EXEC_START}}", &exec_start)
        .replace("{{READ_WRITE_PATHS}}", &writable.join(" "))
}

fn dir_of(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new("/")).to_owned()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The LaunchDaemon plist with the real paths.
pub fn render_launchd(paths: &Paths) -> String {
    LAUNCHD_TEMPLATE
        .replace(
            "{{DAEMON}}",
            &xml_escape(&paths.daemon_binary().display().to_string()),
        )
        .replace("{{ROOT}}", &xml_escape(&paths.root().display().to_string()))
        .replace(
            "{{LOG_FILE}}",
            &xml_escape(&log_file(paths).display().to_string()),
        )
}

pub fn log_file(paths: &Paths) -> PathBuf {
    paths.log_dir().join("ccgate-proxy.log")
}

/// The service file's content for `kind`, if it has one.
pub fn render(kind: ServiceKind, paths: &Paths, home: Option<&Path>) -> Option<String> {
    match kind {
        ServiceKind::Systemd => Some(render_systemd(paths, home)),
        ServiceKind::Launchd => Some(render_launchd(paths)),
        ServiceKind::Detached | ServiceKind::None => None,
    }
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| InstallError::Service(format!("cannot run {program}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(InstallError::Service(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Starts the daemon under `kind` (the service file is already written).
pub fn start(kind: ServiceKind, paths: &Paths) -> Result<()> {
    match kind {
        ServiceKind::Systemd => {
            run("systemctl", &["daemon-reload"])?;
            run("systemctl", &["enable", SYSTEMD_UNIT])?;
            run("systemctl", &["restart", SYSTEMD_UNIT])
        }
        ServiceKind::Launchd => {
            let plist = paths.service_file().display().to_string();
            // A loaded job must be booted out before it is loaded again.
            let _ = run(
                "launchctl",
                &["bootout", &format!("system/{LAUNCHD_LABEL}")],
            );
            run("launchctl", &["bootstrap", "system", &plist])?;
            run("launchctl", &["enable", &format!("system/{LAUNCHD_LABEL}")])
        }
        ServiceKind::Detached => start_detached(paths),
        ServiceKind::None => Ok(()),
    }
}

fn start_detached(paths: &Paths) -> Result<()> {
    let args = daemon_args(paths);
    // `--daemon` forks; the parent exits at once, 0 when the child is off.
    let output = Command::new(&args[0])
        .args(&args[1..])
        .arg("--daemon")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| InstallError::Service(format!("cannot start {}: {e}", args[0])))?;
    if !output.status.success() {
        return Err(InstallError::Service(format!(
            "the daemon did not start ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            log_tail(paths)
        )));
    }
    Ok(())
}

/// The end of the daemon's log, for an error message.
pub fn log_tail(paths: &Paths) -> String {
    let Ok(text) = std::fs::read_to_string(log_file(paths)) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!(
            "\nthe daemon's log ({}) ends with:\n{tail}",
            log_file(paths).display()
        )
    }
}

/// The pid of a detached daemon that is still alive.
pub fn detached_pid(paths: &Paths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(paths.pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    ccgate_machine::os::process_alive(pid).then_some(pid)
}

/// Stops the daemon. Stopping what is not running is not an error.
pub fn stop(kind: ServiceKind, paths: &Paths) -> Result<()> {
    match kind {
        ServiceKind::Systemd => {
            let _ = run("systemctl", &["disable", SYSTEMD_UNIT]);
            run("systemctl", &["stop", SYSTEMD_UNIT])
        }
        ServiceKind::Launchd => {
            let _ = run(
                "launchctl",
                &["bootout", &format!("system/{LAUNCHD_LABEL}")],
            );
            Ok(())
        }
        ServiceKind::Detached => {
            if let Some(pid) = detached_pid(paths) {
                ccgate_machine::os::terminate(pid).map_err(|e| {
                    InstallError::Service(format!("cannot stop the daemon (pid {pid}): {e}"))
                })?;
                let deadline = Instant::now() + Duration::from_secs(15);
                while ccgate_machine::os::process_alive(pid) {
                    if Instant::now() > deadline {
                        return Err(InstallError::Service(format!(
                            "the daemon (pid {pid}) did not stop within 15 s"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            let _ = std::fs::remove_file(paths.pid_file());
            Ok(())
        }
        ServiceKind::None => Ok(()),
    }
}

/// Whether the service manager says the daemon runs; `None` when there is
/// no service to ask.
pub fn is_running(kind: ServiceKind, paths: &Paths) -> Option<bool> {
    match kind {
        ServiceKind::Systemd => {
            Some(run("systemctl", &["is-active", "--quiet", SYSTEMD_UNIT]).is_ok())
        }
        ServiceKind::Launchd => {
            Some(run("launchctl", &["print", &format!("system/{LAUNCHD_LABEL}")]).is_ok())
        }
        ServiceKind::Detached => Some(detached_pid(paths).is_some()),
        ServiceKind::None => None,
    }
}

/// The command that (re)starts the daemon, for messages.
pub fn restart_command(kind: ServiceKind, paths: &Paths) -> String {
    match kind {
        ServiceKind::Systemd => format!("sudo systemctl restart {SYSTEMD_UNIT}"),
        ServiceKind::Launchd => format!("sudo launchctl kickstart -k system/{LAUNCHD_LABEL}"),
        ServiceKind::Detached => format!("sudo {} --daemon", daemon_args(paths).join(" ")),
        ServiceKind::None => daemon_args(paths).join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systemd_unit_names_the_real_paths() {
        let unit = render_systemd(
            &Paths::new("/", Platform::Linux),
            Some(Path::new("/home/alice")),
        );
        assert!(unit.contains("ExecStart=/usr/local/lib/ccgate/ccgate-proxy --root /\n"));
        assert!(unit.contains(
            "ReadWritePaths=/etc/ccgate /etc/claude-code /usr/local/lib/ccgate /etc/systemd/system -/home/alice/.claude\n"
        ));
        assert!(unit.contains("Restart=always"));
        assert!(!unit.contains("{{"));
    }

    #[test]
    fn the_plist_is_escaped_and_complete() {
        let plist = render_launchd(&Paths::new("/tmp/a&b", Platform::MacOs));
        assert!(plist.contains("<string>/tmp/a&amp;b/usr/local/lib/ccgate/ccgate-proxy</string>"));
        assert!(
            plist.contains("<string>/tmp/a&amp;b/Library/Logs/ccgate/ccgate-proxy.log</string>")
        );
        assert!(!plist.contains("{{"));
    }

    #[test]
    fn a_prefix_never_uses_the_real_service_manager() {
        let prefixed = Paths::new("/tmp/x", Platform::Linux);
        assert_eq!(choose(&prefixed, false), ServiceKind::Detached);
        assert_eq!(choose(&prefixed, true), ServiceKind::None);
        assert_eq!(
            choose(&Paths::new("/", Platform::MacOs), false),
            ServiceKind::Launchd
        );
        assert_eq!(systemd_word("/a b/c"), "\"/a b/c\"");
    }
}
