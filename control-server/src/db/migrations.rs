//! Embedded migrations, run at start. `PRAGMA user_version` records how many
//! have been applied; each runs in its own transaction.

use rusqlite::Connection;

use super::DbError;

const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_event_filters.sql"),
    include_str!("migrations/0003_subscriptions.sql"),
    include_str!("migrations/0004_events_per_device.sql"),
    include_str!("migrations/0005_revocation_and_code_kinds.sql"),
    include_str!("migrations/0006_agent_build.sql"),
    include_str!("migrations/0007_utilization_history.sql"),
    include_str!("migrations/0008_alerts.sql"),
    include_str!("migrations/0009_identities.sql"),
];

pub fn run(conn: &mut Connection) -> Result<(), DbError> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(DbError::Schema(format!(
            "the database has schema version {applied}, newer than this server knows ({}); \
             run a newer ccgate-server",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = index + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_an_older_database_keep_their_rows_and_ids_become_per_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ccgate.db");
        let mut conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 3;
             INSERT INTO users (id, name, slug, created_at) VALUES (1, 'A', 'a', 0);
             INSERT INTO events (rowid, id, user_id, device_id, at, received_at, type)
                 VALUES (7, 'e1', 1, 1, 10, 10, 'request');",
        )
        .unwrap();
        run(&mut conn).unwrap();
        let (rowid, id): (i64, String) = conn
            .query_row("SELECT rowid, id FROM events", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!((rowid, id.as_str()), (7, "e1"));
        // Another device may use the same id; the same device may not.
        conn.execute(
            "INSERT INTO events (id, user_id, device_id, at, received_at, type)
             VALUES ('e1', 1, 2, 10, 10, 'request')",
            [],
        )
        .unwrap();
        let again = conn.execute(
            "INSERT INTO events (id, user_id, device_id, at, received_at, type)
             VALUES ('e1', 1, 1, 10, 10, 'request')",
            [],
        );
        assert!(again.is_err());
    }
}
