//! On PostgreSQL: What the server reads and writes once when it starts: the built-in
//! admin's password, the sealed credentials to check against the key, and
//! everything the live state is loaded from.

use std::collections::HashMap;
use std::pin::pin;

use ccgate_quota::{ModelFamily, Totals, UsageIndex};
use futures_util::TryStreamExt;
use jiff::Timestamp;
use tokio_postgres::{GenericClient, IsolationLevel, Row};

use super::{devices, people, settings};
use crate::db::subscriptions::SubscriptionRow;
use crate::db::{corrupt, enum_from_text};
use crate::postgres::PgDb;
use crate::store::StoreResult;
use crate::store::{Directory, RecentUsage};

/// Every subscription as admins see it (no credential), by name without
/// case as SQLite's `COLLATE NOCASE` orders them, then id.
const SUBSCRIPTIONS: &str = "SELECT s.id, s.name, s.kind, s.credential_hint, s.credential_version,
         (SELECT COUNT(*) FROM users u
          WHERE COALESCE(u.subscription_id, u.seen_subscription_id) = s.id),
         s.created_at, s.updated_at, s.origin, s.account_uuid, s.credential_set_at
     FROM subscriptions s ORDER BY lower(s.name) COLLATE \"C\", s.id";

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

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A row of [`SUBSCRIPTIONS`].
// Duplicates the subscriptions area's mapping, to be folded into one.
fn subscription_row(row: &Row) -> StoreResult<SubscriptionRow> {
    let kind: String = row.try_get(2)?;
    let origin: String = row.try_get(8)?;
    Ok(SubscriptionRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        origin: enum_from_text(&origin)?,
        account_uuid: row.try_get(9)?,
        credential_set_at: row.try_get(10)?,
        kind: enum_from_text(&kind)?,
        credential_hint: row.try_get(3)?,
        credential_version: count(row.try_get(4)?),
        users: count(row.try_get(5)?),
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
    })
}

async fn subscriptions(client: &impl GenericClient) -> StoreResult<Vec<SubscriptionRow>> {
    client
        .query(SUBSCRIPTIONS, &[])
        .await?
        .iter()
        .map(subscription_row)
        .collect()
}

/// The usage in a row of [`USAGE_SINCE`]: who, when, which family, how much.
fn usage(row: &Row) -> StoreResult<(i64, i64, ModelFamily, Totals)> {
    let family: String = row.try_get(2)?;
    let n = |i: usize| row.try_get::<_, i64>(i).map(count);
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        family.parse().map_err(corrupt)?,
        Totals {
            prompts: n(3)?,
            credits: n(4)?,
            input_tokens: n(5)?,
            output_tokens: n(6)?,
            cache_creation_input_tokens: n(7)?,
            cache_read_input_tokens: n(8)?,
        },
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
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let directory = Directory {
            settings: settings::load(&*tx).await?,
            subscriptions: subscriptions(&*tx).await?,
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

    pub async fn set_pending_token(&self, id: i64, hash: String) -> StoreResult<()> {
        let client = self.connection().await?;
        devices::set_pending_token(&**client, id, &hash).await
    }
}
