//! `sudo ccgate uninstall`: stops the daemon first (its watchdog would put
//! everything back), gives the managed settings back what they had before
//! setup, and removes every file and directory setup created.

use std::io::Write;
use std::path::{Path, PathBuf};

use ccgate_machine::config::ProxyConfig;
use ccgate_machine::fsutil::write_atomic;
use ccgate_machine::manifest::{Manifest, ServiceKind};
use ccgate_machine::paths::{Paths, Platform};
use ccgate_machine::settings::{self, Unmerged};
use ccgate_proxy::guard::login::{self, LoginMove};
use ccgate_proxy::guard::logout::SystemRunner;

use crate::error::{InstallError, Result};
use crate::{local, service};

/// Uninstalls; returns what could not be removed (empty when all went).
pub async fn uninstall(root: &Path, out: &mut dyn Write) -> Result<Vec<String>> {
    if !ccgate_machine::os::is_root() {
        return Err(InstallError::NotRoot {
            command: "uninstall",
        });
    }
    let paths = Paths::for_current_os(root);
    let mut problems = Vec::new();
    let manifest = match Manifest::load(&paths) {
        Ok(manifest) => manifest,
        Err(error) => {
            problems.push(format!("{error}; removing what can be found"));
            None
        }
    };
    let kind = manifest
        .as_ref()
        .map(|m| m.service)
        .unwrap_or_else(|| guess_service(&paths));
    service::stop(kind, &paths)?;
    let _ = writeln!(out, "Stopped the daemon ({} service)", kind.as_str());
    // A daemon still running (started by hand) would restore what follows.
    let address = local::daemon_address(&paths, None);
    if local::fetch_status(address).await.is_ok() {
        return Err(InstallError::Service(format!(
            "a ccgate daemon still answers on {address} (started by hand?): stop it first, then run uninstall again; nothing was removed"
        )));
    }

    match restore_settings(&paths, manifest.as_ref()) {
        Ok(what) => {
            let _ = writeln!(out, "{what}");
        }
        Err(problem) => problems.push(problem),
    }
    // Team-credential mode kept the person's own Claude login; it goes back.
    if let Ok(config) = ProxyConfig::load(&paths.config_file()) {
        match login::give_back(&paths, &config, &SystemRunner::default()) {
            Ok(LoginMove::Returned(what)) => {
                let _ = writeln!(out, "Gave the person's own Claude login back ({what})");
            }
            Ok(_) => {}
            Err(problem) => problems.push(format!(
                "cannot give the person's own Claude login back: {problem}"
            )),
        }
    }

    let mut remove = |path: PathBuf| {
        let result = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => Ok(()),
        };
        if let Err(e) = result {
            problems.push(format!("cannot remove {}: {e}", path.display()));
        }
    };
    if kind != ServiceKind::None || manifest.is_none() {
        remove(paths.service_file());
        if kind == ServiceKind::Systemd {
            let _ = std::process::Command::new("systemctl")
                .arg("daemon-reload")
                .status();
        }
    }
    remove(paths.daemon_binary());
    remove(paths.state_dir());
    remove(paths.log_dir());
    remove(paths.pid_file());
    // Directories setup created, deepest first, if nothing else is in them.
    let mut created = manifest.map(|m| m.created_dirs).unwrap_or_default();
    created.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
    for dir in created {
        let _ = std::fs::remove_dir(paths.under_root(&dir));
    }
    let _ = writeln!(
        out,
        "Removed the daemon, its config, token, CA, ledger and backups. Claude Code now talks to Anthropic directly (restart it)."
    );
    Ok(problems)
}

/// The service of an install without a manifest.
fn guess_service(paths: &Paths) -> ServiceKind {
    if paths.is_system_root() && paths.service_file().exists() {
        match paths.platform() {
            Platform::Linux => ServiceKind::Systemd,
            Platform::MacOs => ServiceKind::Launchd,
        }
    } else {
        ServiceKind::Detached
    }
}

/// Takes ccgate's keys out of the managed settings.
fn restore_settings(
    paths: &Paths,
    manifest: Option<&Manifest>,
) -> std::result::Result<String, String> {
    let path = paths.managed_settings();
    let env = match manifest {
        Some(manifest) => manifest.settings.env.clone(),
        None => match ProxyConfig::load(&paths.config_file()) {
            Ok(config) => settings::ccgate_env(config.listen, &paths.ca_cert()),
            Err(_) => return Ok("No ccgate settings to remove".to_owned()),
        },
    };
    let original = match manifest {
        Some(m) if m.settings.had_original => Some(
            std::fs::read(Manifest::original_settings_path(paths)).map_err(|e| {
                format!(
                    "cannot read the original managed settings {}: {e}; ccgate's keys were removed instead",
                    Manifest::original_settings_path(paths).display()
                )
            }),
        ),
        _ => None,
    };
    let (original, original_problem) = match original {
        Some(Ok(bytes)) => (Some(bytes), None),
        Some(Err(problem)) => (None, Some(problem)),
        None => (None, None),
    };
    let current = std::fs::read(&path).ok();
    let mode = manifest
        .and_then(|m| m.settings.original_mode)
        .unwrap_or(0o644);
    let done = match settings::unmerge(current.as_deref(), &env, original.as_deref()) {
        Unmerged::Write(bytes) => write_atomic(&path, &bytes, mode)
            .map(|()| format!("Restored {}", path.display()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        Unmerged::Delete => match std::fs::remove_file(&path) {
            Ok(()) => format!("Removed {} (there was none before setup)", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
        },
        Unmerged::Keep => {
            return Err(format!(
                "{} is not valid JSON any more: left as it is; remove ccgate's env entries by hand",
                path.display()
            ));
        }
    };
    match original_problem {
        Some(problem) => Err(problem),
        None => Ok(done),
    }
}
