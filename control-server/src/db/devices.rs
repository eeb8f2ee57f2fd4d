//! Devices and the install codes that create them.

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, DbResult, corrupt, non_empty};
use crate::model::{CodeKind, Device, DeviceDetails, DeviceKind};

const COLUMNS: &str = "id, user_id, kind, token_hash, pending_token_hash, hostname, os, arch, \
     os_user, os_version, claude_version, agent_version, created_at, last_seen_at, agent_build";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Device, String)> {
    Ok((
        Device {
            id: row.get(0)?,
            user_id: row.get(1)?,
            kind: DeviceKind::Proxy,
            token_hash: row.get(3)?,
            pending_token_hash: row.get(4)?,
            pending_token_sealed: None,
            details: DeviceDetails {
                hostname: row.get(5)?,
                os: row.get(6)?,
                arch: row.get(7)?,
                os_user: row.get(8)?,
                os_version: row.get(9)?,
                claude_version: row.get(10)?,
                agent_version: row.get(11)?,
                agent_build: row.get(14)?,
            },
            created_at: super::instant_column(row, 12)?,
            last_seen_at: super::instant_column_opt(row, 13)?,
        },
        row.get(2)?,
    ))
}

fn query(conn: &Connection, filter: &str, args: impl rusqlite::Params) -> DbResult<Vec<Device>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM devices {filter} ORDER BY id"
    ))?;
    let rows = statement.query_map(args, from_row)?;
    rows.map(|row| {
        let (mut device, kind) = row?;
        device.kind = kind.parse().map_err(corrupt)?;
        Ok(device)
    })
    .collect()
}

/// Every device that was not revoked.
pub fn list_all(conn: &Connection) -> DbResult<Vec<Device>> {
    query(conn, "WHERE revoked_at IS NULL", [])
}

pub fn list_for_user(conn: &Connection, user_id: i64) -> DbResult<Vec<Device>> {
    query(conn, "WHERE user_id = ?1 AND revoked_at IS NULL", [user_id])
}

/// A device that was not revoked.
pub fn get(conn: &Connection, id: i64) -> DbResult<Option<Device>> {
    Ok(query(conn, "WHERE id = ?1 AND revoked_at IS NULL", [id])?.pop())
}

/// Revokes a device: its tokens are forgotten (no token hashes to
/// `revoked:<id>`), its row and events stay. The row as it was, if it was
/// a device that was not revoked yet.
pub fn revoke(conn: &Connection, id: i64, now: i64) -> DbResult<Option<Device>> {
    let Some(row) = get(conn, id)? else {
        return Ok(None);
    };
    conn.execute(
        "UPDATE devices SET revoked_at = ?2, token_hash = 'revoked:' || id,
             pending_token_hash = NULL
         WHERE id = ?1",
        params![id, now],
    )?;
    Ok(Some(row))
}

pub fn update_details(conn: &Connection, id: i64, details: &DeviceDetails) -> DbResult<()> {
    // Fields a client did not send keep their value.
    conn.execute(
        "UPDATE devices SET
            hostname = COALESCE(?2, hostname), os = COALESCE(?3, os), arch = COALESCE(?4, arch),
            os_user = COALESCE(?5, os_user), os_version = COALESCE(?6, os_version),
            claude_version = COALESCE(?7, claude_version), agent_version = COALESCE(?8, agent_version),
            agent_build = COALESCE(?9, agent_build)
         WHERE id = ?1",
        params![
            id,
            non_empty(&details.hostname),
            non_empty(&details.os),
            non_empty(&details.arch),
            non_empty(&details.os_user),
            non_empty(&details.os_version),
            non_empty(&details.claude_version),
            non_empty(&details.agent_version),
            non_empty(&details.agent_build),
        ],
    )?;
    Ok(())
}

pub fn set_pending_token(conn: &Connection, id: i64, pending_hash: Option<&str>) -> DbResult<()> {
    conn.execute(
        "UPDATE devices SET pending_token_hash = ?2 WHERE id = ?1",
        params![id, pending_hash],
    )?;
    Ok(())
}

/// The new token was used: it becomes the device's token, the old one is dropped.
pub fn promote_pending_token(conn: &Connection, id: i64, pending_hash: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE devices SET token_hash = pending_token_hash, pending_token_hash = NULL
         WHERE id = ?1 AND pending_token_hash = ?2",
        params![id, pending_hash],
    )?;
    Ok(())
}

pub fn record_last_seen(conn: &Connection, seen: &[(i64, i64)]) -> DbResult<()> {
    let mut statement = conn.prepare_cached(
        "UPDATE devices SET last_seen_at = MAX(COALESCE(last_seen_at, 0), ?2) WHERE id = ?1",
    )?;
    for (id, at) in seen {
        statement.execute(params![id, at])?;
    }
    Ok(())
}

pub fn delete(conn: &Connection, id: i64) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM devices WHERE id = ?1", [id])? > 0)
}

pub fn insert_install_code(
    conn: &Connection,
    user_id: i64,
    kind: CodeKind,
    code_hash: &str,
    created_at: i64,
    expires_at: i64,
) -> DbResult<()> {
    conn.execute(
        "INSERT INTO install_codes (code_hash, user_id, kind, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![code_hash, user_id, kind.as_str(), created_at, expires_at],
    )?;
    Ok(())
}

/// Why an install code cannot be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeProblem {
    Unknown,
    /// A code of the other kind (a setup code on the hook API, or the reverse).
    WrongKind,
    Used,
    Expired,
}

pub struct NewDevice<'a> {
    pub kind: DeviceKind,
    pub token_hash: &'a str,
    pub details: &'a DeviceDetails,
}

/// Redeems an install code and creates its device in the caller's
/// transaction: the code is marked used in the same transaction, so it
/// works exactly once.
pub fn redeem_install_code(
    conn: &Connection,
    code_hash: &str,
    now: i64,
    device: &NewDevice<'_>,
) -> DbResult<Result<Device, CodeProblem>> {
    let code = conn
        .query_row(
            "SELECT id, user_id, expires_at, used_at, kind FROM install_codes WHERE code_hash = ?1",
            [code_hash],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                    row.get::<_, String>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((code_id, user_id, expires_at, used_at, kind)) = code else {
        return Ok(Err(CodeProblem::Unknown));
    };
    if kind != CodeKind::for_device(device.kind).as_str() {
        return Ok(Err(CodeProblem::WrongKind));
    }
    if used_at.is_some() {
        return Ok(Err(CodeProblem::Used));
    }
    if expires_at <= now {
        return Ok(Err(CodeProblem::Expired));
    }
    let details = device.details;
    conn.execute(
        "INSERT INTO devices (user_id, kind, token_hash, hostname, os, arch, os_user, os_version,
                              claude_version, agent_version, created_at, last_seen_at, agent_build)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
        params![
            user_id,
            device.kind.as_str(),
            device.token_hash,
            non_empty(&details.hostname),
            non_empty(&details.os),
            non_empty(&details.arch),
            non_empty(&details.os_user),
            non_empty(&details.os_version),
            non_empty(&details.claude_version),
            non_empty(&details.agent_version),
            now,
            non_empty(&details.agent_build),
        ],
    )?;
    let device_id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE install_codes SET used_at = ?2, device_id = ?3 WHERE id = ?1",
        params![code_id, now, device_id],
    )?;
    let row = get(conn, device_id)?
        .ok_or_else(|| DbError::NotFound(format!("device {device_id} vanished")))?;
    Ok(Ok(row))
}
