//! On PostgreSQL: Recording what devices observed: events (each stored once, by id), the
//! audit entries that go with them, and the subscription utilization their
//! replies carried.
//!
//! The `events` table's triggers keep each person's running totals and
//! settle the reservation an event's turn held; an event its device sent
//! before is not inserted, so it fires neither.

use std::sync::Arc;

use ccgate_quota::ModelFamily;
use ccgate_quota::wire::SubscriptionUsage;
use deadpool_postgres::{Object, Transaction};

use super::column;
use crate::db::corrupt;
use crate::db::utilization::{MAX_SEEN_ACCOUNTS, SubscriptionClaim};
use crate::model::Event;
use crate::postgres::PgDb;
use crate::store::StoreResult;
use crate::writer::PendingRow;

const INSERT_EVENT: &str =
    "INSERT INTO events (id, user_id, device_id, at, received_at, type, model, family,
         prompts, credits, input_tokens, output_tokens, cache_creation_input_tokens,
         cache_read_input_tokens, kind, turn_key, session_id, detail, count_reason, estimated,
         credential)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
         $19, $20, $21)
     ON CONFLICT (device_id, id) DO NOTHING";

/// Inserts one row unless its device already sent its id; true when new.
/// Any other constraint the row breaks is an error (never a silent skip).
async fn insert_row(tx: &Transaction<'_>, row: &Event) -> StoreResult<bool> {
    // Counts are bounded on the way in (ccgate_quota::limits); a count that
    // does not fit a BIGINT is refused rather than stored negative.
    let count = |n: u64| i64::try_from(n).map_err(|_| corrupt(format!("count {n} is too large")));
    let t = &row.totals;
    let (prompts, credits) = (count(t.prompts)?, count(t.credits)?);
    let (input, output) = (count(t.input_tokens)?, count(t.output_tokens)?);
    let creation = count(t.cache_creation_input_tokens)?;
    let read = count(t.cache_read_input_tokens)?;
    let family = row.family.map(ModelFamily::as_str);
    let statement = tx.prepare_cached(INSERT_EVENT).await?;
    let changed = tx
        .execute(
            &statement,
            &[
                &row.id,
                &row.user_id,
                &row.device_id,
                &row.at.as_millisecond(),
                &row.received_at.as_millisecond(),
                &row.event_type.as_str(),
                &row.model,
                &family,
                &prompts,
                &credits,
                &input,
                &output,
                &creation,
                &read,
                &row.kind,
                &row.turn_key,
                &row.session_id,
                &row.detail,
                &row.count_reason,
                &row.estimated,
                &row.credential,
            ],
        )
        .await?;
    Ok(changed == 1)
}

/// The subscription a request used, creating a `seen` subscription for an
/// account met for the first time, and remembering it as the person's.
async fn resolve(
    tx: &Transaction<'_>,
    user_id: i64,
    claim: &SubscriptionClaim,
    now_ms: i64,
) -> StoreResult<Option<i64>> {
    let account = match claim {
        SubscriptionClaim::Team => {
            let statement = tx
                .prepare_cached("SELECT subscription_id FROM users WHERE id = $1")
                .await?;
            let row = tx.query_opt(&statement, &[&user_id]).await?;
            return Ok(row
                .map(|row| column::<Option<i64>>(&row, 0))
                .transpose()?
                .flatten());
        }
        SubscriptionClaim::Account(account) => account,
    };
    let id = match account_subscription(tx, account).await? {
        Some(id) => id,
        None => {
            // The account is Claude Code's claim: a forged one per request
            // must not grow the table without end.
            if seen_accounts(tx).await? >= MAX_SEEN_ACCOUNTS {
                return Ok(None);
            }
            add_seen_account(tx, account, now_ms).await?
        }
    };
    let statement = tx
        .prepare_cached(
            "UPDATE users SET seen_subscription_id = $2
             WHERE id = $1 AND seen_subscription_id IS DISTINCT FROM $2",
        )
        .await?;
    tx.execute(&statement, &[&user_id, &id]).await?;
    Ok(Some(id))
}

async fn seen_accounts(tx: &Transaction<'_>) -> StoreResult<i64> {
    let statement = tx
        .prepare_cached("SELECT COUNT(*) FROM subscriptions WHERE origin = 'seen'")
        .await?;
    column(&tx.query_one(&statement, &[]).await?, 0)
}

async fn account_subscription(tx: &Transaction<'_>, account: &str) -> StoreResult<Option<i64>> {
    let statement = tx
        .prepare_cached("SELECT id FROM subscriptions WHERE account_uuid = $1")
        .await?;
    tx.query_opt(&statement, &[&account])
        .await?
        .map(|row| column(&row, 0))
        .transpose()
}

/// A subscription for an account seen in traffic: no credential (an empty
/// sealed blob), named after the account until an admin renames it. A
/// name already taken is skipped without aborting the transaction; an
/// account another replica filed meanwhile is that replica's row.
async fn add_seen_account(tx: &Transaction<'_>, account: &str, now_ms: i64) -> StoreResult<i64> {
    let short: String = account.chars().take(8).collect();
    let statement = tx
        .prepare_cached(
            "INSERT INTO subscriptions (name, kind, credential, credential_hint, created_at,
                 updated_at, origin, account_uuid)
             VALUES ($1, 'oauth_token', ''::bytea, '', $2, $2, 'seen', $3)
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .await?;
    for name in [format!("Account {short}"), format!("Account {account}")] {
        if let Some(row) = tx
            .query_opt(&statement, &[&name, &now_ms, &account])
            .await?
        {
            return column(&row, 0);
        }
        if let Some(id) = account_subscription(tx, account).await? {
            return Ok(id);
        }
    }
    Err(corrupt(format!(
        "no free subscription name for account {account}"
    )))
}

/// Marks a stored request event with the subscription it used.
async fn tag_event(
    tx: &Transaction<'_>,
    device_id: i64,
    event_id: &str,
    subscription_id: i64,
) -> StoreResult<()> {
    let statement = tx
        .prepare_cached("UPDATE events SET subscription_id = $3 WHERE device_id = $1 AND id = $2")
        .await?;
    tx.execute(&statement, &[&device_id, &event_id, &subscription_id])
        .await?;
    Ok(())
}

/// Stores one observation of a subscription's utilization.
async fn record_observation(
    tx: &Transaction<'_>,
    subscription_id: i64,
    user_id: i64,
    device_id: i64,
    usage: &SubscriptionUsage,
) -> StoreResult<()> {
    let data = serde_json::to_value(usage).map_err(corrupt)?;
    let five_hour = usage.five_hour();
    let seven_day = usage.seven_day();
    let statement = tx
        .prepare_cached(
            "INSERT INTO utilization_observations (subscription_id, at, user_id, device_id,
                 five_hour, five_hour_resets_at, seven_day, seven_day_resets_at, status, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &subscription_id,
            &usage.observed_at.as_millisecond(),
            &user_id,
            &device_id,
            &five_hour.and_then(|w| w.utilization),
            &five_hour
                .and_then(|w| w.resets_at)
                .map(|t| t.as_millisecond()),
            &seven_day.and_then(|w| w.utilization),
            &seven_day
                .and_then(|w| w.resets_at)
                .map(|t| t.as_millisecond()),
            &usage.status,
            &data,
        ],
    )
    .await?;
    Ok(())
}

/// Stores one row with what goes with it; false when its id was stored before.
async fn record(tx: &Transaction<'_>, pending: &PendingRow) -> StoreResult<bool> {
    let row = &pending.row;
    if !insert_row(tx, row).await? {
        return Ok(false);
    }
    if let Some(entry) = &pending.audit {
        super::insert_audit(&**tx, entry).await?;
    }
    if let (Some(request), Some(device_id)) = (&pending.subscription, row.device_id) {
        let subscription = resolve(
            tx,
            row.user_id,
            &request.claim,
            row.received_at.as_millisecond(),
        )
        .await?;
        if let Some(subscription_id) = subscription {
            tag_event(tx, device_id, &row.id, subscription_id).await?;
            if let Some(usage) = &request.utilization {
                record_observation(tx, subscription_id, row.user_id, device_id, usage).await?;
            }
        }
    }
    Ok(true)
}

/// Records one row in a transaction of its own on `client`.
async fn record_alone(client: &mut Object, pending: &PendingRow) -> StoreResult<bool> {
    let tx = client.transaction().await?;
    let new = record(&tx, pending).await?;
    tx.commit().await?;
    Ok(new)
}

impl PgDb {
    pub async fn record_events(&self, rows: Arc<Vec<PendingRow>>) -> StoreResult<Vec<bool>> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let mut new = Vec::with_capacity(rows.len());
        for pending in rows.iter() {
            new.push(record(&tx, pending).await?);
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Each row in a fresh transaction: PostgreSQL aborts a transaction at
    /// its first error, so a refused row must not share one with the next.
    pub async fn record_events_each(&self, rows: Arc<Vec<PendingRow>>) -> Vec<StoreResult<bool>> {
        let mut client: Option<Object> = None;
        let mut outcomes = Vec::with_capacity(rows.len());
        for pending in rows.iter() {
            // A connection that broke is left for the pool to discard.
            if client.as_ref().is_some_and(|c| c.is_closed()) {
                client = None;
            }
            let outcome = match &mut client {
                Some(client) => record_alone(client, pending).await,
                None => match self.connection().await {
                    Ok(connected) => record_alone(client.insert(connected), pending).await,
                    Err(error) => Err(error.into()),
                },
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Keeps the observation for the person's assigned or last-seen
    /// subscription.
    pub async fn record_reported_utilization(
        &self,
        user_id: i64,
        device_id: i64,
        usage: SubscriptionUsage,
    ) -> StoreResult<bool> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let subscription = tx
            .query_opt(
                "SELECT COALESCE(subscription_id, seen_subscription_id) FROM users WHERE id = $1",
                &[&user_id],
            )
            .await?
            .map(|row| column::<Option<i64>>(&row, 0))
            .transpose()?
            .flatten();
        let Some(subscription_id) = subscription else {
            return Ok(false);
        };
        record_observation(&tx, subscription_id, user_id, device_id, &usage).await?;
        tx.commit().await?;
        Ok(true)
    }
}
