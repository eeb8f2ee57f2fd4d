//! The store's use cases on PostgreSQL: each runs in one transaction on a
//! pooled connection of [`crate::postgres::PgDb`], so several replicas can
//! share the record.

mod accounts;
mod alerts;
mod devices;
mod events;
mod history;
mod identities;
mod people;
mod settings;
mod startup;
mod subscriptions;
mod upkeep;

use deadpool_postgres::{Object, Transaction};
use tokio_postgres::types::FromSql;
use tokio_postgres::{GenericClient, IsolationLevel, Row};

use crate::db::corrupt;
use crate::model::AuditEntry;
use crate::store::StoreResult;

/// Column `index` of `row`; a value of another type is corrupt data.
fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(corrupt)
}

/// A time stored as ms since the epoch; one out of jiff's range is corrupt.
fn instant(row: &Row, index: usize) -> StoreResult<jiff::Timestamp> {
    crate::db::timestamp(column(row, index)?)
}

/// An optional time stored as ms since the epoch.
fn instant_opt(row: &Row, index: usize) -> StoreResult<Option<jiff::Timestamp>> {
    column::<Option<i64>>(row, index)?
        .map(crate::db::timestamp)
        .transpose()
}

/// A stored count or version (never negative; a negative one reads as 0,
/// as on SQLite).
fn count(row: &Row, index: usize) -> StoreResult<u64> {
    Ok(column::<i64>(row, index)?.max(0) as u64)
}

/// A read-only repeatable-read transaction: its reads see one snapshot.
async fn read_snapshot(client: &mut Object) -> StoreResult<Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// Adds `entry` to the audit log in the caller's transaction.
async fn insert_audit(client: &impl GenericClient, entry: &AuditEntry) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO audit_log (at, kind, actor, user_id, device_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &entry.at.as_millisecond(),
                &entry.kind,
                &entry.actor,
                &entry.user_id,
                &entry.device_id,
                &entry.detail,
            ],
        )
        .await?;
    Ok(())
}
