//! What the server reads and writes once when it starts: the built-in
//! admin's password, the sealed credentials to check against the key, and
//! everything the live state is loaded from.

use std::collections::HashMap;

use ccgate_quota::UsageIndex;
use jiff::Timestamp;

use super::{PendingToken, Store, StoreResult};
use crate::db::settings::TeamSettings;
use crate::model::{Device, Person, Subscription};

/// Everything the live state starts from, read in one transaction.
#[derive(Debug)]
pub struct Directory {
    pub settings: TeamSettings,
    pub subscriptions: Vec<Subscription>,
    pub users: Vec<Person>,
    pub devices: Vec<Device>,
}

/// Each person's usage since some time, and how many events it came from.
#[derive(Debug, Default)]
pub struct RecentUsage {
    pub by_user: HashMap<i64, UsageIndex>,
    pub events: u64,
}

impl Store {
    /// The built-in admin's password hash; `None` before the first start.
    pub async fn admin_password_hash(&self) -> StoreResult<Option<String>> {
        dispatch!(self, admin_password_hash())
    }

    /// Stores the built-in admin's first password, with the settings rows
    /// the server expects from then on.
    pub async fn set_first_admin_password(&self, hash: String) -> StoreResult<()> {
        dispatch!(self, set_first_admin_password(hash))
    }

    /// Every subscription's sealed credential by name, to check the server key with.
    pub async fn sealed_credentials(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        dispatch!(self, sealed_credentials())
    }

    /// Settings, subscriptions, people and devices.
    pub async fn directory(&self) -> StoreResult<Directory> {
        dispatch!(self, directory())
    }

    /// Each person's counted usage since `since`, indexed for checks.
    pub async fn usage_since(&self, since: Timestamp) -> StoreResult<RecentUsage> {
        dispatch!(self, usage_since(since))
    }

    /// Gives a device a pending replacement token: one whose text was lost
    /// with the last process is issued afresh.
    pub async fn set_pending_token(&self, token: PendingToken) -> StoreResult<()> {
        dispatch!(self, set_pending_token(token))
    }
}
