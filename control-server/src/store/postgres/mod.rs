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

use tokio_postgres::GenericClient;

use crate::db::audit::AuditEntry;
use crate::store::StoreResult;

/// Adds `entry` to the audit log in the caller's transaction.
async fn insert_audit(client: &impl GenericClient, entry: &AuditEntry) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO audit_log (at, kind, actor, user_id, device_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &entry.at,
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
