//! Subscriptions whose credential the server holds (team-credential mode).
//! The credential is stored sealed by the caller ([`crate::vault`]); this
//! module only moves the sealed bytes and never returns them with a row.

use ccgate_quota::CredentialKind;
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, DbResult, enum_from_text, enum_to_text, is_unique_violation};
use crate::model::{Subscription, SubscriptionOrigin};

/// A credential as stored: sealed, with what the policy says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCredential {
    pub kind: CredentialKind,
    pub version: u64,
    pub sealed: Vec<u8>,
}

/// A credential sealed for storage, with the hint shown in its place.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub kind: CredentialKind,
    pub sealed: Vec<u8>,
    pub hint: String,
}

const COLUMNS: &str = "s.id, s.name, s.kind, s.credential_hint, s.credential_version, \
     (SELECT COUNT(*) FROM users u WHERE COALESCE(u.subscription_id, u.seen_subscription_id) = s.id), \
     s.created_at, s.updated_at, s.origin, s.account_uuid, s.credential_set_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Subscription, String, String)> {
    Ok((
        Subscription {
            id: row.get(0)?,
            name: row.get(1)?,
            origin: SubscriptionOrigin::Enrolled,
            account_uuid: row.get(9)?,
            credential_set_at: super::instant_column_opt(row, 10)?,
            kind: CredentialKind::OauthToken,
            credential_hint: row.get(3)?,
            credential_version: row.get::<_, i64>(4)?.max(0) as u64,
            users: row.get::<_, i64>(5)?.max(0) as u64,
            created_at: super::instant_column(row, 6)?,
            updated_at: super::instant_column(row, 7)?,
        },
        row.get(2)?,
        row.get(8)?,
    ))
}

fn finish(
    (mut subscription, kind, origin): (Subscription, String, String),
) -> DbResult<Subscription> {
    subscription.kind = enum_from_text(&kind)?;
    subscription.origin = enum_from_text(&origin)?;
    Ok(subscription)
}

pub fn list(conn: &Connection) -> DbResult<Vec<Subscription>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM subscriptions s ORDER BY s.name, s.id"
    ))?;
    let rows = statement
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(finish).collect()
}

pub fn get(conn: &Connection, id: i64) -> DbResult<Option<Subscription>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM subscriptions s WHERE s.id = ?1"),
        [id],
        from_row,
    )
    .optional()?
    .map(finish)
    .transpose()
}

fn name_conflict(error: rusqlite::Error, name: &str) -> DbError {
    if is_unique_violation(&error) {
        DbError::Conflict(format!("a subscription named {name:?} already exists"))
    } else {
        error.into()
    }
}

fn not_found(id: i64) -> DbError {
    DbError::NotFound(format!("no subscription with id {id}"))
}

pub fn insert(
    conn: &Connection,
    name: &str,
    credential: &NewCredential,
    now: i64,
) -> DbResult<Subscription> {
    conn.execute(
        "INSERT INTO subscriptions (name, kind, credential, credential_hint, credential_version,
             created_at, updated_at, credential_set_at)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5, ?5)",
        params![
            name,
            enum_to_text(&credential.kind)?,
            credential.sealed,
            credential.hint,
            now
        ],
    )
    .map_err(|e| name_conflict(e, name))?;
    let id = conn.last_insert_rowid();
    get(conn, id)?.ok_or_else(|| not_found(id))
}

pub fn rename(conn: &Connection, id: i64, name: &str, now: i64) -> DbResult<()> {
    let changed = conn
        .execute(
            "UPDATE subscriptions SET name = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, name, now],
        )
        .map_err(|e| name_conflict(e, name))?;
    if changed == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Replaces the credential and moves its version on by one.
pub fn rotate(conn: &Connection, id: i64, credential: &NewCredential, now: i64) -> DbResult<()> {
    let changed = conn.execute(
        "UPDATE subscriptions SET kind = ?2, credential = ?3, credential_hint = ?4,
             credential_version = credential_version + 1, updated_at = ?5,
             credential_set_at = ?5
         WHERE id = ?1",
        params![
            id,
            enum_to_text(&credential.kind)?,
            credential.sealed,
            credential.hint,
            now
        ],
    )?;
    if changed == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// Deletes it; its users go back to their own logins (`ON DELETE SET NULL`).
pub fn delete(conn: &Connection, id: i64) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM subscriptions WHERE id = ?1", [id])? > 0)
}

/// The ids of the users assigned to it.
pub fn user_ids(conn: &Connection, id: i64) -> DbResult<Vec<i64>> {
    let mut statement =
        conn.prepare_cached("SELECT id FROM users WHERE subscription_id = ?1 ORDER BY id")?;
    let ids = statement
        .query_map([id], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

pub fn sealed_credential(conn: &Connection, id: i64) -> DbResult<Option<SealedCredential>> {
    let row = conn
        .query_row(
            "SELECT kind, credential_version, credential FROM subscriptions WHERE id = ?1",
            [id],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            },
        )
        .optional()?;
    row.map(|(kind, version, sealed)| {
        Ok(SealedCredential {
            kind: enum_from_text(&kind)?,
            version: version.max(0) as u64,
            sealed,
        })
    })
    .transpose()
}

/// Every sealed credential by subscription name, to check at start that
/// the server key opens them.
pub fn all_sealed(conn: &Connection) -> DbResult<Vec<(String, Vec<u8>)>> {
    let mut statement = conn.prepare("SELECT name, credential FROM subscriptions ORDER BY id")?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
