//! What the ledger remembers about turns: each counted turn's latest
//! generation and input digest, and the tool calls replies asked for.
//! Written in the transaction of the event that taught it; read at start.

use ccgate_quota::ModelFamily;
use jiff::Timestamp;
use rusqlite::{Connection, Transaction, params};

use super::{Ledger, LedgerError};
use crate::classify::Digest;
use crate::turns::{CountedTurn, TurnKey};

/// What one event teaches about its turn.
#[derive(Debug, Default, Clone, Copy)]
pub struct TurnMemory<'a> {
    pub counted: Option<&'a CountedTurn>,
    /// The turn whose reply asked for these tool calls.
    pub tool_uses: Option<(&'a TurnKey, &'a [String])>,
}

impl TurnMemory<'_> {
    pub(super) fn write(&self, tx: &Transaction<'_>, at: Timestamp) -> Result<(), LedgerError> {
        if let Some(turn) = self.counted {
            tx.execute(
                "INSERT INTO turns (base, generation, family, at_ms, input, session, prompt_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (base) DO UPDATE SET generation = excluded.generation,
                     family = excluded.family, at_ms = excluded.at_ms, input = excluded.input,
                     session = excluded.session, prompt_id = excluded.prompt_id
                 WHERE excluded.generation >= turns.generation",
                params![
                    turn.key.base,
                    turn.key.generation,
                    turn.family.as_str(),
                    turn.at.as_millisecond(),
                    turn.input.map(Digest::to_hex),
                    turn.session,
                    turn.prompt_id,
                ],
            )?;
        }
        if let Some((key, ids)) = self.tool_uses {
            let mut statement = tx.prepare_cached(
                "INSERT OR REPLACE INTO tool_uses (id, turn_base, at_ms) VALUES (?1, ?2, ?3)",
            )?;
            for id in ids {
                statement.execute(params![id, key.base, at.as_millisecond()])?;
            }
        }
        Ok(())
    }
}

pub(super) fn prune(conn: &Connection, before: Timestamp) -> Result<(), LedgerError> {
    conn.execute(
        "DELETE FROM turns WHERE at_ms < ?1",
        [before.as_millisecond()],
    )?;
    conn.execute(
        "DELETE FROM tool_uses WHERE at_ms < ?1",
        [before.as_millisecond()],
    )?;
    Ok(())
}

fn time(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Ledger {
    /// Turns counted since `since`, to be remembered after a restart.
    pub fn counted_turns_since(&self, since: Timestamp) -> Result<Vec<CountedTurn>, LedgerError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT base, generation, family, at_ms, input, session, prompt_id
             FROM turns WHERE at_ms >= ?1",
        )?;
        let rows = statement.query_map([since.as_millisecond()], |row| {
            Ok(CountedTurn {
                key: TurnKey {
                    base: row.get(0)?,
                    generation: row.get(1)?,
                },
                family: row
                    .get::<_, String>(2)?
                    .parse()
                    .unwrap_or(ModelFamily::Other),
                at: time(row.get(3)?),
                input: row
                    .get::<_, Option<String>>(4)?
                    .and_then(|hex| Digest::from_hex(&hex)),
                session: row.get(5)?,
                prompt_id: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Tool calls asked for since `since`, by turn.
    pub fn tool_uses_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(TurnKey, Vec<String>)>, LedgerError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT turn_base, id FROM tool_uses WHERE at_ms >= ?1 ORDER BY turn_base, at_ms",
        )?;
        let rows = statement.query_map([since.as_millisecond()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut by_turn: Vec<(TurnKey, Vec<String>)> = Vec::new();
        for row in rows {
            let (base, id) = row?;
            match by_turn.last_mut() {
                Some((key, ids)) if key.base == base => ids.push(id),
                _ => by_turn.push((TurnKey::first(base), vec![id])),
            }
        }
        Ok(by_turn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccgate_quota::wire::{AgentEvent, EventBody};

    #[test]
    fn counted_turns_and_tool_calls_come_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let at: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let key = TurnKey::first("s:1").next();
        let counted = CountedTurn {
            key: key.clone(),
            family: ModelFamily::Opus,
            at,
            input: Some(Digest::of(&[b"hello"])),
            session: Some("s".into()),
            prompt_id: Some("p".into()),
        };
        let event = |at: Timestamp| AgentEvent {
            id: uuid::Uuid::new_v4(),
            at,
            body: EventBody::TurnReleased {
                turn_key: "x".into(),
            },
        };
        let ids = ["toolu_1".to_owned(), "toolu_2".to_owned()];
        {
            let ledger = Ledger::open(&path).unwrap();
            let memory = TurnMemory {
                counted: Some(&counted),
                tool_uses: Some((&key, &ids)),
            };
            ledger.append(&event(at), None, &memory).unwrap();
            // An older generation arriving late does not replace a newer one.
            let older = CountedTurn {
                key: TurnKey::first("s:1"),
                ..counted.clone()
            };
            let memory = TurnMemory {
                counted: Some(&older),
                tool_uses: None,
            };
            ledger.append(&event(at), None, &memory).unwrap();
        }
        let ledger = Ledger::open(&path).unwrap();
        let since = "2026-03-01T00:00:00Z".parse().unwrap();
        assert_eq!(ledger.counted_turns_since(since).unwrap(), vec![counted]);
        let tools = ledger.tool_uses_since(since).unwrap();
        assert_eq!(tools, vec![(TurnKey::first("s:1"), ids.to_vec())]);
        ledger
            .prune("2026-03-02T00:00:00Z".parse().unwrap())
            .unwrap();
        assert!(ledger.counted_turns_since(since).unwrap().is_empty());
        assert!(ledger.tool_uses_since(since).unwrap().is_empty());
    }
}
