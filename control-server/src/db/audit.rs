//! The audit log: admin actions, kills, registrations and tamper reports.

use rusqlite::{Connection, params};

use super::{DbResult, corrupt};
use crate::model::AuditEntry;

pub fn insert(conn: &Connection, entry: &AuditEntry) -> DbResult<()> {
    let detail = entry
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    conn.prepare_cached(
        "INSERT INTO audit_log (at, kind, actor, user_id, device_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        entry.at.as_millisecond(),
        entry.kind,
        entry.actor,
        entry.user_id,
        entry.device_id,
        detail
    ])?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub kind: Option<String>,
    pub user_id: Option<i64>,
    /// Only entries with a smaller id (the paging cursor).
    pub before: Option<i64>,
    pub limit: u32,
}

/// Newest first.
pub fn page(conn: &Connection, filter: &AuditFilter) -> DbResult<Vec<AuditEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, at, kind, actor, user_id, device_id, detail FROM audit_log
         WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR user_id = ?2) AND id < ?3
         ORDER BY id DESC LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![
            filter.kind,
            filter.user_id,
            filter.before.unwrap_or(i64::MAX),
            filter.limit
        ],
        |row| {
            Ok((
                AuditEntry {
                    id: row.get(0)?,
                    at: super::instant_column(row, 1)?,
                    kind: row.get(2)?,
                    actor: row.get(3)?,
                    user_id: row.get(4)?,
                    device_id: row.get(5)?,
                    detail: None,
                },
                row.get::<_, Option<String>>(6)?,
            ))
        },
    )?;
    rows.map(|row| {
        let (mut entry, detail) = row?;
        entry.detail = detail
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(corrupt)?;
        Ok(entry)
    })
    .collect()
}
