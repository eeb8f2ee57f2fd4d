//! Team settings and the built-in admin's password.

use serde_json::Value;

use super::{Change, Store, StoreResult};
use crate::db::settings::TeamSettings;
use crate::db::{self};

/// A new password for the built-in admin, as its argon2id hash.
#[derive(Debug, Clone)]
pub struct NewAdminPassword {
    pub hash: String,
    /// The session that set it stays; the built-in admin's others end.
    pub keep_session: Option<i64>,
}

impl Store {
    /// Saves the team's settings (under a new policy version when
    /// `policy_changed`) and, if given, the built-in admin's new password,
    /// audited as one change. Returns the settings as saved.
    pub async fn save_settings(
        &self,
        mut settings: TeamSettings,
        policy_changed: bool,
        password: Option<NewAdminPassword>,
        detail: Value,
        change: Change,
    ) -> StoreResult<TeamSettings> {
        self.db
            .write(move |tx| {
                if policy_changed {
                    settings.version = db::settings::next_policy_version(tx)?;
                    db::settings::save(tx, &settings)?;
                }
                if let Some(password) = &password {
                    db::settings::set_admin_password_hash(tx, &password.hash)?;
                    db::auth::delete_builtin_sessions_except(tx, password.keep_session)?;
                }
                db::audit::insert(
                    tx,
                    &change.audit("settings_changed", None, None, Some(detail)),
                )?;
                Ok(settings)
            })
            .await
    }
}
