//! On SQLite: What the server reads and writes once when it starts: the built-in
//! admin's password, the sealed credentials to check against the key, and
//! everything the live state is loaded from.

use std::collections::HashMap;

use ccgate_quota::UsageIndex;
use jiff::Timestamp;

use crate::db::Db;
use crate::db::{self};
use crate::store::StoreResult;
use crate::store::{Directory, PendingToken, RecentUsage};

impl Db {
    pub async fn admin_password_hash(&self) -> StoreResult<Option<String>> {
        self.read(db::settings::admin_password_hash).await
    }

    pub async fn set_first_admin_password(&self, hash: String) -> StoreResult<()> {
        self.write(move |tx| {
            db::settings::set_admin_password_hash(tx, &hash)?;
            let settings = db::settings::load(tx)?;
            db::settings::save(tx, &settings)
        })
        .await
    }

    pub async fn sealed_credentials(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        self.read(db::subscriptions::all_sealed).await
    }

    pub async fn directory(&self) -> StoreResult<Directory> {
        self.read(|conn| {
            Ok(Directory {
                settings: db::settings::load(conn)?,
                subscriptions: db::subscriptions::list(conn)?,
                users: db::users::list(conn)?,
                devices: db::devices::list_all(conn)?,
            })
        })
        .await
    }

    pub async fn usage_since(&self, since: Timestamp) -> StoreResult<RecentUsage> {
        self.read(move |conn| {
            let mut by_user: HashMap<i64, UsageIndex> = HashMap::new();
            let events = db::events::for_each_usage_since(
                conn,
                since.as_millisecond(),
                |user_id, at, family, totals| {
                    if let Ok(at) = Timestamp::from_millisecond(at) {
                        by_user.entry(user_id).or_default().add(at, family, totals);
                    }
                },
            )?;
            Ok(RecentUsage { by_user, events })
        })
        .await
    }

    pub async fn set_pending_token(&self, token: PendingToken) -> StoreResult<()> {
        self.write(move |tx| db::devices::set_pending_token(tx, token.device_id, Some(&token.hash)))
            .await
    }
}
