//! Admin authentication: named accounts, login sessions and API tokens.
//! Secrets are stored as SHA-256 (tokens) or argon2id (passwords) only.

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, DbResult, corrupt, is_unique_violation};
use crate::model::{Account, ApiToken, Role};

fn account_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Account, String)> {
    Ok((
        Account {
            id: row.get(0)?,
            username: row.get(1)?,
            password_hash: row.get(2)?,
            role: Role::Admin,
            created_at: super::instant_column(row, 4)?,
        },
        row.get(3)?,
    ))
}

fn with_role<T>(
    rows: impl Iterator<Item = rusqlite::Result<(T, String)>>,
    set: impl Fn(&mut T, Role),
) -> DbResult<Vec<T>> {
    rows.map(|row| {
        let (mut item, role) = row?;
        set(&mut item, role.parse().map_err(corrupt)?);
        Ok(item)
    })
    .collect()
}

pub fn insert_account(
    conn: &Connection,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
) -> DbResult<Account> {
    conn.execute(
        "INSERT INTO accounts (username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![username, password_hash, role.as_str(), now],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            DbError::Conflict(format!("an account named {username:?} already exists"))
        } else {
            e.into()
        }
    })?;
    Ok(Account {
        id: conn.last_insert_rowid(),
        username: username.to_owned(),
        password_hash: password_hash.to_owned(),
        role,
        created_at: super::timestamp(now)?,
    })
}

const ACCOUNT_COLUMNS: &str = "id, username, password_hash, role, created_at";

pub fn account_by_username(conn: &Connection, username: &str) -> DbResult<Option<Account>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE username = ?1"
    ))?;
    let rows = statement.query_map([username], account_from_row)?;
    Ok(with_role(rows, |a, r| a.role = r)?.pop())
}

pub fn list_accounts(conn: &Connection) -> DbResult<Vec<Account>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY id"
    ))?;
    let rows = statement.query_map([], account_from_row)?;
    with_role(rows, |a, r| a.role = r)
}

/// Deletes an account (its sessions go with it) and revokes the API tokens
/// it made; `None` when there is no such account, else how many tokens.
pub fn delete_account(conn: &Connection, id: i64, now: i64) -> DbResult<Option<usize>> {
    if conn.execute("DELETE FROM accounts WHERE id = ?1", [id])? == 0 {
        return Ok(None);
    }
    let revoked = conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE account_id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(Some(revoked))
}

/// A login session: a named account's, an identity's (single sign-on) or,
/// with neither, the built-in admin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub account_id: Option<i64>,
    pub username: Option<String>,
    pub identity_id: Option<i64>,
    /// The identity's e-mail, else its subject.
    pub identity_name: Option<String>,
    pub role: Role,
    pub csrf_token: String,
    pub expires_at: i64,
}

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub account_id: Option<i64>,
    pub identity_id: Option<i64>,
    pub role: Role,
    pub csrf_token: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
    /// The provider's refresh token, sealed.
    pub refresh_token: Option<Vec<u8>>,
    pub recheck_at: Option<i64>,
}

pub fn insert_session(conn: &Connection, session: &NewSession<'_>) -> DbResult<()> {
    conn.execute(
        "INSERT INTO sessions (token_hash, account_id, identity_id, role, csrf_token, created_at,
                               expires_at, refresh_token, recheck_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            session.token_hash,
            session.account_id,
            session.identity_id,
            session.role.as_str(),
            session.csrf_token,
            session.created_at,
            session.expires_at,
            session.refresh_token,
            session.recheck_at
        ],
    )?;
    Ok(())
}

/// The session for a token hash, if it exists and has not expired at `now`.
pub fn live_session(conn: &Connection, token_hash: &str, now: i64) -> DbResult<Option<Session>> {
    let mut statement = conn.prepare_cached(
        "SELECT s.id, s.account_id, a.username, s.role, s.csrf_token, s.expires_at,
                s.identity_id, COALESCE(i.email, i.subject)
         FROM sessions s LEFT JOIN accounts a ON a.id = s.account_id
              LEFT JOIN identities i ON i.id = s.identity_id
         WHERE s.token_hash = ?1 AND s.expires_at > ?2",
    )?;
    let rows = statement.query_map(params![token_hash, now], |row| {
        Ok((
            Session {
                id: row.get(0)?,
                account_id: row.get(1)?,
                username: row.get(2)?,
                identity_id: row.get(6)?,
                identity_name: row.get(7)?,
                role: Role::Viewer,
                csrf_token: row.get(4)?,
                expires_at: row.get(5)?,
            },
            row.get::<_, String>(3)?,
        ))
    })?;
    Ok(with_role(rows, |s, r| s.role = r)?.pop())
}

/// An identity's session due for a check with the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRecheck {
    pub session_id: i64,
    pub identity_id: i64,
    pub refresh_token: Vec<u8>,
}

/// Up to `limit` sessions whose re-check is due at `now`, the most overdue first.
pub fn due_rechecks(conn: &Connection, now: i64, limit: u32) -> DbResult<Vec<DueRecheck>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, identity_id, refresh_token FROM sessions
         WHERE recheck_at IS NOT NULL AND recheck_at <= ?1 AND expires_at > ?1
               AND identity_id IS NOT NULL AND refresh_token IS NOT NULL
         ORDER BY recheck_at LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit], |row| {
        Ok(DueRecheck {
            session_id: row.get(0)?,
            identity_id: row.get(1)?,
            refresh_token: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// After a re-check: the (possibly new) refresh token and the next check.
pub fn set_recheck(
    conn: &Connection,
    session_id: i64,
    refresh_token: &[u8],
    recheck_at: i64,
) -> DbResult<()> {
    conn.execute(
        "UPDATE sessions SET refresh_token = ?2, recheck_at = ?3 WHERE id = ?1",
        params![session_id, refresh_token, recheck_at],
    )?;
    Ok(())
}

pub fn delete_session_by_id(conn: &Connection, id: i64) -> DbResult<()> {
    conn.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
    Ok(())
}

/// Gives every session of an identity its new role, or ends them (`None`).
pub fn set_identity_sessions_role(
    conn: &Connection,
    identity_id: i64,
    role: Option<Role>,
) -> DbResult<()> {
    match role {
        Some(role) => conn.execute(
            "UPDATE sessions SET role = ?2 WHERE identity_id = ?1",
            params![identity_id, role.as_str()],
        )?,
        None => conn.execute("DELETE FROM sessions WHERE identity_id = ?1", [identity_id])?,
    };
    Ok(())
}

pub fn delete_session(conn: &Connection, token_hash: &str) -> DbResult<()> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// Ends every session of the built-in admin but `keep` (after a password change).
pub fn delete_builtin_sessions_except(conn: &Connection, keep: Option<i64>) -> DbResult<()> {
    conn.execute(
        "DELETE FROM sessions WHERE account_id IS NULL AND identity_id IS NULL AND id IS NOT ?1",
        params![keep],
    )?;
    Ok(())
}

pub fn delete_expired_sessions(conn: &Connection, now: i64) -> DbResult<usize> {
    Ok(conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?)
}

const TOKEN_COLUMNS: &str =
    "id, name, role, created_by, created_at, last_used_at, revoked_at, account_id";

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(ApiToken, String)> {
    Ok((
        ApiToken {
            id: row.get(0)?,
            name: row.get(1)?,
            role: Role::Viewer,
            created_by: row.get(3)?,
            created_at: super::instant_column(row, 4)?,
            last_used_at: super::instant_column_opt(row, 5)?,
            revoked_at: super::instant_column_opt(row, 6)?,
            account_id: row.get(7)?,
        },
        row.get(2)?,
    ))
}

pub struct NewApiToken<'a> {
    pub name: &'a str,
    pub token_hash: &'a str,
    pub role: Role,
    pub created_by: &'a str,
    pub account_id: Option<i64>,
}

pub fn insert_api_token(conn: &Connection, new: &NewApiToken<'_>, now: i64) -> DbResult<ApiToken> {
    let NewApiToken {
        name,
        token_hash,
        role,
        created_by,
        account_id,
    } = *new;
    conn.execute(
        "INSERT INTO api_tokens (name, token_hash, role, created_by, created_at, account_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![name, token_hash, role.as_str(), created_by, now, account_id],
    )?;
    Ok(ApiToken {
        id: conn.last_insert_rowid(),
        name: name.to_owned(),
        role,
        created_by: Some(created_by.to_owned()),
        created_at: super::timestamp(now)?,
        last_used_at: None,
        revoked_at: None,
        account_id,
    })
}

pub fn list_api_tokens(conn: &Connection) -> DbResult<Vec<ApiToken>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY id"
    ))?;
    let rows = statement.query_map([], token_from_row)?;
    with_role(rows, |t, r| t.role = r)
}

/// The token for a hash, unless revoked.
pub fn active_api_token(conn: &Connection, token_hash: &str) -> DbResult<Option<ApiToken>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL"
    ))?;
    let rows = statement.query_map([token_hash], token_from_row)?;
    Ok(with_role(rows, |t, r| t.role = r)?.pop())
}

pub fn touch_api_token(conn: &Connection, id: i64, now: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

pub fn revoke_api_token(conn: &Connection, id: i64, now: i64) -> DbResult<bool> {
    let exists = conn
        .query_row("SELECT 1 FROM api_tokens WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some();
    conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(exists)
}
