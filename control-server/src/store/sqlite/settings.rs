//! On SQLite: Team settings and the built-in admin's password.

use serde_json::Value;

use crate::db::Db;
use crate::db::settings::TeamSettings;
use crate::db::{self};
use crate::store::NewAdminPassword;
use crate::store::{Change, StoreResult};

impl Db {
    pub async fn save_settings(
        &self,
        mut settings: TeamSettings,
        policy_changed: bool,
        password: Option<NewAdminPassword>,
        detail: Value,
        change: Change,
    ) -> StoreResult<TeamSettings> {
        self.write(move |tx| {
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
