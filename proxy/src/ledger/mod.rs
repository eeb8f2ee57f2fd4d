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
CREATE INDEX IF NOT EXISTS events_unacked ON events (seq) WHERE acked_at_ms IS NULL;
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

    /// The oldest unacknowledged events, in order.
    pub fn unacked(&self, limit: usize) -> Result<Vec<(i64, AgentEvent)>, LedgerError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT seq, body FROM events WHERE acked_at_ms IS NULL ORDER BY seq LIMIT ?1",
        )?;
        let rows = statement.query_map([limit as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (seq, body) = row?;
            let event = serde_json::from_str(&body).map_err(|e| LedgerError::Damaged {
                seq,
                message: e.to_string(),
            })?;
            Ok((seq, event))
        })
        .collect()
    }

    pub fn unacked_count(&self) -> Result<u64, LedgerError> {
        let count: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM events WHERE acked_at_ms IS NULL",
            [],
            |row| row.get(0),
        )?;
        Ok(count as u64)
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
        let pending = ledger.unacked(10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].1, second);
        assert_eq!(ledger.unacked_count().unwrap(), 1);
        let usage = ledger.usage_after(0).unwrap();
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].metered, metered);
        assert_eq!(ledger.last_seq().unwrap(), 2);
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
