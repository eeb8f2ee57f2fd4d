//! Single sign-on: identities (one per issuer and subject), their link to a
//! person, and the logins sent to the provider and not back yet.

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, DbResult, corrupt, is_unique_violation};
use crate::model::{Identity, Role};

/// What the provider said about an identity at a sign-in or re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

const COLUMNS: &str = "i.id, i.issuer, i.subject, i.email, i.email_verified, i.name, i.groups, \
     i.group_role, i.role_override, i.user_id, u.name, i.created_at, i.last_login_at";

fn parse_role(text: Option<String>) -> DbResult<Option<Role>> {
    text.map(|t| t.parse().map_err(corrupt)).transpose()
}

type RawRow = (
    Identity,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        Identity {
            id: row.get(0)?,
            issuer: row.get(1)?,
            subject: row.get(2)?,
            email: row.get(3)?,
            email_verified: row.get(4)?,
            name: row.get(5)?,
            groups: Vec::new(),
            group_role: None,
            role_override: None,
            person: None,
            created_at: super::instant_column(row, 11)?,
            last_login_at: super::instant_column(row, 12)?,
        },
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn finish(raw: RawRow) -> DbResult<Identity> {
    let (mut identity, groups, group_role, role_override, user_id, user_name) = raw;
    identity.groups = serde_json::from_str(&groups).map_err(corrupt)?;
    identity.group_role = parse_role(group_role)?;
    identity.role_override = parse_role(role_override)?;
    identity.person = user_id.zip(user_name);
    Ok(identity)
}

fn select(
    conn: &Connection,
    filter: &str,
    param: impl rusqlite::Params,
) -> DbResult<Vec<Identity>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM identities i LEFT JOIN users u ON u.id = i.user_id {filter}"
    ))?;
    let rows = statement.query_map(param, from_row)?;
    rows.map(|row| finish(row?)).collect()
}

pub fn list(conn: &Connection) -> DbResult<Vec<Identity>> {
    select(conn, "ORDER BY i.id", [])
}

pub fn get(conn: &Connection, id: i64) -> DbResult<Option<Identity>> {
    Ok(select(conn, "WHERE i.id = ?1", [id])?.pop())
}

/// The identity linked to a person.
pub fn of_user(conn: &Connection, user_id: i64) -> DbResult<Option<Identity>> {
    Ok(select(conn, "WHERE i.user_id = ?1", [user_id])?.pop())
}

/// Records a sign-in: the identity is created or its claims replaced,
/// with the role its groups give now.
pub fn record_sign_in(
    conn: &Connection,
    claims: &Claims,
    group_role: Option<Role>,
    now: i64,
) -> DbResult<Identity> {
    let groups = serde_json::to_string(&claims.groups).map_err(corrupt)?;
    let id: i64 = conn.query_row(
        "INSERT INTO identities (issuer, subject, email, email_verified, name, groups,
                                 group_role, created_at, last_login_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (issuer, subject) DO UPDATE SET
             email = excluded.email, email_verified = excluded.email_verified,
             name = excluded.name, groups = excluded.groups,
             group_role = excluded.group_role, last_login_at = excluded.last_login_at
         RETURNING id",
        params![
            claims.issuer,
            claims.subject,
            claims.email,
            claims.email_verified,
            claims.name,
            groups,
            group_role.map(Role::as_str),
            now
        ],
        |row| row.get(0),
    )?;
    get(conn, id)?.ok_or_else(|| corrupt("an identity vanished while it was written"))
}

/// Replaces the groups (and the role they give) after a re-check.
pub fn set_groups(
    conn: &Connection,
    id: i64,
    groups: &[String],
    group_role: Option<Role>,
) -> DbResult<()> {
    let groups = serde_json::to_string(groups).map_err(corrupt)?;
    conn.execute(
        "UPDATE identities SET groups = ?2, group_role = ?3 WHERE id = ?1",
        params![id, groups, group_role.map(Role::as_str)],
    )?;
    Ok(())
}

pub fn set_role_override(conn: &Connection, id: i64, role: Option<Role>) -> DbResult<()> {
    conn.execute(
        "UPDATE identities SET role_override = ?2 WHERE id = ?1",
        params![id, role.map(Role::as_str)],
    )?;
    Ok(())
}

/// Links an identity to a person (`None`: unlinks it). A person has at
/// most one identity: linking takes the person from any other.
pub fn link(conn: &Connection, id: i64, user_id: Option<i64>) -> DbResult<()> {
    if let Some(user_id) = user_id {
        conn.execute(
            "UPDATE identities SET user_id = NULL WHERE user_id = ?1 AND id <> ?2",
            params![user_id, id],
        )?;
    }
    conn.execute(
        "UPDATE identities SET user_id = ?2 WHERE id = ?1",
        params![id, user_id],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            DbError::Conflict("that person is linked to another identity".to_owned())
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// Deletes an identity; its sessions go with it.
pub fn delete(conn: &Connection, id: i64) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM identities WHERE id = ?1", [id])? > 0)
}

/// The person whose e-mail is `email` (case-insensitive) and who has no
/// identity yet.
pub fn unlinked_user_by_email(conn: &Connection, email: &str) -> DbResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT u.id FROM users u
             WHERE u.email = ?1 COLLATE NOCASE
               AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id)",
            [email],
            |row| row.get(0),
        )
        .optional()?)
}

/// The person with this e-mail (case-insensitive), if any.
pub fn user_with_email(conn: &Connection, email: &str) -> DbResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM users WHERE email = ?1 COLLATE NOCASE",
            [email],
            |row| row.get(0),
        )
        .optional()?)
}

pub fn user_email(conn: &Connection, user_id: i64) -> DbResult<Option<String>> {
    Ok(conn
        .query_row("SELECT email FROM users WHERE id = ?1", [user_id], |row| {
            row.get(0)
        })
        .optional()?
        .flatten())
}

pub fn set_user_email(conn: &Connection, user_id: i64, email: Option<&str>) -> DbResult<()> {
    conn.execute(
        "UPDATE users SET email = ?2 WHERE id = ?1",
        params![user_id, email],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            DbError::Conflict(format!(
                "another person has the e-mail {:?}",
                email.unwrap_or_default()
            ))
        } else {
            e.into()
        }
    })?;
    Ok(())
}

/// A login sent to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    pub state_hash: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: Option<String>,
    pub expires_at: i64,
}

/// Most logins under way at once; the oldest give way (a flood of started
/// logins cannot fill the disk).
const MAX_PENDING_LOGINS: i64 = 10_000;

pub fn insert_pending(conn: &Connection, login: &PendingLogin, now: i64) -> DbResult<()> {
    conn.execute("DELETE FROM oidc_logins WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "DELETE FROM oidc_logins WHERE state_hash IN (
             SELECT state_hash FROM oidc_logins ORDER BY expires_at DESC LIMIT -1 OFFSET ?1)",
        [MAX_PENDING_LOGINS - 1],
    )?;
    conn.execute(
        "INSERT INTO oidc_logins (state_hash, browser_hash, nonce, pkce_verifier, return_to, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            login.state_hash,
            login.browser_hash,
            login.nonce,
            login.pkce_verifier,
            login.return_to,
            login.expires_at
        ],
    )?;
    Ok(())
}

/// Takes the login a state belongs to: it can be taken once, and only
/// before it expires.
pub fn take_pending(
    conn: &Connection,
    state_hash: &str,
    now: i64,
) -> DbResult<Option<PendingLogin>> {
    let login = conn
        .query_row(
            "DELETE FROM oidc_logins WHERE state_hash = ?1
             RETURNING state_hash, browser_hash, nonce, pkce_verifier, return_to, expires_at",
            [state_hash],
            |row| {
                Ok(PendingLogin {
                    state_hash: row.get(0)?,
                    browser_hash: row.get(1)?,
                    nonce: row.get(2)?,
                    pkce_verifier: row.get(3)?,
                    return_to: row.get(4)?,
                    expires_at: row.get(5)?,
                })
            },
        )
        .optional()?;
    Ok(login.filter(|login| login.expires_at > now))
}
