//! Subscriptions and their sealed credentials.

use serde_json::json;

use super::{Store, StoreError, StoreResult};
use crate::db::subscriptions::{NewCredential, SealedCredential};
use crate::model::{AuditEntry, Person, Subscription};

/// What the audit log keeps of a subscription: never the credential.
pub(super) fn describe(row: &Subscription) -> serde_json::Value {
    json!({
        "subscription_id": row.id, "name": row.name, "kind": row.kind,
        "credential_hint": row.credential_hint, "credential_version": row.credential_version,
        "users": row.users,
    })
}

/// `audit` with `row`'s description as its detail.
pub(super) fn describing(audit: AuditEntry, row: &Subscription) -> AuditEntry {
    AuditEntry {
        detail: Some(describe(row)),
        ..audit
    }
}

pub(super) fn not_found(id: i64) -> StoreError {
    StoreError::NotFound(format!("no subscription with id {id}"))
}

impl Store {
    /// Every subscription, enrolled or seen.
    pub async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        dispatch!(self, subscriptions())
    }

    /// Subscription `id`, if it exists.
    pub async fn subscription(&self, id: i64) -> StoreResult<Option<Subscription>> {
        dispatch!(self, subscription(id))
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
    ) -> StoreResult<Subscription> {
        dispatch!(self, create_subscription(name, credential, at, audit))
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
    ) -> StoreResult<(Subscription, Vec<Person>)> {
        dispatch!(self, update_subscription(id, rename, rotation, at))
    }

    /// Deletes subscription `id`, giving its users a new policy version
    /// (they go back to their own logins), and records `audit` with the
    /// deleted subscription's description as its detail; the deleted row
    /// and the users restamped.
    pub async fn delete_subscription(
        &self,
        id: i64,
        audit: AuditEntry,
    ) -> StoreResult<(Subscription, Vec<Person>)> {
        dispatch!(self, delete_subscription(id, audit))
    }

    /// Subscription `subscription_id`'s sealed credential, if it holds one.
    pub async fn sealed_credential(
        &self,
        subscription_id: i64,
    ) -> StoreResult<Option<SealedCredential>> {
        dispatch!(self, sealed_credential(subscription_id))
    }
}
