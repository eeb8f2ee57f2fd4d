//! The state checks are decided from, held in memory: settings, every
//! user's policy, usage index and reservations, and the device token map.
//! Loaded from the database at start; the database stays the record.

pub mod devices;
pub mod reservations;
pub mod subscriptions;
pub mod users;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;

use crate::db::settings::TeamSettings;
use crate::model::{Device, Person};
use ccgate_quota::UsageIndex;

use crate::secrets::{self, TokenHash};
use crate::store::{Directory, PendingToken, RecentUsage, Store, StoreResult};
use crate::vault::Vault;
use devices::{DeviceLive, DeviceRegistry};
use subscriptions::SubscriptionDirectory;
use users::UserLive;

#[derive(Debug)]
pub struct Live {
    settings: RwLock<Arc<TeamSettings>>,
    subscriptions: RwLock<Arc<SubscriptionDirectory>>,
    /// Held while a subscription change is written and mirrored, so the
    /// directory is always built on the one before it.
    subscription_changes: tokio::sync::Mutex<()>,
    users: RwLock<HashMap<i64, Arc<UserLive>>>,
    pub devices: DeviceRegistry,
}

/// What start-up loaded, for the log.
#[derive(Debug, Clone, Copy)]
pub struct LoadStats {
    pub users: usize,
    pub devices: usize,
    pub events: u64,
}

impl Live {
    /// Loads settings, users, devices and the last `history_since` of usage.
    /// A replacement token is taken up again when its text is stored sealed
    /// (PostgreSQL), else issued afresh (SQLite keeps only its hash).
    pub async fn load(
        store: &Store,
        vault: &Vault,
        history_since: Timestamp,
    ) -> StoreResult<(Self, LoadStats)> {
        let Directory {
            settings,
            subscriptions: subscription_rows,
            users: rows,
            devices: device_rows,
        } = store.directory().await?;
        let subscriptions = SubscriptionDirectory::from_rows(&subscription_rows);
        let RecentUsage {
            by_user: mut indexes,
            events,
        } = store.usage_since(history_since).await?;
        let users: HashMap<i64, Arc<UserLive>> = rows
            .into_iter()
            .map(|row| {
                let usage = indexes.remove(&row.id).unwrap_or_default();
                let user = UserLive::new(row, &settings, &subscriptions, usage);
                (user.id, Arc::new(user))
            })
            .collect();
        let live = Self {
            settings: RwLock::new(Arc::new(settings)),
            subscriptions: RwLock::new(Arc::new(subscriptions)),
            subscription_changes: tokio::sync::Mutex::new(()),
            users: RwLock::new(users),
            devices: DeviceRegistry::default(),
        };
        let mut reissue = Vec::new();
        for row in &device_rows {
            let Some(device) = device_from_row(row) else {
                continue;
            };
            live.devices.insert(Arc::clone(&device));
            if row.pending_token_hash.is_some() && !live.take_up_pending(&device, row, vault) {
                reissue.push(device);
            }
        }
        for device in reissue {
            let text = secrets::new_token();
            let hash = secrets::hash_token(&text);
            store
                .set_pending_token(PendingToken {
                    device_id: device.id,
                    hash: hex::encode(hash),
                    sealed: vault.seal_device_token(&text),
                })
                .await?;
            live.devices.set_pending(&device, hash, text);
        }
        let stats = LoadStats {
            users: live.users.read().unwrap_or_else(|p| p.into_inner()).len(),
            devices: device_rows.len(),
            events,
        };
        Ok((live, stats))
    }

    pub fn settings(&self) -> Arc<TeamSettings> {
        Arc::clone(&self.settings.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// New team settings: every policy is recompiled and every stream told.
    pub fn replace_settings(&self, settings: TeamSettings) {
        let settings = Arc::new(settings);
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&settings);
        let subscriptions = self.subscriptions();
        for user in self.all_users() {
            user.lock().recompile(&settings, &subscriptions);
            user.notify();
        }
    }

    pub fn subscriptions(&self) -> Arc<SubscriptionDirectory> {
        Arc::clone(&self.subscriptions.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Taken by every subscription change for its whole write.
    pub async fn lock_subscription_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.subscription_changes.lock().await
    }

    /// A subscription was added, renamed, rotated or deleted: the directory
    /// is replaced, then the rows of the users whose policy it changed are
    /// put in (recompiled, their streams told).
    pub fn replace_subscriptions(&self, directory: SubscriptionDirectory, changed: Vec<Person>) {
        *self
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(directory);
        for row in changed {
            self.put_user(row);
        }
    }

    pub fn user(&self, id: i64) -> Option<Arc<UserLive>> {
        self.users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    pub fn all_users(&self) -> Vec<Arc<UserLive>> {
        let mut users: Vec<_> = self
            .users
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        users.sort_by_key(|u| u.id);
        users
    }

    /// A user was created or changed in the database: mirror it and tell its devices.
    pub fn put_user(&self, row: Person) -> Arc<UserLive> {
        let settings = self.settings();
        let subscriptions = self.subscriptions();
        if let Some(user) = self.user(row.id) {
            user.lock().replace_row(row, &settings, &subscriptions);
            user.notify();
            return user;
        }
        let user = Arc::new(UserLive::new(
            row,
            &settings,
            &subscriptions,
            UsageIndex::new(),
        ));
        self.users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(user.id, Arc::clone(&user));
        user
    }

    pub fn remove_user(&self, id: i64) {
        let removed = self
            .users
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.devices.remove_user(id);
        // Open streams see the user gone and close.
        if let Some(user) = removed {
            user.notify();
        }
    }

    pub fn token_hash(token: &str) -> TokenHash {
        secrets::hash_token(token)
    }

    /// Another replica changed the record: brings this copy in line with
    /// `directory`, keeping each person's usage and reservations. A person
    /// is put in (their streams told) when the stored row has a newer policy
    /// version than this copy, so a snapshot read just before a change made
    /// here does not undo it; new devices are added, and a device whose token
    /// another replica promoted gets the new one. Removals come with their own
    /// events ([`Live::remove_user`], `devices.remove`), not from a snapshot
    /// that may predate a creation made here. A replacement token another
    /// replica issued is not known here (its text lives in that replica only):
    /// the old token keeps working here until the device uses the new one
    /// there.
    /// Hands `device` the replacement token `row` holds sealed, unless it
    /// already has it; false when there is none to take up.
    fn take_up_pending(&self, device: &Arc<DeviceLive>, row: &Device, vault: &Vault) -> bool {
        let (Some(hash), Some(sealed)) = (
            row.pending_token_hash
                .as_deref()
                .and_then(secrets::token_hash_from_hex),
            &row.pending_token_sealed,
        ) else {
            return false;
        };
        if device.pending_hash() == Some(hash) {
            return true;
        }
        match vault.open_device_token(sealed) {
            Ok(text) if secrets::hash_token(&text) == hash => {
                self.devices.set_pending(device, hash, text);
                true
            }
            _ => {
                tracing::warn!(
                    device = device.id,
                    "a stored replacement token does not open with the server key"
                );
                false
            }
        }
    }

    pub fn refresh(&self, directory: Directory, vault: &Vault) {
        let Directory {
            settings,
            subscriptions,
            users,
            devices,
        } = directory;
        *self
            .subscriptions
            .write()
            .unwrap_or_else(|p| p.into_inner()) =
            Arc::new(SubscriptionDirectory::from_rows(&subscriptions));
        if settings.version > self.settings().version {
            self.replace_settings(settings);
        }
        for row in users {
            let newer = self
                .user(row.id)
                .is_none_or(|user| user.lock().row.policy_version < row.policy_version);
            if newer {
                self.put_user(row);
            }
        }
        for row in &devices {
            let Some(stored) = secrets::token_hash_from_hex(&row.token_hash) else {
                continue;
            };
            let known = self.devices.get(row.id);
            if let Some(device) = &known {
                let current = device.token();
                // The same token, or a snapshot from before this replica promoted it.
                let promoted_here =
                    row.pending_token_hash.as_deref() == Some(hex::encode(current).as_str());
                if current == stored || promoted_here {
                    // A rotation through another replica: hand it over here too.
                    if current == stored {
                        self.take_up_pending(device, row, vault);
                    }
                    continue;
                }
                self.devices.remove(row.id);
            }
            if let Some(device) = device_from_row(row) {
                self.devices.insert(Arc::clone(&device));
                self.take_up_pending(&device, row, vault);
            }
        }
    }
}

/// A stored device as the live state holds it; `None` (logged) when its
/// token hash is malformed.
fn device_from_row(row: &Device) -> Option<Arc<DeviceLive>> {
    let Some(token) = secrets::token_hash_from_hex(&row.token_hash) else {
        tracing::error!(
            device = row.id,
            "stored device token hash is malformed; skipped"
        );
        return None;
    };
    Some(Arc::new(DeviceLive::new(
        row.id,
        row.user_id,
        row.kind,
        row.created_at,
        token,
        row.details.clone(),
        row.last_seen_at,
    )))
}
