//! Team-credential mode on the machine's side: managed settings carry the
//! placeholder login (one of ccgate's guarded entries, added when the person
//! enters the mode and taken out when they leave it), and the person's own
//! stored Claude login leaves their home, kept root-only until the mode
//! ends or ccgate is uninstalled.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ProxyConfig;
use crate::fsutil::{create_dir_with_mode, write_atomic};
use crate::guard::claude_home::{CREDENTIALS_FILE, ClaudeDir, FileOwner, LoginFileError};
use crate::guard::logout::{CommandRunner, KEYCHAIN_SERVICE};
use crate::guard::manifest::{MANIFEST_LOCK, Manifest};
use crate::guard::settings::{self, TeamLogin};
use crate::paths::{Paths, Platform};

/// Puts ccgate's login entries for `team` (or none) into managed settings,
/// the installed copy and the manifest, so the watchdog guards them. False
/// when nothing changed, or ccgate setup did not install this machine.
pub fn apply_login_settings(paths: &Paths, team: Option<TeamLogin<'_>>) -> Result<bool, String> {
    let _lock = MANIFEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut manifest) = Manifest::load(paths).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let old = manifest.settings.env.clone();
    let new = settings::with_login(&old, team);
    if new == old {
        return Ok(false);
    }
    let path = paths.managed_settings();
    let current = std::fs::read(&path).ok();
    let original = std::fs::read(Manifest::original_settings_path(paths)).ok();
    let bytes = settings::retarget(current.as_deref(), &old, &new, original.as_deref())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = std::fs::metadata(&path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    write_atomic(&path, &bytes, mode)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    write_atomic(&Manifest::installed_settings_path(paths), &bytes, 0o600)
        .map_err(|e| format!("cannot update the settings backup: {e}"))?;
    manifest.settings.env = new;
    manifest.written_at = jiff::Timestamp::now();
    manifest.save(paths).map_err(|e| e.to_string())?;
    Ok(true)
}

/// What happened to the person's own login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginMove {
    /// Moved into ccgate's keeping (what, for the log).
    Stashed(String),
    /// Put back where it was.
    Returned(String),
    /// Nothing to do.
    Nothing,
}

/// How a stashed Linux login file was, so it comes back the same.
#[derive(Debug, Serialize, Deserialize)]
struct StashedFile {
    uid: u32,
    gid: u32,
    mode: u32,
}

fn stash_dir(paths: &Paths) -> PathBuf {
    paths.backup_dir().join("claude-login")
}

fn home_of(config: &ProxyConfig, user: &str) -> Result<PathBuf, String> {
    match &config.os_user_home {
        Some(home) => Ok(home.clone()),
        None => crate::os::lookup_user(user)
            .map(|a| a.home)
            .ok_or_else(|| format!("cannot find the home directory of {user}")),
    }
}

/// Moves the person's stored Claude login out of their reach (team mode).
pub fn stash(
    paths: &Paths,
    config: &ProxyConfig,
    runner: &dyn CommandRunner,
) -> Result<LoginMove, LoginFileError> {
    let Some(user) = config.os_user.as_deref() else {
        return Ok(LoginMove::Nothing);
    };
    let dir = stash_dir(paths);
    if dir.join("login").exists() {
        return Ok(LoginMove::Nothing);
    }
    let (login, meta) = match paths.platform() {
        Platform::Linux => {
            let home = paths.under_root(home_of(config, user)?);
            let Some(claude) = ClaudeDir::open(&home, false)? else {
                return Ok(LoginMove::Nothing);
            };
            let Some((bytes, owner)) = claude.read_login()? else {
                return Ok(LoginMove::Nothing);
            };
            let meta = StashedFile {
                uid: owner.uid,
                gid: owner.gid,
                mode: owner.mode,
            };
            (bytes, Some((claude, meta)))
        }
        Platform::MacOs => {
            let args = ["find-generic-password", "-s", KEYCHAIN_SERVICE, "-w"];
            let output = runner
                .run_as(user, "security", &args)
                .map_err(|e| format!("cannot run security as {user}: {e}"))?;
            if !output.status.success() {
                return Ok(LoginMove::Nothing);
            }
            (output.stdout, None)
        }
    };
    create_dir_with_mode(&dir, 0o700).map_err(|e| e.to_string())?;
    write_atomic(&dir.join("login"), &login, 0o600).map_err(|e| e.to_string())?;
    match meta {
        Some((claude, meta)) => {
            let text = serde_json::to_vec(&meta).expect("serializes");
            write_atomic(&dir.join("login.json"), &text, 0o600).map_err(|e| e.to_string())?;
            claude.remove_login()?;
            Ok(LoginMove::Stashed(format!(
                "moved {user}'s ~/.claude/{CREDENTIALS_FILE}"
            )))
        }
        None => {
            crate::guard::logout::log_out(paths, config, runner)?;
            Ok(LoginMove::Stashed(format!(
                "the {KEYCHAIN_SERVICE} keychain item of {user}"
            )))
        }
    }
}

/// Gives the person's own login back (the mode ended, or uninstall).
pub fn give_back(
    paths: &Paths,
    config: &ProxyConfig,
    runner: &dyn CommandRunner,
) -> Result<LoginMove, LoginFileError> {
    let dir = stash_dir(paths);
    let login = match std::fs::read(dir.join("login")) {
        Ok(login) => login,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LoginMove::Nothing),
        Err(e) => return Err(e.to_string().into()),
    };
    let Some(user) = config.os_user.as_deref() else {
        return Ok(LoginMove::Nothing);
    };
    let what = match paths.platform() {
        Platform::Linux => {
            let home = paths.under_root(home_of(config, user)?);
            let claude = ClaudeDir::open(&home, true)?.expect("created when missing");
            if claude.has_login()? {
                // They signed in again meanwhile: theirs wins, ours stays kept.
                return Ok(LoginMove::Nothing);
            }
            let owner = std::fs::read(dir.join("login.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<StashedFile>(&bytes).ok())
                .map(|meta| FileOwner {
                    uid: meta.uid,
                    gid: meta.gid,
                    mode: meta.mode,
                });
            claude.write_login(&login, owner)?;
            format!("restored {user}'s ~/.claude/{CREDENTIALS_FILE}")
        }
        Platform::MacOs => {
            let secret = String::from_utf8_lossy(&login).trim().to_owned();
            // Through stdin (`security -i`), so the secret never shows in `ps`.
            let command = format!(
                "add-generic-password -U -a {user} -s '{KEYCHAIN_SERVICE}' -w '{}'\n",
                secret.replace('\'', "")
            );
            let output = runner
                .run_as_with_input(user, "security", &["-i"], command.as_bytes())
                .map_err(|e| format!("cannot run security as {user}: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "security add-generic-password failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                )
                .into());
            }
            format!("the {KEYCHAIN_SERVICE} keychain item of {user}")
        }
    };
    std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(LoginMove::Returned(what))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::guard::logout::SystemRunner;

    #[test]
    fn on_macos_the_keychain_item_is_kept_and_given_back_through_stdin() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::MacOs);
        create_dir_with_mode(&paths.backup_dir(), 0o700).unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // A fake `security` with a one-item keychain in a file; it records
        // every argument list it is run with.
        let keychain = root.path().join("keychain");
        let calls = root.path().join("calls");
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> {calls}\ncase \"$1\" in\n\
             find-generic-password) [ -e {k} ] && cat {k} && exit 0; exit 44 ;;\n\
             delete-generic-password) [ -e {k} ] && rm {k} && exit 0; exit 44 ;;\n\
             -i) read line; printf '%s' \"$line\" | sed -n \"s/.*-w '\\(.*\\)'.*/\\1/p\" | tr -d '\\n' > {k}; exit 0 ;;\n\
             esac\nexit 1\n",
            calls = calls.display(),
            k = keychain.display()
        );
        std::fs::write(bin.join("security"), script).unwrap();
        std::fs::set_permissions(bin.join("security"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let secret = r#"{"claudeAiOauth":{"accessToken":"mine"}}"#;
        std::fs::write(&keychain, secret).unwrap();
        let me = std::env::var("USER")
            .ok()
            .filter(|u| crate::os::lookup_user(u).is_some())
            .unwrap_or_else(|| "root".to_owned());
        let mut config = ProxyConfig::new("http://127.0.0.1:9", 1);
        config.os_user = Some(me);
        let runner = SystemRunner::with_program_dir(&bin);

        let moved = stash(&paths, &config, &runner).unwrap();
        assert!(matches!(moved, LoginMove::Stashed(_)), "{moved:?}");
        assert!(!keychain.exists(), "the item left the keychain");
        let back = give_back(&paths, &config, &runner).unwrap();
        assert!(matches!(back, LoginMove::Returned(_)), "{back:?}");
        assert_eq!(std::fs::read_to_string(&keychain).unwrap(), secret);
        let argv = std::fs::read_to_string(&calls).unwrap();
        assert!(
            !argv.contains("accessToken"),
            "the secret was in argv: {argv}"
        );
    }

    /// A Linux machine in a temporary root whose governed person is alice.
    fn alices_linux_machine() -> (tempfile::TempDir, Paths, ProxyConfig) {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::Linux);
        create_dir_with_mode(&paths.backup_dir(), 0o700).unwrap();
        let mut config = ProxyConfig::new("http://127.0.0.1:9", 1);
        config.os_user = Some("alice".into());
        config.os_user_home = Some("/home/alice".into());
        (root, paths, config)
    }

    #[test]
    fn a_linked_login_is_neither_taken_nor_written_through() {
        let (root, paths, config) = alices_linux_machine();
        let claude = root.path().join("home/alice/.claude");
        std::fs::create_dir_all(&claude).unwrap();
        // A "login" that is a link to a file only root may read.
        let shadow = root.path().join("shadow");
        std::fs::write(&shadow, b"root:$6$secret").unwrap();
        std::os::unix::fs::symlink(&shadow, claude.join(".credentials.json")).unwrap();
        let runner = SystemRunner::default();
        assert!(stash(&paths, &config, &runner).is_err());
        assert!(
            !stash_dir(&paths).join("login").exists(),
            "nothing was copied"
        );

        // A kept login goes back into a directory, not through a link to one.
        std::fs::remove_file(claude.join(".credentials.json")).unwrap();
        std::fs::write(claude.join(".credentials.json"), b"mine").unwrap();
        assert!(matches!(
            stash(&paths, &config, &runner).unwrap(),
            LoginMove::Stashed(_)
        ));
        std::fs::remove_dir(&claude).unwrap_or_else(|_| std::fs::remove_dir_all(&claude).unwrap());
        let elsewhere = root.path().join("etc-cron.d");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &claude).unwrap();
        assert!(give_back(&paths, &config, &runner).is_err());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert!(stash_dir(&paths).join("login").exists(), "still kept");
    }

    #[test]
    fn the_persons_login_leaves_their_home_and_comes_back_unchanged() {
        let (_root, paths, config) = alices_linux_machine();
        let file = paths.claude_credentials(Path::new("/home/alice"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        write_atomic(
            &file,
            b"{\"claudeAiOauth\":{\"accessToken\":\"mine\"}}",
            0o600,
        )
        .unwrap();
        let runner = SystemRunner::default();

        let moved = stash(&paths, &config, &runner).unwrap();
        assert!(matches!(moved, LoginMove::Stashed(_)), "{moved:?}");
        assert!(!file.exists());
        let kept = stash_dir(&paths).join("login");
        assert_eq!(
            std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(stash(&paths, &config, &runner).unwrap(), LoginMove::Nothing);

        let back = give_back(&paths, &config, &runner).unwrap();
        assert!(matches!(back, LoginMove::Returned(_)), "{back:?}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"{\"claudeAiOauth\":{\"accessToken\":\"mine\"}}"
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!stash_dir(&paths).exists());
        assert_eq!(
            give_back(&paths, &config, &runner).unwrap(),
            LoginMove::Nothing
        );
    }
}
