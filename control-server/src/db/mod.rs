//! SQLite storage: the statements, and the connections they run on. The
//! store's SQLite implementation (`store/sqlite`) runs closures over a
//! connection on the blocking pool: [`Db::write`] on the single writer,
//! [`Db::read`] on one of a few readers (WAL lets them run beside the writer).

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod devices;
pub mod events;
pub mod identities;
mod migrations;
pub mod settings;
pub mod subscriptions;
pub mod users;
pub mod utilization;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PgError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("schema: {0}")]
    Schema(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database task failed: {0}")]
    Task(String),
}

pub type DbResult<T> = Result<T, DbError>;

const READERS: usize = 2;

#[derive(Clone)]
pub struct Db {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").finish_non_exhaustive()
    }
}

fn configure(conn: &Connection) -> DbResult<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> DbResult<Self> {
        let mut writer = Connection::open(path)?;
        // WAL: readers never wait for the writer; set once, kept in the file.
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Schema(format!(
                "could not switch to WAL (journal_mode is {mode})"
            )));
        }
        configure(&writer)?;
        migrations::run(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn)?;
                Ok(Mutex::new(conn))
            })
            .collect::<DbResult<Vec<_>>>()?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs `work` in a transaction on the writer connection; commits when it returns `Ok`.
    pub async fn write<T, F>(&self, work: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> DbResult<T> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        run_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Runs `work(tx, index)` for each index below `count`, each in a
    /// transaction of its own on the writer connection, in one blocking
    /// task: one failing item does not undo the others.
    pub async fn write_each<T, F>(&self, count: usize, work: F) -> Vec<DbResult<T>>
    where
        T: Send + 'static,
        F: Fn(&rusqlite::Transaction<'_>, usize) -> DbResult<T> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let outcome = tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            (0..count)
                .map(|index| {
                    let tx =
                        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let value = work(&tx, index)?;
                    tx.commit()?;
                    Ok(value)
                })
                .collect::<Vec<DbResult<T>>>()
        })
        .await;
        outcome.unwrap_or_else(|error| {
            (0..count)
                .map(|_| Err(DbError::Task(error.to_string())))
                .collect()
        })
    }

    /// Runs `work` on a read-only connection.
    pub async fn read<T, F>(&self, work: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> DbResult<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
        run_blocking(move || {
            let conn = readers[index].lock().unwrap_or_else(|p| p.into_inner());
            work(&conn)
        })
        .await
    }

    /// Like [`Db::write`], for the start-up path and tests that are not async.
    pub fn write_blocking<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> DbResult<T>,
    ) -> DbResult<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = work(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Like [`Db::read`], blocking.
    pub fn read_blocking<T>(&self, work: impl FnOnce(&Connection) -> DbResult<T>) -> DbResult<T> {
        let conn = self.readers[0].lock().unwrap_or_else(|p| p.into_inner());
        work(&conn)
    }
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> DbResult<T> + Send + 'static,
) -> DbResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
}

/// Optional text column helper: empty strings are stored as NULL.
pub(crate) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Whether `error` will happen again for the same data (a constraint, a
/// value that does not fit) rather than pass on a retry (a full disk, a
/// busy or locked database, an I/O error).
pub fn is_permanent(error: &DbError) -> bool {
    match error {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
            e.code,
            rusqlite::ErrorCode::ConstraintViolation
                | rusqlite::ErrorCode::TooBig
                | rusqlite::ErrorCode::TypeMismatch
        ),
        DbError::Postgres(error) => error.is_permanent(),
        DbError::Sqlite(rusqlite::Error::ToSqlConversionFailure(_))
        | DbError::Corrupt(_)
        | DbError::Conflict(_)
        | DbError::NotFound(_) => true,
        _ => false,
    }
}

/// Whether `error` is the database being unavailable for a moment (busy,
/// locked, full, an I/O error): the request may succeed when retried.
pub fn is_transient(error: &DbError) -> bool {
    if let DbError::Postgres(error) = error {
        return error.is_transient();
    }
    matches!(
        error,
        DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if matches!(
            e.code,
            rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::OutOfMemory
                | rusqlite::ErrorCode::CannotOpen
        )
    )
}

pub(crate) fn is_foreign_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
    )
}

/// A time stored as ms since the epoch; one out of jiff's range is corrupt.
pub(crate) fn timestamp(ms: i64) -> DbResult<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(ms).map_err(|e| corrupt(format!("time {ms} ms: {e}")))
}

/// Column `index` of `row`, a time stored as ms since the epoch.
pub(crate) fn instant_column(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<jiff::Timestamp> {
    instant_of(index, row.get(index)?)
}

/// Column `index` of `row`, an optional time stored as ms since the epoch.
pub(crate) fn instant_column_opt(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<jiff::Timestamp>> {
    row.get::<_, Option<i64>>(index)?
        .map(|ms| instant_of(index, ms))
        .transpose()
}

/// `ms` read from column `index`, as a time.
fn instant_of(index: usize, ms: i64) -> rusqlite::Result<jiff::Timestamp> {
    timestamp(ms).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            Box::new(e),
        )
    })
}

/// Column `index` of `row`, an enum stored as its serde name.
pub(crate) fn enum_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    enum_from_text(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(what.to_string())
}

/// A unit enum of the quota crate by its serde name, as it is stored.
pub(crate) fn enum_from_text<T: serde::de::DeserializeOwned>(text: &str) -> DbResult<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|e| corrupt(format!("{text:?}: {e}")))
}

/// The stored form of a unit enum: its serde name.
pub(crate) fn enum_to_text<T: serde::Serialize>(value: &T) -> DbResult<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        other => Err(corrupt(format!("not a unit enum: {other:?}"))),
    }
}
