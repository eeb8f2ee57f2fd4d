//! The daemon's reactions to what a sync brings: a kill logs the OS user out
//! of Claude Code; a rotated device token becomes the new truth in the
//! backup and manifest, so the watchdog does not take it for tampering.
//! Something the person planted in `~/.claude` that stops either (a link, a
//! file of someone else's) is reported to the admins as tampering.

use std::sync::Arc;

use ccgate_quota::wire::{AgentEvent, EventBody, TamperEvent};
use ccgate_quota::{CredentialMode, Policy};

use crate::guard::claude_home::LoginFileError;
use crate::guard::login::{self, LoginMove};
use crate::guard::logout::{self, CommandRunner, LogoutOutcome, SystemRunner};
use crate::guard::manifest::{FileRecord, MANIFEST_LOCK, Manifest, Protected, copy_atomic};
use crate::guard::settings::TeamLogin;
use crate::paths::Paths;
use crate::state::{Hooks, Shared};

pub struct GuardHooks {
    runner: Arc<dyn CommandRunner>,
}

impl GuardHooks {
    /// Runs the system's `security` (macOS) as the user.
    pub fn system() -> Self {
        Self::with_runner(Arc::new(SystemRunner::default()))
    }

    pub fn with_runner(runner: Arc<dyn CommandRunner>) -> Self {
        Self { runner }
    }
}

impl Hooks for GuardHooks {
    fn killed(&self, shared: &Arc<Shared>) {
        let shared = shared.clone();
        let runner = self.runner.clone();
        // Off the async runtime: it may run a program.
        std::thread::spawn(move || {
            match logout::log_out(&shared.paths, &shared.config, runner.as_ref()) {
                Ok(LogoutOutcome::LoggedOut(what)) => {
                    tracing::warn!("killed: logged the user out of Claude Code ({what})");
                }
                Ok(LogoutOutcome::AlreadyLoggedOut) => {
                    tracing::info!("killed: the user was not logged in to Claude Code");
                }
                Ok(LogoutOutcome::NoUser) => {
                    tracing::warn!("killed: no OS user is configured, nobody to log out");
                }
                Err(error) => {
                    tracing::error!("killed, but the logout failed: {error}");
                    report_planted(&shared, &error, "the kill switch's logout");
                }
            }
        });
    }

    fn credential_mode(&self, shared: &Arc<Shared>, policy: &Policy) {
        let kind = match policy.credential {
            CredentialMode::TeamCredential { kind, .. } => Some(kind),
            CredentialMode::PersonalLogin => None,
        };
        let placeholder = shared.vault.placeholder().to_owned();
        let personal_api_keys = policy.personal_api_keys;
        let shared = shared.clone();
        let runner = self.runner.clone();
        // Off the async runtime: it writes files and may run a program.
        std::thread::spawn(move || {
            let team = kind.map(|kind| TeamLogin {
                kind,
                placeholder: &placeholder,
                personal_api_keys,
            });
            follow_credential_mode(&shared, runner.as_ref(), team);
        });
    }

    fn token_rotated(&self, shared: &Arc<Shared>) {
        match adopt_token(&shared.paths) {
            Ok(true) => tracing::info!("the rotated device token is in the backup and manifest"),
            Ok(false) => {}
            Err(error) => tracing::error!("cannot record the rotated device token: {error}"),
        }
    }
}

/// Managed settings and the person's own login, for the credential mode.
fn follow_credential_mode(
    shared: &Shared,
    runner: &dyn CommandRunner,
    team: Option<TeamLogin<'_>>,
) {
    let (paths, config) = (&shared.paths, &shared.config);
    match login::apply_login_settings(paths, team) {
        Ok(true) => tracing::info!(
            team_credential = team.is_some(),
            "managed settings now carry ccgate's login entries for this mode"
        ),
        Ok(false) => {}
        Err(error) => tracing::error!("cannot update the managed settings' login: {error}"),
    }
    let moved = if team.is_some() {
        login::stash(paths, config, runner)
    } else {
        login::give_back(paths, config, runner)
    };
    match moved {
        Ok(LoginMove::Stashed(what)) => {
            tracing::warn!("team credential mode: the person's own login left their home ({what})");
        }
        Ok(LoginMove::Returned(what)) => {
            tracing::info!("personal login mode: the person's own login is back ({what})");
        }
        Ok(LoginMove::Nothing) => {}
        Err(error) => {
            tracing::error!("cannot move the person's own login: {error}");
            report_planted(shared, &error, "moving the person's own login");
        }
    }
}

/// Tells the admins when the person's `~/.claude` holds something ccgate
/// refused to act through.
fn report_planted(shared: &Shared, error: &LoginFileError, stopped: &str) {
    let Some(refusal) = error.planted() else {
        return;
    };
    shared.store_event(AgentEvent {
        id: uuid::Uuid::now_v7(),
        at: shared.now(),
        body: EventBody::Tamper(TamperEvent {
            path: shared.paths.to_system(refusal.path()).display().to_string(),
            what: "login_link".to_owned(),
            restored: false,
            detail: Some(format!("{refusal}; {stopped} was not done")),
        }),
    });
}

/// Makes the token file as it is now the protected version. False when
/// there is no manifest (not installed by setup).
pub fn adopt_token(paths: &Paths) -> Result<bool, String> {
    let _lock = MANIFEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut manifest) = Manifest::load(paths).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let file = Protected::DeviceToken;
    if manifest.record(file).is_none() {
        return Ok(false);
    }
    copy_atomic(&file.path(paths), &file.backup_path(paths), 0o600)
        .map_err(|e| format!("cannot update the backup: {e}"))?;
    manifest.set_record(FileRecord::of(paths, file).map_err(|e| e.to_string())?);
    manifest.written_at = jiff::Timestamp::now();
    manifest.save(paths).map_err(|e| e.to_string())?;
    Ok(true)
}
