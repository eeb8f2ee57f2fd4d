//! On PostgreSQL: What the server reads and writes once when it starts: the built-in
//! admin's password, the sealed credentials to check against the key, and
//! everything the live state is loaded from.

use std::collections::HashMap;
use std::pin::pin;

use ccgate_quota::{ModelFamily, Totals, UsageIndex};
use futures_util::TryStreamExt;
use jiff::Timestamp;
use tokio_postgres::Row;

use super::history::{family, totals_at};
use super::{column, devices, people, read_snapshot, settings, subscriptions};
use crate::postgres::PgDb;
use crate::store::StoreResult;
use crate::store::{Directory, PendingToken, RecentUsage};

const SEALED_CREDENTIALS: &str = "SELECT name, credential FROM subscriptions ORDER BY id";

/// Every event with usage at or after `$1`, oldest first (ties in the
/// order they were stored).
const USAGE_SINCE: &str = "SELECT user_id, at, family, prompts, credits, input_tokens,
         output_tokens, cache_creation_input_tokens, cache_read_input_tokens
     FROM events
     WHERE at >= $1 AND family IS NOT NULL
         AND (prompts > 0 OR credits > 0 OR input_tokens > 0 OR output_tokens > 0
              OR cache_creation_input_tokens > 0 OR cache_read_input_tokens > 0)
     ORDER BY at, seq";

/// The usage in a row of [`USAGE_SINCE`]: who, when, which family, how much.
fn usage(row: &Row) -> StoreResult<(i64, i64, ModelFamily, Totals)> {
    Ok((
        column(row, 0)?,
        column(row, 1)?,
        family(column(row, 2)?)?,
        totals_at(row, 3)?,
    ))
}

impl PgDb {
    pub async fn admin_password_hash(&self) -> StoreResult<Option<String>> {
        let client = self.connection().await?;
        settings::admin_password_hash(&**client).await
    }

    pub async fn set_first_admin_password(&self, hash: String) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        settings::set_admin_password_hash(&*tx, &hash).await?;
        let team = settings::load(&*tx).await?;
        settings::save(&*tx, &team).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn sealed_credentials(&self) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let client = self.connection().await?;
        client
            .query(SEALED_CREDENTIALS, &[])
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    pub async fn directory(&self) -> StoreResult<Directory> {
        let mut client = self.connection().await?;
        let tx = read_snapshot(&mut client).await?;
        let directory = Directory {
            settings: settings::load(&*tx).await?,
            subscriptions: subscriptions::list(&*tx).await?,
            users: people::list(&*tx).await?,
            devices: devices::list_live(&*tx).await?,
        };
        tx.commit().await?;
        Ok(directory)
    }

    pub async fn usage_since(&self, since: Timestamp) -> StoreResult<RecentUsage> {
        let client = self.connection().await?;
        let rows = client
            .query_raw(USAGE_SINCE, [since.as_millisecond()])
            .await?;
        let mut rows = pin!(rows);
        let mut by_user: HashMap<i64, UsageIndex> = HashMap::new();
        let mut events = 0;
        while let Some(row) = rows.try_next().await? {
            let (user_id, at, family, totals) = usage(&row)?;
            if let Ok(at) = Timestamp::from_millisecond(at) {
                by_user.entry(user_id).or_default().add(at, family, totals);
            }
            events += 1;
        }
        Ok(RecentUsage { by_user, events })
    }

    pub async fn set_pending_token(&self, token: PendingToken) -> StoreResult<()> {
        let client = self.connection().await?;
        devices::set_pending_token(&**client, &token).await
    }
}
