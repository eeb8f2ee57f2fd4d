//! On SQLite: Subscriptions and their sealed credentials.

use rusqlite::Transaction;

use crate::db;
use crate::db::Db;
use crate::db::subscriptions::{NewCredential, SealedCredential};
use crate::model::{AuditEntry, Person, Subscription};
use crate::store::StoreResult;
use crate::store::subscriptions::{describing, not_found};

/// Gives every user of subscription `id` a new policy version; their rows.
fn restamp_users(tx: &Transaction<'_>, id: i64) -> StoreResult<Vec<Person>> {
    let ids = db::subscriptions::user_ids(tx, id)?;
    restamp(tx, &ids)
}

fn restamp(tx: &Transaction<'_>, ids: &[i64]) -> StoreResult<Vec<Person>> {
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

impl Db {
    pub async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        self.read(db::subscriptions::list).await
    }

    pub async fn subscription(&self, id: i64) -> StoreResult<Option<Subscription>> {
        self.read(move |conn| db::subscriptions::get(conn, id))
            .await
    }

    pub async fn create_subscription(
        &self,
        name: String,
        credential: NewCredential,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Subscription> {
        self.write(move |tx| {
            let row = db::subscriptions::insert(tx, &name, &credential, at)?;
            db::audit::insert(tx, &describing(audit, &row))?;
            Ok(row)
        })
        .await
    }

    pub async fn update_subscription(
        &self,
        id: i64,
        rename: Option<(String, AuditEntry)>,
        rotation: Option<(NewCredential, AuditEntry)>,
        at: i64,
    ) -> StoreResult<(Subscription, Vec<Person>)> {
        self.write(move |tx| {
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

    pub async fn delete_subscription(
        &self,
        id: i64,
        audit: AuditEntry,
    ) -> StoreResult<(Subscription, Vec<Person>)> {
        self.write(move |tx| {
            let row = db::subscriptions::get(tx, id)?.ok_or_else(|| not_found(id))?;
            let ids = db::subscriptions::user_ids(tx, id)?;
            db::subscriptions::delete(tx, id)?;
            let affected = restamp(tx, &ids)?;
            db::audit::insert(tx, &describing(audit, &row))?;
            Ok((row, affected))
        })
        .await
    }

    pub async fn sealed_credential(
        &self,
        subscription_id: i64,
    ) -> StoreResult<Option<SealedCredential>> {
        self.read(move |conn| db::subscriptions::sealed_credential(conn, subscription_id))
            .await
    }
}
