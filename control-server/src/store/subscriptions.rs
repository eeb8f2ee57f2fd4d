//! Subscriptions and their sealed credentials.

use rusqlite::Transaction;
use serde_json::json;

use super::{Store, StoreError, StoreResult};
use crate::db;
use crate::db::audit::AuditEntry;
use crate::db::subscriptions::{NewCredential, SealedCredential, SubscriptionRow};
use crate::db::users::UserRow;

/// What the audit log keeps of a subscription: never the credential.
fn describe(row: &SubscriptionRow) -> serde_json::Value {
    json!({
        "subscription_id": row.id, "name": row.name, "kind": row.kind,
        "credential_hint": row.credential_hint, "credential_version": row.credential_version,
        "users": row.users,
    })
}

/// `audit` with `row`'s description as its detail.
fn describing(audit: AuditEntry, row: &SubscriptionRow) -> AuditEntry {
    AuditEntry {
        detail: Some(describe(row)),
        ..audit
    }
}

fn not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("no subscription with id {id}"))
}

/// Gives every user of subscription `id` a new policy version; their rows.
fn restamp_users(tx: &Transaction<'_>, id: i64) -> StoreResult<Vec<UserRow>> {
    let ids = db::subscriptions::user_ids(tx, id)?;
    restamp(tx, &ids)
}

fn restamp(tx: &Transaction<'_>, ids: &[i64]) -> StoreResult<Vec<UserRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let version = db::settings::next_policy_version(tx)?;
    let mut rows = Vec::with_capacity(ids.len());
    for &user_id in ids {
        db::users::set_policy_version(tx, user_id, version)?;
        rows.extend(db::users::get(tx, user_id)?);
    }
    Ok(rows)
}

impl Store {
    /// Every subscription, enrolled or seen.
    pub async fn subscriptions(&self) -> StoreResult<Vec<SubscriptionRow>> {
        self.db.read(db::subscriptions::list).await
    }

    /// Subscription `id`, if it exists.
    pub async fn subscription(&self, id: i64) -> StoreResult<Option<SubscriptionRow>> {
        self.db
            .read(move |conn| db::subscriptions::get(conn, id))
            .await
    }

    /// Enrols a subscription named `name` holding `credential` at `at` (ms)
    /// and records `audit` with the new subscription's description as its
    /// detail; the new row.
    pub async fn create_subscription(
        &self,
        name: String,
        credential: NewCredential,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<SubscriptionRow> {
        self.db
            .write(move |tx| {
                let row = db::subscriptions::insert(tx, &name, &credential, at)?;
                db::audit::insert(tx, &describing(audit, &row))?;
                Ok(row)
            })
            .await
    }

    /// Renames subscription `id` (recording the rename's audit entry) and/or
    /// rotates its credential at `at` (ms), giving its users a new policy
    /// version and recording the rotation's entry with the rotated
    /// subscription's description as its detail; the row after, and the
    /// users restamped.
    pub async fn update_subscription(
        &self,
        id: i64,
        rename: Option<(String, AuditEntry)>,
        rotation: Option<(NewCredential, AuditEntry)>,
        at: i64,
    ) -> StoreResult<(SubscriptionRow, Vec<UserRow>)> {
        self.db
            .write(move |tx| {
                if let Some((name, audit)) = &rename {
                    db::subscriptions::rename(tx, id, name, at)?;
                    db::audit::insert(tx, audit)?;
                }
                let mut affected = Vec::new();
                if let Some((credential, _)) = &rotation {
                    db::subscriptions::rotate(tx, id, credential, at)?;
                    affected = restamp_users(tx, id)?;
                }
                let row = db::subscriptions::get(tx, id)?.ok_or_else(|| not_found(id))?;
                if let Some((_, audit)) = rotation {
                    db::audit::insert(tx, &describing(audit, &row))?;
                }
                Ok((row, affected))
            })
            .await
    }

    /// Deletes subscription `id`, giving its users a new policy version
    /// (they go back to their own logins), and records `audit` with the
    /// deleted subscription's description as its detail; the deleted row
    /// and the users restamped.
    pub async fn delete_subscription(
        &self,
        id: i64,
        audit: AuditEntry,
    ) -> StoreResult<(SubscriptionRow, Vec<UserRow>)> {
        self.db
            .write(move |tx| {
                let row = db::subscriptions::get(tx, id)?.ok_or_else(|| not_found(id))?;
                let ids = db::subscriptions::user_ids(tx, id)?;
                db::subscriptions::delete(tx, id)?;
                let affected = restamp(tx, &ids)?;
                db::audit::insert(tx, &describing(audit, &row))?;
                Ok((row, affected))
            })
            .await
    }

    /// Subscription `subscription_id`'s sealed credential, if it holds one.
    pub async fn sealed_credential(
        &self,
        subscription_id: i64,
    ) -> StoreResult<Option<SealedCredential>> {
        self.db
            .read(move |conn| db::subscriptions::sealed_credential(conn, subscription_id))
            .await
    }
}
