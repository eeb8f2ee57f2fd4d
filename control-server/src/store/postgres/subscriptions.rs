//! On PostgreSQL: Subscriptions and their sealed credentials.

use tokio_postgres::{GenericClient, Row};

use super::people::{policy_version, rule, user_columns, user_row};
use super::settings::next_policy_version;
use super::{column, count};
use crate::db::subscriptions::{NewCredential, SealedCredential};
use crate::db::{DbError, enum_from_text, enum_to_text};
use crate::model::{AuditEntry, Person, Subscription};
use crate::postgres::{PgDb, PgError};
use crate::store::StoreResult;
use crate::store::subscriptions::{describing, not_found};

/// A subscription's columns, with how many people it serves (assigned, or
/// last seen using it).
const COLUMNS: &str = "s.id, s.name, s.kind, s.credential_hint, s.credential_version, \
     (SELECT COUNT(*) FROM users u WHERE COALESCE(u.subscription_id, u.seen_subscription_id) = s.id), \
     s.created_at, s.updated_at, s.origin, s.account_uuid, s.credential_set_at";

fn subscription_row(row: &Row) -> StoreResult<Subscription> {
    Ok(Subscription {
        id: column(row, 0)?,
        name: column(row, 1)?,
        kind: enum_from_text(column(row, 2)?)?,
        credential_hint: column(row, 3)?,
        credential_version: count(row, 4)?,
        users: count(row, 5)?,
        created_at: super::instant(row, 6)?,
        updated_at: super::instant(row, 7)?,
        origin: enum_from_text(column(row, 8)?)?,
        account_uuid: column(row, 9)?,
        credential_set_at: super::instant_opt(row, 10)?,
    })
}

/// Every subscription, by name as SQLite's NOCASE orders them (ASCII
/// letters folded, then byte order), then id.
pub(super) async fn list(client: &impl GenericClient) -> StoreResult<Vec<Subscription>> {
    client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM subscriptions s
                 ORDER BY lower(s.name COLLATE \"C\"), s.id"
            ),
            &[],
        )
        .await?
        .iter()
        .map(subscription_row)
        .collect()
}

async fn get(client: &impl GenericClient, id: i64) -> StoreResult<Option<Subscription>> {
    client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM subscriptions s WHERE s.id = $1"),
            &[&id],
        )
        .await?
        .map(|row| subscription_row(&row))
        .transpose()
}

/// Locks subscription `id` for the rest of the transaction, so that nobody
/// assigns a person to it (the foreign key's check waits for the lock)
/// between reading its users and changing it; not found if it is gone.
async fn lock(client: &impl GenericClient, id: i64) -> StoreResult<()> {
    let found = client
        .query_opt(
            "SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    if found.is_none() {
        return Err(not_found(id));
    }
    Ok(())
}

/// A unique index refusing `name` is a conflict; other errors stay as they are.
fn name_conflict(error: tokio_postgres::Error, name: &str) -> DbError {
    let error = PgError::from(error);
    if error.is_unique_violation() {
        DbError::Conflict(format!("a subscription named {name:?} already exists"))
    } else {
        error.into()
    }
}

async fn set_name(client: &impl GenericClient, id: i64, name: &str, now: i64) -> StoreResult<()> {
    let changed = client
        .execute(
            "UPDATE subscriptions SET name = $2, updated_at = $3 WHERE id = $1",
            &[&id, &name, &now],
        )
        .await
        .map_err(|e| name_conflict(e, name))?;
    if changed == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Replaces the credential and moves its version on by one.
async fn rotate(
    client: &impl GenericClient,
    id: i64,
    credential: &NewCredential,
    now: i64,
) -> StoreResult<()> {
    let changed = client
        .execute(
            "UPDATE subscriptions SET kind = $2, credential = $3, credential_hint = $4,
                 credential_version = credential_version + 1, updated_at = $5,
                 credential_set_at = $5
             WHERE id = $1",
            &[
                &id,
                &enum_to_text(&credential.kind)?,
                &credential.sealed,
                &credential.hint,
                &now,
            ],
        )
        .await?;
    if changed == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// The ids of the users assigned to subscription `id`.
async fn user_ids(client: &impl GenericClient, id: i64) -> StoreResult<Vec<i64>> {
    client
        .query(
            "SELECT id FROM users WHERE subscription_id = $1 ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|row| column(row, 0))
        .collect()
}

/// Stamps users `$1` (an array) with policy version `$2`.
const RESTAMP: &str = concat!(
    "UPDATE users SET policy_version = $2 WHERE id = ANY($1) RETURNING ",
    user_columns!()
);

/// Gives every user of subscription `id` a new policy version; their rows.
async fn restamp_users(client: &impl GenericClient, id: i64) -> StoreResult<Vec<Person>> {
    let ids = user_ids(client, id).await?;
    restamp(client, &ids).await
}

/// Gives users `ids` one new policy version; their rows (with their
/// rules), by id.
async fn restamp(client: &impl GenericClient, ids: &[i64]) -> StoreResult<Vec<Person>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let version = policy_version(next_policy_version(client).await?)?;
    let mut users = client
        .query(RESTAMP, &[&ids, &version])
        .await?
        .iter()
        .map(user_row)
        .collect::<StoreResult<Vec<_>>>()?;
    users.sort_by_key(|user| user.id);
    let limits = client
        .query(
            "SELECT user_id, id, rule FROM limits WHERE user_id = ANY($1)
             ORDER BY user_id, position, id",
            &[&ids],
        )
        .await?;
    for row in &limits {
        let (user_id, id): (i64, i64) = (column(row, 0)?, column(row, 1)?);
        let rule = rule(id, column(row, 2)?)?;
        if let Ok(index) = users.binary_search_by_key(&user_id, |user| user.id) {
            users[index].rules.push(rule);
        }
    }
    Ok(users)
}

impl PgDb {
    pub async fn subscriptions(&self) -> StoreResult<Vec<Subscription>> {
        let client = self.connection().await?;
        list(&**client).await
    }

    pub async fn subscription(&self, id: i64) -> StoreResult<Option<Subscription>> {
        let client = self.connection().await?;
        get(&**client, id).await
    }

    pub async fn create_subscription(
        &self,
        name: String,
        credential: NewCredential,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Subscription> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .query_one(
                "INSERT INTO subscriptions (name, kind, credential, credential_hint,
                     credential_version, created_at, updated_at, credential_set_at)
                 VALUES ($1, $2, $3, $4, 1, $5, $5, $5)
                 RETURNING id",
                &[
                    &name,
                    &enum_to_text(&credential.kind)?,
                    &credential.sealed,
                    &credential.hint,
                    &at,
                ],
            )
            .await
            .map_err(|e| name_conflict(e, &name))?;
        let id = column(&inserted, 0)?;
        let row = get(&*tx, id).await?.ok_or_else(|| not_found(id))?;
        super::insert_audit(&*tx, &describing(audit, &row)).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn update_subscription(
        &self,
        id: i64,
        rename: Option<(String, AuditEntry)>,
        rotation: Option<(NewCredential, AuditEntry)>,
        at: i64,
    ) -> StoreResult<(Subscription, Vec<Person>)> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        if let Some((name, audit)) = &rename {
            set_name(&*tx, id, name, at).await?;
            super::insert_audit(&*tx, audit).await?;
        }
        let mut affected = Vec::new();
        if let Some((credential, _)) = &rotation {
            rotate(&*tx, id, credential, at).await?;
            affected = restamp_users(&*tx, id).await?;
        }
        let row = get(&*tx, id).await?.ok_or_else(|| not_found(id))?;
        if let Some((_, audit)) = rotation {
            super::insert_audit(&*tx, &describing(audit, &row)).await?;
        }
        tx.commit().await?;
        Ok((row, affected))
    }

    pub async fn delete_subscription(
        &self,
        id: i64,
        audit: AuditEntry,
    ) -> StoreResult<(Subscription, Vec<Person>)> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        lock(&*tx, id).await?;
        let row = get(&*tx, id).await?.ok_or_else(|| not_found(id))?;
        let ids = user_ids(&*tx, id).await?;
        tx.execute("DELETE FROM subscriptions WHERE id = $1", &[&id])
            .await?;
        let affected = restamp(&*tx, &ids).await?;
        super::insert_audit(&*tx, &describing(audit, &row)).await?;
        tx.commit().await?;
        Ok((row, affected))
    }

    pub async fn sealed_credential(
        &self,
        subscription_id: i64,
    ) -> StoreResult<Option<SealedCredential>> {
        let client = self.connection().await?;
        client
            .query_opt(
                "SELECT kind, credential_version, credential FROM subscriptions WHERE id = $1",
                &[&subscription_id],
            )
            .await?
            .map(|row| {
                Ok(SealedCredential {
                    kind: enum_from_text(column(&row, 0)?)?,
                    version: count(&row, 1)?,
                    sealed: column(&row, 2)?,
                })
            })
            .transpose()
    }
}
