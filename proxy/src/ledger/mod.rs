//! The durable ledger (`state.db`): every event is on disk before it counts
//! as sent, and stays until the server acknowledges it. It also remembers
//! counted turns and the tool calls their replies asked for ([`memory`]: so
//! a restart mid-turn neither counts a prompt twice nor lets a rewrite pass)
//! and the last policy and usage snapshot (so the proxy decides offline
//! after a restart).

mod memory;

pub use memory::TurnMemory;

use std::path::Path;
use std::sync::Mutex;

use ccgate_quota::wire::AgentEvent;
use ccgate_quota::{ModelFamily, Totals};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    #[error("ledger database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("ledger record {seq} is damaged: {message}")]
    Damaged { seq: i64, message: String },
}

/// An event's contribution to usage, kept next to it for offline decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metered {
    pub family: ModelFamily,
    pub totals: Totals,
}

/// A stored event with usage, as loaded at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUsage {
    pub seq: i64,
    pub at: Timestamp,
    pub metered: Metered,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    at_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    family TEXT,
    prompts INTEGER NOT NULL DEFAULT 0,
    credits INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    acked_at_ms INTEGER
);
DROP TABLE IF EXISTS counted_turns;
CREATE TABLE IF NOT EXISTS turns (
    base TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    family TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    input TEXT,
    session TEXT,
    prompt_id TEXT
);
CREATE TABLE IF NOT EXISTS tool_uses (
    id TEXT PRIMARY KEY,
    turn_base TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tool_uses_at ON tool_uses (at_ms);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Events the server refused for good stay on disk, out of the way of the
/// rest (added to ledgers made before quarantine existed).
const QUARANTINE: &str = "
ALTER TABLE events ADD COLUMN quarantined_at_ms INTEGER;
ALTER TABLE events ADD COLUMN quarantine_reason TEXT;
";

const PENDING_INDEX: &str = "
DROP INDEX IF EXISTS events_unacked;
CREATE INDEX IF NOT EXISTS events_pending ON events (seq)
    WHERE acked_at_ms IS NULL AND quarantined_at_ms IS NULL;
";

/// Events to deliver, and records set aside because they did not read.
#[derive(Debug, Default)]
pub struct Pending {
    pub events: Vec<(i64, AgentEvent)>,
    pub damaged: Vec<(i64, String)>,
}

/// An event held back because the server would not take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub seq: i64,
    pub id: String,
    pub at: Timestamp,
    pub reason: String,
}

pub struct Ledger {
    conn: Mutex<Connection>,
}

impl Ledger {
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let conn = Connection::open(path)?;
        // FULL: an acknowledged write survives a power cut, not just a crash.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )?;
        conn.execute_batch(SCHEMA)?;
        let has_quarantine: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('events') WHERE name = 'quarantined_at_ms'")?
            .exists([])?;
        if !has_quarantine {
            conn.execute_batch(QUARANTINE)?;
        }
        conn.execute_batch(PENDING_INDEX)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("ledger lock")
    }

    /// Stores an event, and what it teaches about its turn, in one
    /// transaction; returns its sequence number.
    pub fn append(
        &self,
        event: &AgentEvent,
        metered: Option<Metered>,
        memory: &TurnMemory<'_>,
    ) -> Result<i64, LedgerError> {
        let body = serde_json::to_string(event).expect("events serialize");
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (family, totals) = match metered {
            Some(m) => (Some(m.family.as_str()), m.totals),
            None => (None, Totals::default()),
        };
        tx.execute(
            "INSERT INTO events (id, at_ms, body, family, prompts, credits, input_tokens,
                 output_tokens, cache_creation_input_tokens, cache_read_input_tokens)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                event.id.to_string(),
                event.at.as_millisecond(),
                body,
                family,
                totals.prompts as i64,
                totals.credits as i64,
                totals.input_tokens as i64,
                totals.output_tokens as i64,
                totals.cache_creation_input_tokens as i64,
                totals.cache_read_input_tokens as i64,
            ],
        )?;
        let seq = tx.last_insert_rowid();
        memory.write(&tx, event.at)?;
        tx.commit()?;
        Ok(seq)
    }

    /// The oldest events still to deliver, in order. A record that no longer
    /// reads (damaged on disk, or written by a newer ccgate) is quarantined
    /// on the way, so it cannot hold up the others; it is listed in
    /// `damaged` so that it can be reported.
    pub fn unacked(&self, limit: usize) -> Result<Pending, LedgerError> {
        let rows: Vec<(i64, String)> = {
            let conn = self.conn();
            let mut statement = conn.prepare_cached(
                "SELECT seq, body FROM events
                 WHERE acked_at_ms IS NULL AND quarantined_at_ms IS NULL ORDER BY seq LIMIT ?1",
            )?;
            statement
                .query_map([limit as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        let mut pending = Pending::default();
        for (seq, body) in rows {
            match serde_json::from_str(&body) {
                Ok(event) => pending.events.push((seq, event)),
                Err(error) => {
                    let reason = format!("the record on disk does not read: {error}");
                    tracing::error!(seq, "{reason}");
                    pending.damaged.push((seq, reason));
                }
            }
        }
        self.quarantine(&pending.damaged, Timestamp::now())?;
        Ok(pending)
    }

    /// Events still to deliver (not acknowledged, not quarantined).
    pub fn unacked_count(&self) -> Result<u64, LedgerError> {
        let count: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM events WHERE acked_at_ms IS NULL AND quarantined_at_ms IS NULL",
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    /// Sets events aside for good (the server refused them), with why.
    pub fn quarantine(&self, refused: &[(i64, String)], now: Timestamp) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut statement = tx.prepare_cached(
                "UPDATE events SET quarantined_at_ms = ?1, quarantine_reason = ?2 WHERE seq = ?3",
            )?;
            for (seq, reason) in refused {
                statement.execute(params![now.as_millisecond(), reason, seq])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn quarantined_count(&self) -> Result<u64, LedgerError> {
        let count: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM events WHERE quarantined_at_ms IS NOT NULL",
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }

    /// The latest quarantined events, newest first.
    pub fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, LedgerError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT seq, id, at_ms, quarantine_reason FROM events
             WHERE quarantined_at_ms IS NOT NULL ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit as i64], |row| {
            Ok(Quarantined {
                seq: row.get(0)?,
                id: row.get(1)?,
                at: Timestamp::from_millisecond(row.get(2)?).unwrap_or(Timestamp::UNIX_EPOCH),
                reason: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn ack(&self, seqs: &[i64], now: Timestamp) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut statement =
                tx.prepare_cached("UPDATE events SET acked_at_ms = ?1 WHERE seq = ?2")?;
            for seq in seqs {
                statement.execute(params![now.as_millisecond(), seq])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Usage of the events after `seq` (the last one a snapshot included).
    pub fn usage_after(&self, seq: i64) -> Result<Vec<StoredUsage>, LedgerError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT seq, at_ms, family, prompts, credits, input_tokens, output_tokens,
                    cache_creation_input_tokens, cache_read_input_tokens
             FROM events WHERE seq > ?1 AND family IS NOT NULL ORDER BY seq",
        )?;
        let rows = statement.query_map([seq], |row| {
            let n = |i: usize| row.get::<_, i64>(i).map(|v| v.max(0) as u64);
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                Totals {
                    prompts: n(3)?,
                    credits: n(4)?,
                    input_tokens: n(5)?,
                    output_tokens: n(6)?,
                    cache_creation_input_tokens: n(7)?,
                    cache_read_input_tokens: n(8)?,
                },
            ))
        })?;
        rows.map(|row| {
            let (seq, at_ms, family, totals) = row?;
            Ok(StoredUsage {
                seq,
                at: Timestamp::from_millisecond(at_ms).unwrap_or(Timestamp::UNIX_EPOCH),
                metered: Metered {
                    family: family.parse().unwrap_or(ModelFamily::Other),
                    totals,
                },
            })
        })
        .collect()
    }

    /// Drops acknowledged events and turn memory older than `before`.
    pub fn prune(&self, before: Timestamp) -> Result<(), LedgerError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM events WHERE acked_at_ms IS NOT NULL AND at_ms < ?1",
            [before.as_millisecond()],
        )?;
        memory::prune(&conn, before)?;
        Ok(())
    }

    pub fn put(&self, key: &str, value: &str) -> Result<(), LedgerError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, LedgerError> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    /// The highest sequence number ever given.
    pub fn last_seq(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |row| {
                row.get(0)
            })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccgate_quota::wire::{EventBody, TamperEvent};

    fn tamper(at: &str) -> AgentEvent {
        AgentEvent {
            id: uuid::Uuid::new_v4(),
            at: at.parse().unwrap(),
            body: EventBody::Tamper(TamperEvent {
                path: "/etc/ccgate/config.toml".into(),
                what: "modified".into(),
                restored: true,
                detail: None,
            }),
        }
    }

    #[test]
    fn events_survive_reopening_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let metered = Metered {
            family: ModelFamily::Opus,
            totals: Totals {
                prompts: 1,
                credits: 10,
                input_tokens: 5,
                ..Totals::default()
            },
        };
        let (first, second) = (
            tamper("2026-03-01T10:00:00Z"),
            tamper("2026-03-01T10:01:00Z"),
        );
        {
            let ledger = Ledger::open(&path).unwrap();
            let seq = ledger
                .append(&first, Some(metered), &TurnMemory::default())
                .unwrap();
            ledger
                .append(&second, None, &TurnMemory::default())
                .unwrap();
            ledger.ack(&[seq], Timestamp::now()).unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        let pending = ledger.unacked(10).unwrap().events;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, second);
        assert_eq!(ledger.unacked_count().unwrap(), 1);
        let usage = ledger.usage_after(0).unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].metered, metered);
        assert_eq!(ledger.last_seq().unwrap(), 2);
    }

    #[test]
    fn refused_and_damaged_events_are_set_aside_and_the_rest_flows() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("state.db")).unwrap();
        let memory = TurnMemory::default();
        let first = ledger
            .append(&tamper("2026-03-01T10:00:00Z"), None, &memory)
            .unwrap();
        let damaged = ledger
            .append(&tamper("2026-03-01T10:01:00Z"), None, &memory)
            .unwrap();
        let third = ledger
            .append(&tamper("2026-03-01T10:02:00Z"), None, &memory)
            .unwrap();
        ledger
            .conn()
            .execute("UPDATE events SET body = '{oops' WHERE seq = ?1", [damaged])
            .unwrap();
        ledger
            .quarantine(&[(first, "model is too long".into())], Timestamp::now())
            .unwrap();
        let pending = ledger.unacked(10).unwrap();
        assert_eq!(pending.damaged.len(), 1);
        let seqs: Vec<i64> = pending.events.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [third]);
        assert_eq!(ledger.unacked_count().unwrap(), 1);
        assert_eq!(ledger.quarantined_count().unwrap(), 2);
        let held = ledger.quarantined(10).unwrap();
        assert_eq!(held[0].seq, damaged);
        assert!(held[0].reason.contains("does not read"));
        assert_eq!(held[1].reason, "model is too long");
    }

    #[test]
    fn a_ledger_from_before_quarantine_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                 at_ms INTEGER NOT NULL, body TEXT NOT NULL, family TEXT,
                 prompts INTEGER NOT NULL DEFAULT 0, credits INTEGER NOT NULL DEFAULT 0,
                 input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
                 cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
                 cache_read_input_tokens INTEGER NOT NULL DEFAULT 0, acked_at_ms INTEGER);
                 CREATE INDEX events_unacked ON events (seq) WHERE acked_at_ms IS NULL;",
            )
            .unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        ledger
            .append(
                &tamper("2026-03-01T10:00:00Z"),
                None,
                &TurnMemory::default(),
            )
            .unwrap();
        assert_eq!(ledger.unacked_count().unwrap(), 1);
        drop(ledger);
        assert_eq!(Ledger::open(&path).unwrap().quarantined_count().unwrap(), 0);
    }

    #[test]
    fn the_same_event_is_never_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("state.db")).unwrap();
        let event = tamper("2026-03-01T10:00:00Z");
        ledger.append(&event, None, &TurnMemory::default()).unwrap();
        assert!(ledger.append(&event, None, &TurnMemory::default()).is_err());
        assert_eq!(ledger.unacked_count().unwrap(), 1);
    }
}
