//! Usage events: idempotent batch inserts, the start-up load of the usage
//! index, and the queries behind the admin's usage table and event feed.

use ccgate_quota::{ModelFamily, Totals};
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbResult, corrupt, enum_from_text};
use crate::model::{Event, EventType};

/// Inserts the rows in the caller's transaction, skipping ids this device
/// already sent. Returns, per row, whether it was new.
pub fn insert_new(conn: &Connection, rows: &[Event]) -> DbResult<Vec<bool>> {
    rows.iter().map(|row| insert_row(conn, row)).collect()
}

/// Inserts one row unless its device already sent its id; true when new.
/// Any other constraint the row breaks is an error (never a silent skip).
pub fn insert_row(conn: &Connection, row: &Event) -> DbResult<bool> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO events (id, user_id, device_id, at, received_at, type, model, family,
             prompts, credits, input_tokens, output_tokens, cache_creation_input_tokens,
             cache_read_input_tokens, kind, turn_key, session_id, detail, count_reason, estimated,
             credential)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21)
         ON CONFLICT (device_id, id) DO NOTHING",
    )?;
    let detail = row
        .detail
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(corrupt)?;
    let t = &row.totals;
    // Counts are bounded on the way in (ccgate_quota::limits); a count that
    // does not fit an SQLite integer is refused rather than stored negative.
    let count = |n: u64| i64::try_from(n).map_err(|_| corrupt(format!("count {n} is too large")));
    let changed = statement.execute(params![
        row.id,
        row.user_id,
        row.device_id,
        row.at.as_millisecond(),
        row.received_at.as_millisecond(),
        row.event_type.as_str(),
        row.model,
        row.family.map(ModelFamily::as_str),
        count(t.prompts)?,
        count(t.credits)?,
        count(t.input_tokens)?,
        count(t.output_tokens)?,
        count(t.cache_creation_input_tokens)?,
        count(t.cache_read_input_tokens)?,
        row.kind,
        row.turn_key,
        row.session_id,
        detail,
        row.count_reason,
        row.estimated,
        row.credential,
    ])?;
    Ok(changed == 1)
}

fn totals_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Totals> {
    let n = |i: usize| row.get::<_, i64>(first + i).map(|v| v.max(0) as u64);
    Ok(Totals {
        prompts: n(0)?,
        credits: n(1)?,
        input_tokens: n(2)?,
        output_tokens: n(3)?,
        cache_creation_input_tokens: n(4)?,
        cache_read_input_tokens: n(5)?,
    })
}

const COUNTS: &str = "prompts, credits, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens";
const HAS_USAGE: &str = "(prompts > 0 OR credits > 0 OR input_tokens > 0 OR output_tokens > 0 \
     OR cache_creation_input_tokens > 0 OR cache_read_input_tokens > 0)";

/// Feeds every event with usage at or after `since` to `add`, oldest first.
pub fn for_each_usage_since(
    conn: &Connection,
    since: i64,
    mut add: impl FnMut(i64, i64, ModelFamily, Totals),
) -> DbResult<u64> {
    let mut statement = conn.prepare(&format!(
        "SELECT user_id, at, family, {COUNTS} FROM events
         WHERE at >= ?1 AND family IS NOT NULL AND {HAS_USAGE} ORDER BY at"
    ))?;
    let mut rows = statement.query([since])?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        let family: String = row.get(2)?;
        let family: ModelFamily = family.parse().map_err(corrupt)?;
        add(row.get(0)?, row.get(1)?, family, totals_at(row, 3)?);
        count += 1;
    }
    Ok(count)
}

/// Usage added up in 15-minute buckets (every time zone's offset is a whole
/// number of quarter hours, so buckets fall inside one local day).
pub const BUCKET_MS: i64 = 15 * 60 * 1000;

pub struct UsageBucket {
    pub start: i64,
    pub user_id: i64,
    pub family: ModelFamily,
    pub totals: Totals,
}

/// The buckets query. With a user it must say `user_id = ?3` plainly:
/// `(?3 IS NULL OR user_id = ?3)` keeps SQLite on the `at` index, reading
/// every user's events of the period (the dashboard's user page waited
/// ~100 ms on that with 200,000 events).
fn usage_buckets_sql(by_user: bool) -> String {
    let who = if by_user {
        "user_id = ?3"
    } else {
        "?3 IS NULL"
    };
    format!(
        "SELECT (at / {BUCKET_MS}) * {BUCKET_MS} AS bucket, user_id, family,
                SUM(prompts), SUM(credits), SUM(input_tokens), SUM(output_tokens),
                SUM(cache_creation_input_tokens), SUM(cache_read_input_tokens)
         FROM events
         WHERE {who} AND at >= ?1 AND at < ?2
           AND family IS NOT NULL AND {HAS_USAGE}
         GROUP BY bucket, user_id, family ORDER BY bucket"
    )
}

pub fn usage_buckets(
    conn: &Connection,
    user_id: Option<i64>,
    from: i64,
    until: i64,
) -> DbResult<Vec<UsageBucket>> {
    let mut statement = conn.prepare_cached(&usage_buckets_sql(user_id.is_some()))?;
    let rows = statement.query_map(params![from, until, user_id], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            totals_at(row, 3)?,
        ))
    })?;
    rows.map(|row| {
        let (start, user_id, family, totals) = row?;
        Ok(UsageBucket {
            start,
            user_id,
            family: family.parse().map_err(corrupt)?,
            totals,
        })
    })
    .collect()
}

/// A stored event with its position for paging.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub row: Event,
    pub seq: i64,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub user_id: Option<i64>,
    pub event_type: Option<EventType>,
    /// Only events before this `(at, seq)` position (the paging cursor).
    pub before: Option<(i64, i64)>,
    pub limit: u32,
}

/// Newest first. Only the filters given appear in the query, so SQLite can
/// use the index that fits them (`(?1 IS NULL OR …)` would defeat it).
pub fn page(conn: &Connection, filter: &EventFilter) -> DbResult<Vec<StoredEvent>> {
    let (before_at, before_seq) = filter.before.unwrap_or((i64::MAX, i64::MAX));
    let mut statement = conn.prepare_cached(&page_sql(filter))?;
    let mut named: Vec<(&str, &dyn rusqlite::ToSql)> = vec![
        (":before_at", &before_at),
        (":before_seq", &before_seq),
        (":limit", &filter.limit),
    ];
    if let Some(user_id) = &filter.user_id {
        named.push((":user_id", user_id));
    }
    let type_name = filter.event_type.map(EventType::as_str);
    if let Some(type_name) = &type_name {
        named.push((":type", type_name));
    }
    let rows = statement.query_map(named.as_slice(), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            Event {
                id: row.get(1)?,
                user_id: row.get(2)?,
                device_id: row.get(3)?,
                at: super::instant_column(row, 4)?,
                received_at: super::instant_column(row, 5)?,
                event_type: EventType::Request,
                model: row.get(7)?,
                family: None,
                totals: totals_at(row, 9)?,
                kind: row.get(15)?,
                turn_key: row.get(16)?,
                session_id: row.get(17)?,
                detail: None,
                count_reason: row.get(19)?,
                estimated: row.get(20)?,
                credential: row.get(21)?,
            },
            row.get::<_, Option<String>>(8)?,
            row.get::<_, Option<String>>(18)?,
            row.get::<_, String>(6)?,
        ))
    })?;
    rows.map(|row| {
        let (seq, mut event, family, detail, event_type) = row?;
        event.event_type = enum_from_text(&event_type)?;
        event.family = family.map(|f| f.parse()).transpose().map_err(corrupt)?;
        event.detail = detail
            .map(|d| serde_json::from_str(&d))
            .transpose()
            .map_err(corrupt)?;
        Ok(StoredEvent { row: event, seq })
    })
    .collect()
}

fn page_sql(filter: &EventFilter) -> String {
    let mut conditions = vec!["(at, rowid) < (:before_at, :before_seq)"];
    if filter.user_id.is_some() {
        conditions.push("user_id = :user_id");
    }
    if filter.event_type.is_some() {
        conditions.push("type = :type");
    }
    format!(
        "SELECT rowid, id, user_id, device_id, at, received_at, type, model, family, {COUNTS},
                kind, turn_key, session_id, detail, count_reason, estimated, credential
         FROM events
         WHERE {}
         ORDER BY at DESC, rowid DESC LIMIT :limit",
        conditions.join(" AND ")
    )
}

/// When the user last did anything that counts.
pub fn last_active(conn: &Connection, user_id: i64) -> DbResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT MAX(at) FROM events WHERE user_id = ?1",
            [user_id],
            |row| row.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten())
}

pub fn count(conn: &Connection) -> DbResult<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = statement
            .query_map(params![0, 1, 1], |row| row.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn one_users_usage_is_read_through_that_users_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::Db::open(&dir.path().join("ccgate.db")).unwrap();
        let (one, all) = db
            .read_blocking(|conn| {
                Ok((
                    plan(conn, &usage_buckets_sql(true)),
                    plan(conn, &usage_buckets_sql(false)),
                ))
            })
            .unwrap();
        assert!(one.contains("events_user_at (user_id=?"), "{one}");
        assert!(all.contains("events_at (at>? AND at<?)"), "{all}");
    }

    #[test]
    fn the_event_log_uses_the_index_that_fits_its_filters() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::Db::open(&dir.path().join("ccgate.db")).unwrap();
        let filter = |user_id: Option<i64>, event_type: Option<EventType>| EventFilter {
            user_id,
            event_type,
            before: None,
            limit: 50,
        };
        let cases = [
            (filter(None, None), "events_at"),
            (filter(Some(1), None), "events_user_at"),
            (filter(None, Some(EventType::Tamper)), "events_type_at"),
            (
                filter(Some(1), Some(EventType::Tamper)),
                "events_user_type_at",
            ),
        ];
        for (filter, index) in cases {
            let sql = page_sql(&filter);
            let plan = db
                .read_blocking(|conn| {
                    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let mut plan = Vec::new();
                    let mut rows = statement.raw_query();
                    while let Some(row) = rows.next()? {
                        plan.push(row.get::<_, String>(3)?);
                    }
                    Ok(plan.join("; "))
                })
                .unwrap();
            assert!(plan.contains(&format!("INDEX {index} ")), "{sql}\n{plan}");
            assert!(!plan.contains("SCAN events"), "{plan}");
        }
    }
}
