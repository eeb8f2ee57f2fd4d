//! The server's storage interface: one method per use case (create a
//! person with limits, register a device, record events, read usage for a
//! window, …). Services and handlers call these methods and never see a
//! transaction, so a second backend (PostgreSQL, issue 13) can implement the
//! same methods. Each method is one transaction: it either happens whole or
//! not at all.
//!
//! Each area's file declares its use cases and hands each to the backend:
//! `sqlite/` runs them on [`Db`] (writes on its single writer connection,
//! reads on a reader beside it); `postgres/` on a PostgreSQL pool.

/// Hands a use case to the backend's method of the same name.
macro_rules! dispatch {
    ($store:ident, $method:ident($($arg:expr),* $(,)?)) => {
        match &$store.backend {
            crate::store::Backend::Sqlite(db) => db.$method($($arg),*).await,
            crate::store::Backend::Postgres(pg) => pg.$method($($arg),*).await,
        }
    };
}

mod accounts;
mod alerts;
mod devices;
mod events;
mod history;
mod identities;
mod people;
mod postgres;
mod settings;
mod sqlite;
mod startup;
mod subscriptions;
mod upkeep;

pub use crate::db::{DbError as StoreError, DbResult as StoreResult};
pub use devices::DeviceToRegister;
pub use people::{Change, NewInstallCode, NewPerson, PendingToken};
pub use settings::NewAdminPassword;
pub use startup::{Directory, RecentUsage};

use crate::db::Db;
use crate::postgres::PgDb;

/// Where the server keeps its record.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(Db),
    Postgres(PgDb),
}

impl Store {
    /// The store kept in the SQLite database `db`.
    pub fn sqlite(db: Db) -> Self {
        Self {
            backend: Backend::Sqlite(db),
        }
    }

    /// The PostgreSQL database this store shares with other replicas, if
    /// it is kept there.
    pub fn shared_database(&self) -> Option<&PgDb> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite(_) => None,
        }
    }

    /// The store kept in PostgreSQL, shared with other replicas.
    pub fn postgres(pg: PgDb) -> Self {
        Self {
            backend: Backend::Postgres(pg),
        }
    }
}
