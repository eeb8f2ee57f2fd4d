//! Alert channels (sealed settings), rules, each rule's state per subject,
//! fired alerts and delivery attempts.

use rusqlite::{Connection, OptionalExtension, params};

use super::{DbError, DbResult, corrupt, enum_column, instant_column, is_unique_violation};
use crate::alerts::condition::{AlertCondition, AlertRule, SubjectState};
use crate::model::{AlertChannel, AlertDelivery, RaisedAlert};

/// A channel's settings, sealed with the server key.
#[derive(Debug, Clone)]
pub struct SealedChannel {
    pub name: String,
    pub kind: String,
    pub target: String,
    pub sealed: Vec<u8>,
}

const CHANNEL_COLUMNS: &str = "id, name, kind, target, created_at, updated_at";

fn channel_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlertChannel> {
    Ok(AlertChannel {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: enum_column(row, 2)?,
        target: row.get(3)?,
        created_at: instant_column(row, 4)?,
        updated_at: instant_column(row, 5)?,
    })
}

fn name_taken(error: rusqlite::Error, name: &str) -> DbError {
    if is_unique_violation(&error) {
        DbError::Conflict(format!("a channel named {name:?} already exists"))
    } else {
        error.into()
    }
}

pub fn channels(conn: &Connection) -> DbResult<Vec<AlertChannel>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM alert_channels ORDER BY name"
    ))?;
    let rows = statement
        .query_map([], channel_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn channel(conn: &Connection, id: i64) -> DbResult<Option<(AlertChannel, Vec<u8>)>> {
    Ok(conn
        .query_row(
            &format!("SELECT {CHANNEL_COLUMNS}, config FROM alert_channels WHERE id = ?1"),
            [id],
            |row| Ok((channel_row(row)?, row.get::<_, Vec<u8>>(6)?)),
        )
        .optional()?)
}

pub fn insert_channel(conn: &Connection, channel: &SealedChannel, now: i64) -> DbResult<i64> {
    conn.execute(
        "INSERT INTO alert_channels (name, kind, config, target, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            channel.name,
            channel.kind,
            channel.sealed,
            channel.target,
            now
        ],
    )
    .map_err(|e| name_taken(e, &channel.name))?;
    Ok(conn.last_insert_rowid())
}

pub fn update_channel(
    conn: &Connection,
    id: i64,
    channel: &SealedChannel,
    now: i64,
) -> DbResult<()> {
    let changed = conn
        .execute(
            "UPDATE alert_channels SET name = ?2, kind = ?3, config = ?4, target = ?5,
                 updated_at = ?6 WHERE id = ?1",
            params![
                id,
                channel.name,
                channel.kind,
                channel.sealed,
                channel.target,
                now
            ],
        )
        .map_err(|e| name_taken(e, &channel.name))?;
    if changed == 0 {
        return Err(DbError::NotFound(format!("no channel with id {id}")));
    }
    Ok(())
}

pub fn delete_channel(conn: &Connection, id: i64) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM alert_channels WHERE id = ?1", [id])? > 0)
}

/// A rule row before its JSON columns are read.
struct StoredRule {
    id: i64,
    name: String,
    condition: String,
    channels: String,
    cooldown_secs: i64,
    enabled: bool,
    owner_user_id: Option<i64>,
}

impl StoredRule {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            name: row.get(1)?,
            condition: row.get(2)?,
            channels: row.get(3)?,
            cooldown_secs: row.get(4)?,
            enabled: row.get(5)?,
            owner_user_id: row.get(6)?,
        })
    }

    fn into_rule(self) -> DbResult<AlertRule> {
        let id = self.id;
        Ok(AlertRule {
            id,
            name: self.name,
            condition: serde_json::from_str(&self.condition)
                .map_err(|e| corrupt(format!("alert rule {id}: {e}")))?,
            channels: serde_json::from_str(&self.channels)
                .map_err(|e| corrupt(format!("alert rule {id} channels: {e}")))?,
            cooldown_secs: self.cooldown_secs.max(0) as u64,
            enabled: self.enabled,
            owner_user_id: self.owner_user_id,
        })
    }
}

pub fn rules(conn: &Connection) -> DbResult<Vec<AlertRule>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, name, condition, channels, cooldown_secs, enabled, owner_user_id
         FROM alert_rules ORDER BY id",
    )?;
    let rows = statement
        .query_map([], StoredRule::read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(StoredRule::into_rule).collect()
}

/// A rule's fields as written (the id is the database's).
#[derive(Debug, Clone)]
pub struct RuleFields {
    pub name: String,
    pub condition: AlertCondition,
    pub channels: Vec<i64>,
    pub cooldown_secs: u64,
    pub enabled: bool,
    pub owner_user_id: Option<i64>,
}

fn rule_texts(fields: &RuleFields) -> DbResult<(String, String, i64)> {
    Ok((
        serde_json::to_string(&fields.condition).map_err(corrupt)?,
        serde_json::to_string(&fields.channels).map_err(corrupt)?,
        i64::try_from(fields.cooldown_secs).map_err(corrupt)?,
    ))
}

pub fn insert_rule(conn: &Connection, fields: &RuleFields, now: i64) -> DbResult<i64> {
    let (condition, channels, cooldown) = rule_texts(fields)?;
    conn.execute(
        "INSERT INTO alert_rules (name, condition, channels, cooldown_secs, enabled,
             owner_user_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            fields.name,
            condition,
            channels,
            cooldown,
            fields.enabled,
            fields.owner_user_id,
            now
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn update_rule(conn: &Connection, id: i64, fields: &RuleFields, now: i64) -> DbResult<()> {
    let (condition, channels, cooldown) = rule_texts(fields)?;
    let changed = conn.execute(
        "UPDATE alert_rules SET name = ?2, condition = ?3, channels = ?4, cooldown_secs = ?5,
             enabled = ?6, owner_user_id = ?7, updated_at = ?8 WHERE id = ?1",
        params![
            id,
            fields.name,
            condition,
            channels,
            cooldown,
            fields.enabled,
            fields.owner_user_id,
            now
        ],
    )?;
    if changed == 0 {
        return Err(DbError::NotFound(format!("no alert rule with id {id}")));
    }
    // A changed rule starts afresh for every subject.
    conn.execute("DELETE FROM alert_state WHERE rule_id = ?1", [id])?;
    Ok(())
}

pub fn delete_rule(conn: &Connection, id: i64) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM alert_rules WHERE id = ?1", [id])? > 0)
}

pub fn states(conn: &Connection) -> DbResult<Vec<(i64, String, SubjectState)>> {
    let mut statement = conn
        // `memo` is TEXT: SQLite keeps the number written there as text.
        .prepare_cached(
            "SELECT rule_id, subject, armed, last_fired_at, CAST(memo AS INTEGER) FROM alert_state",
        )?;
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                SubjectState {
                    armed: row.get(2)?,
                    last_fired_at: row.get(3)?,
                    hit_window_resets_at: row.get(4)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn save_state(
    conn: &Connection,
    rule_id: i64,
    subject: &str,
    state: &SubjectState,
) -> DbResult<()> {
    conn.prepare_cached(
        "INSERT INTO alert_state (rule_id, subject, armed, last_fired_at, memo)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (rule_id, subject) DO UPDATE SET armed = excluded.armed,
             last_fired_at = excluded.last_fired_at, memo = excluded.memo",
    )?
    .execute(params![
        rule_id,
        subject,
        state.armed,
        state.last_fired_at,
        state.hit_window_resets_at
    ])?;
    Ok(())
}

/// A row of `id, rule_id, subject, at, severity, title, message` from
/// `alert_events`.
fn raised_alert(row: &rusqlite::Row<'_>) -> rusqlite::Result<RaisedAlert> {
    Ok(RaisedAlert {
        id: row.get(0)?,
        rule_id: row.get(1)?,
        subject: row.get(2)?,
        at: instant_column(row, 3)?,
        severity: enum_column(row, 4)?,
        title: row.get(5)?,
        message: row.get(6)?,
    })
}

pub fn insert_event(conn: &Connection, event: &RaisedAlert) -> DbResult<i64> {
    conn.execute(
        "INSERT INTO alert_events (rule_id, subject, at, severity, title, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            event.rule_id,
            event.subject,
            event.at.as_millisecond(),
            event.severity.as_str(),
            event.title,
            event.message
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub fn recent_events(conn: &Connection, limit: u32) -> DbResult<Vec<RaisedAlert>> {
    newest(
        conn,
        "SELECT id, rule_id, subject, at, severity, title, message FROM alert_events
         ORDER BY at DESC, id DESC LIMIT ?1",
        limit,
        raised_alert,
    )
}

/// The first `limit` rows of `sql` (which takes the limit as `?1`).
fn newest<T>(
    conn: &Connection,
    sql: &str,
    limit: u32,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> DbResult<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement
        .query_map([limit], read)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn insert_delivery(conn: &Connection, delivery: &AlertDelivery) -> DbResult<()> {
    conn.execute(
        "INSERT INTO alert_deliveries (event_id, channel_id, at, attempt, ok, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            delivery.event_id,
            delivery.channel_id,
            delivery.at.as_millisecond(),
            delivery.attempt,
            delivery.ok,
            delivery.detail
        ],
    )?;
    Ok(())
}

pub fn recent_deliveries(conn: &Connection, limit: u32) -> DbResult<Vec<AlertDelivery>> {
    newest(
        conn,
        "SELECT id, event_id, channel_id, at, attempt, ok, detail FROM alert_deliveries
         ORDER BY at DESC, id DESC LIMIT ?1",
        limit,
        |row| {
            Ok(AlertDelivery {
                id: row.get(0)?,
                event_id: row.get(1)?,
                channel_id: row.get(2)?,
                at: instant_column(row, 3)?,
                attempt: row.get(4)?,
                ok: row.get(5)?,
                detail: row.get(6)?,
            })
        },
    )
}

/// The newest alerts of the rules a person owns (their own thresholds).
pub fn events_of_owner(conn: &Connection, user_id: i64, limit: u32) -> DbResult<Vec<RaisedAlert>> {
    let mut statement = conn.prepare_cached(
        "SELECT e.id, e.rule_id, e.subject, e.at, e.severity, e.title, e.message
         FROM alert_events e JOIN alert_rules r ON r.id = e.rule_id
         WHERE r.owner_user_id = ?1 ORDER BY e.at DESC, e.id DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(params![user_id, limit], raised_alert)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Replaces a person's own limit alerts with one rule per threshold. A
/// threshold they keep keeps its rule (and so its alert history and state).
pub fn replace_owned_limit_rules(
    conn: &Connection,
    user_id: i64,
    thresholds: &[f64],
    now: i64,
) -> DbResult<()> {
    let mut kept = Vec::new();
    for rule in rules(conn)? {
        let AlertCondition::LimitShare { threshold, .. } = rule.condition else {
            continue;
        };
        if rule.owner_user_id != Some(user_id) {
            continue;
        }
        if thresholds.contains(&threshold) && !kept.contains(&threshold) {
            kept.push(threshold);
        } else {
            delete_rule(conn, rule.id)?;
        }
    }
    for threshold in thresholds.iter().filter(|t| !kept.contains(t)) {
        insert_rule(
            conn,
            &RuleFields {
                name: format!("My usage at {threshold} %"),
                condition: AlertCondition::LimitShare {
                    threshold: *threshold,
                    user_id: Some(user_id),
                },
                channels: Vec::new(),
                cooldown_secs: crate::alerts::condition::DEFAULT_COOLDOWN_SECS,
                enabled: true,
                owner_user_id: Some(user_id),
            },
            now,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `memo` is a TEXT column: SQLite stores the number as text, and the
    /// states must still read back (they did not: the engine forgot every
    /// state on a restart once a rule waited for a window's reset).
    #[test]
    fn a_state_waiting_for_a_reset_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::Db::open(&dir.path().join("ccgate.db")).unwrap();
        let rule_id: i64 = db
            .read_blocking(|conn| {
                Ok(conn.query_row("SELECT MIN(id) FROM alert_rules", [], |row| row.get(0))?)
            })
            .unwrap();
        let state = SubjectState {
            armed: false,
            last_fired_at: Some(1_700_000_000_000),
            hit_window_resets_at: Some(1_700_000_360_000),
        };
        db.write_blocking(|tx| save_state(tx, rule_id, "user:7", &state))
            .unwrap();
        let states = db.read_blocking(states).unwrap();
        assert_eq!(states, vec![(rule_id, "user:7".to_owned(), state)]);
    }
}
