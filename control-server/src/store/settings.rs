//! Team settings and the built-in admin's password.

use serde_json::Value;

use super::{Change, Store, StoreResult};
use crate::db::settings::TeamSettings;

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
        settings: TeamSettings,
        policy_changed: bool,
        password: Option<NewAdminPassword>,
        detail: Value,
        change: Change,
    ) -> StoreResult<TeamSettings> {
        dispatch!(
            self,
            save_settings(settings, policy_changed, password, detail, change)
        )
    }
}
