//! The kill switch's logout: the registered OS user loses Claude Code's
//! login. Linux keeps it in `~/.claude/.credentials.json`; macOS in the
//! user's login keychain, item `Claude Code-credentials`, which only a
//! process running as that user can delete.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::config::ProxyConfig;
use crate::guard::claude_home::{CREDENTIALS_FILE, ClaudeDir, LoginFileError};
use crate::paths::{Paths, Platform};

/// The keychain item Claude Code stores its login in on macOS.
pub const KEYCHAIN_SERVICE: &str = "Claude Code-credentials";

/// `security`'s exit code when no such item exists.
const SECURITY_NOT_FOUND: i32 = 44;

/// Runs a program as another user (a seam for tests).
pub trait CommandRunner: Send + Sync {
    fn run_as(&self, user: &str, program: &str, args: &[&str]) -> io::Result<Output>;

    /// Like [`Self::run_as`], with `input` on the program's stdin (secrets
    /// go there, never in arguments other users can see).
    fn run_as_with_input(
        &self,
        _user: &str,
        program: &str,
        _args: &[&str],
        _input: &[u8],
    ) -> io::Result<Output> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this runner cannot feed {program} its input"),
        ))
    }
}

/// Runs the system's programs, switching to the user's uid and gid.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    /// Where programs are looked up (`/usr/bin`; a temp dir in tests).
    program_dir: PathBuf,
}

impl Default for SystemRunner {
    fn default() -> Self {
        Self {
            program_dir: PathBuf::from("/usr/bin"),
        }
    }
}

impl SystemRunner {
    pub fn with_program_dir(program_dir: impl Into<PathBuf>) -> Self {
        Self {
            program_dir: program_dir.into(),
        }
    }
}

impl SystemRunner {
    fn command(&self, user: &str, program: &str, args: &[&str]) -> io::Result<Command> {
        let account = crate::os::lookup_user(user).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no such user {user:?}"))
        })?;
        let mut command = Command::new(self.program_dir.join(program));
        command
            .args(args)
            .env_clear()
            .env("HOME", &account.home)
            .env("USER", user)
            .env("LOGNAME", user)
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .current_dir("/")
            .gid(account.gid)
            .uid(account.uid);
        Ok(command)
    }
}

impl CommandRunner for SystemRunner {
    fn run_as(&self, user: &str, program: &str, args: &[&str]) -> io::Result<Output> {
        self.command(user, program, args)?.output()
    }

    fn run_as_with_input(
        &self,
        user: &str,
        program: &str,
        args: &[&str],
        input: &[u8],
    ) -> io::Result<Output> {
        use std::io::Write;
        let mut child = self
            .command(user, program, args)?
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input)?;
        }
        child.wait_with_output()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The login was removed (what, for the log).
    LoggedOut(String),
    /// There was no login to remove.
    AlreadyLoggedOut,
    /// The config names no OS user.
    NoUser,
}

/// Logs the configured OS user out of Claude Code.
pub fn log_out(
    paths: &Paths,
    config: &ProxyConfig,
    runner: &dyn CommandRunner,
) -> Result<LogoutOutcome, LoginFileError> {
    let Some(user) = config.os_user.as_deref() else {
        return Ok(LogoutOutcome::NoUser);
    };
    match paths.platform() {
        Platform::Linux => {
            let home = match &config.os_user_home {
                Some(home) => home.clone(),
                None => crate::os::lookup_user(user)
                    .map(|a| a.home)
                    .ok_or_else(|| format!("cannot find the home directory of {user}"))?,
            };
            remove_credentials_file(&paths.under_root(&home))
        }
        Platform::MacOs => Ok(delete_keychain_item(user, runner)?),
    }
}

/// Removes `~/.claude/.credentials.json` without following anything the
/// person linked (see [`ClaudeDir`]).
fn remove_credentials_file(home: &Path) -> Result<LogoutOutcome, LoginFileError> {
    let Some(dir) = ClaudeDir::open(home, false)? else {
        return Ok(LogoutOutcome::AlreadyLoggedOut);
    };
    match dir.remove_login()? {
        true => Ok(LogoutOutcome::LoggedOut(format!(
            "removed {}",
            home.join(".claude").join(CREDENTIALS_FILE).display()
        ))),
        false => Ok(LogoutOutcome::AlreadyLoggedOut),
    }
}

fn delete_keychain_item(user: &str, runner: &dyn CommandRunner) -> Result<LogoutOutcome, String> {
    let args = ["delete-generic-password", "-s", KEYCHAIN_SERVICE];
    // One item per account name is possible; delete until none is left.
    let mut deleted = 0;
    for _ in 0..5 {
        let output = runner
            .run_as(user, "security", &args)
            .map_err(|e| format!("cannot run security as {user}: {e}"))?;
        match output.status.code() {
            Some(0) => deleted += 1,
            Some(SECURITY_NOT_FOUND) => break,
            code => {
                return Err(format!(
                    "security delete-generic-password failed ({code:?}): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
    Ok(match deleted {
        0 => LogoutOutcome::AlreadyLoggedOut,
        n => LogoutOutcome::LoggedOut(format!(
            "deleted {n} {KEYCHAIN_SERVICE} keychain item(s) of {user}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(user: &str, home: Option<&str>) -> ProxyConfig {
        let mut config = ProxyConfig::new("http://127.0.0.1:9", 1);
        config.os_user = Some(user.to_owned());
        config.os_user_home = home.map(PathBuf::from);
        config
    }

    #[test]
    fn linux_removes_the_credentials_file_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::Linux);
        let file = paths.claude_credentials(Path::new("/home/alice"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"{\"claudeAiOauth\":{}}").unwrap();
        let config = config("alice", Some("/home/alice"));
        let runner = SystemRunner::default();
        let outcome = log_out(&paths, &config, &runner).unwrap();
        assert!(
            matches!(outcome, LogoutOutcome::LoggedOut(_)),
            "{outcome:?}"
        );
        assert!(!file.exists());
        assert!(file.parent().unwrap().exists(), "only the login goes");
        assert_eq!(
            log_out(&paths, &config, &runner).unwrap(),
            LogoutOutcome::AlreadyLoggedOut
        );
    }

    #[test]
    fn a_linked_claude_directory_is_refused_and_what_it_points_at_survives() {
        // alice links ~/.claude to a directory she cannot write (here: a
        // stand-in for root's or another person's); root must not delete
        // the login there on her behalf.
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::Linux);
        let victim = root.path().join("home/bob/.claude");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join(".credentials.json"), b"bob's").unwrap();
        let alice = root.path().join("home/alice");
        std::fs::create_dir_all(&alice).unwrap();
        std::os::unix::fs::symlink(&victim, alice.join(".claude")).unwrap();

        let error = log_out(
            &paths,
            &config("alice", Some("/home/alice")),
            &SystemRunner::default(),
        )
        .unwrap_err();
        assert!(error.planted().is_some(), "{error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(
            std::fs::read(victim.join(".credentials.json")).unwrap(),
            b"bob's"
        );
    }

    #[test]
    fn macos_runs_security_as_the_user_until_no_item_is_left() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::MacOs);
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let record = root.path().join("calls");
        // A fake `security`: records its arguments and user, has one item.
        let script = format!(
            "#!/bin/sh\nprintf '%s|' \"$(id -un)\" \"$HOME\" \"$@\" >> {calls}\necho >> {calls}\n\
             if [ -e {gone} ]; then exit 44; fi\ntouch {gone}\nexit 0\n",
            calls = record.display(),
            gone = root.path().join("gone").display()
        );
        std::fs::write(bin.join("security"), script).unwrap();
        std::fs::set_permissions(bin.join("security"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        // The test runs as some user; run `security` as that same user.
        let me = std::env::var("USER")
            .ok()
            .filter(|u| crate::os::lookup_user(u).is_some())
            .unwrap_or_else(|| "root".to_owned());
        let home = crate::os::lookup_user(&me).unwrap().home;
        let runner = SystemRunner::with_program_dir(&bin);
        let outcome = log_out(&paths, &config(&me, None), &runner).unwrap();
        assert!(
            matches!(outcome, LogoutOutcome::LoggedOut(_)),
            "{outcome:?}"
        );
        let calls = std::fs::read_to_string(&record).unwrap();
        let expected = format!(
            "{me}|{}|delete-generic-password|-s|Claude Code-credentials|",
            home.display()
        );
        assert_eq!(calls.lines().collect::<Vec<_>>(), [&expected, &expected]);
    }

    #[test]
    fn macos_reports_a_failing_security_and_no_user_is_a_no_op() {
        struct Failing;
        impl CommandRunner for Failing {
            fn run_as(&self, _: &str, _: &str, _: &[&str]) -> io::Result<Output> {
                Command::new("/bin/sh")
                    .args(["-c", "echo locked >&2; exit 51"])
                    .output()
            }
        }
        let paths = Paths::new("/nonexistent", Platform::MacOs);
        let error = log_out(&paths, &config("alice", None), &Failing).unwrap_err();
        assert!(error.to_string().contains("locked"), "{error}");
        let mut nobody = config("alice", None);
        nobody.os_user = None;
        assert_eq!(
            log_out(&paths, &nobody, &Failing).unwrap(),
            LogoutOutcome::NoUser
        );
    }
}
