//! PostgreSQL for several replicas: the connection pool and the schema's
//! migrations, run at start under an advisory lock so that replicas
//! starting together migrate once. The store's use cases on it are in
//! `store/postgres`; [`fanout`] carries live events between replicas;
//! [`gate`] decides a check exactly whatever replica takes it. See
//! docs/architecture.md, "Under way: scale-out".

pub mod failures;
pub mod fanout;
pub mod gate;
pub mod leader;
pub mod target;

pub use target::Target;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;

/// The schema, one entry per version (1-based), embedded in the binary.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_schema.sql"),
    include_str!("migrations/0002_live_overflow.sql"),
    include_str!("migrations/0003_reservations.sql"),
    include_str!("migrations/0004_usage_running.sql"),
    include_str!("migrations/0005_settle_reservations.sql"),
    include_str!("migrations/0006_alerts.sql"),
    include_str!("migrations/0007_login_failures.sql"),
    include_str!("migrations/0008_hook_reservations.sql"),
    include_str!("migrations/0009_sealed_pending_tokens.sql"),
    include_str!("migrations/0010_check_function.sql"),
];

/// The schema version this server brings its databases to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock every replica takes to migrate ("ccgate" and 1): the
/// others wait for it, then find nothing left to do.
const MIGRATION_LOCK: i64 = 0x6363_6761_7465_0001;

/// How long a check may take, connection included, before it is a 503 and
/// its statement is cancelled (Anthropic's gateway allows its one query
/// 2 s; this is under the proxy's own 1.5 s wait for the server, so no
/// statement outlives the proxy's patience).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("DATABASE_URL is not a PostgreSQL connection string")]
    Url(#[source] tokio_postgres::Error),
    #[error("could not set up the PostgreSQL connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] deadpool_postgres::PoolError),
    #[error("PostgreSQL refused a statement")]
    Query(#[from] tokio_postgres::Error),
    #[error("could not encode a value for PostgreSQL")]
    Encode(#[source] serde_json::Error),
    #[error(
        "the database's schema is version {found}, newer than this server's {known}: run a newer ccgate-server"
    )]
    Newer { found: i64, known: i64 },
    #[error("PostgreSQL did not answer in time")]
    Timeout,
    #[error("DATABASE_CA_FILE is set but DATABASE_URL does not ask for TLS: add sslmode=require")]
    CaWithoutTls,
    #[error("could not read the CA certificates in {path}")]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0} holds no CA certificate")]
    NoCaCertificate(std::path::PathBuf),
    #[error("could not set up TLS to PostgreSQL")]
    Tls(#[source] rustls::Error),
    #[error("a cap's window start ({0} ms) is not among the check's window starts")]
    CapWindow(i64),
    #[error("the check's caps and the policy engine disagree; the prompt was refused")]
    CapsDisagree,
}

impl From<tokio_postgres::Error> for crate::db::DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Postgres(PgError::Query(error))
    }
}

impl PgError {
    /// The SQLSTATE PostgreSQL answered with, if it answered.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Query(error) => error.code(),
            _ => None,
        }
    }

    /// A unique index refused the row.
    pub fn is_unique_violation(&self) -> bool {
        self.code() == Some(&SqlState::UNIQUE_VIOLATION)
    }

    /// A foreign key refused the row (what it names is gone).
    pub fn is_foreign_key_violation(&self) -> bool {
        self.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
    }

    /// The same statement with the same data fails again: a constraint, a
    /// value out of range.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Encode(_) => true,
            // Class 22: data exception; class 23: integrity constraint violation.
            _ => self
                .code()
                .is_some_and(|code| code.code().starts_with("22") || code.code().starts_with("23")),
        }
    }

    /// The database is unreachable or busy for a moment: a retry may pass.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout => true,
            Self::Query(error) => match error.code() {
                // No SQLSTATE: the connection broke.
                None => error.is_closed() || error.as_db_error().is_none(),
                Some(code) => {
                    *code == SqlState::T_R_SERIALIZATION_FAILURE
                        || *code == SqlState::T_R_DEADLOCK_DETECTED
                        || *code == SqlState::LOCK_NOT_AVAILABLE
                        || *code == SqlState::QUERY_CANCELED
                        || *code == SqlState::TOO_MANY_CONNECTIONS
                        || *code == SqlState::ADMIN_SHUTDOWN
                        || *code == SqlState::CANNOT_CONNECT_NOW
                        || *code == SqlState::DISK_FULL
                }
            },
            _ => false,
        }
    }
}

/// A pool of connections to one PostgreSQL database with ccgate's schema.
#[derive(Clone)]
pub struct PgDb {
    pool: Pool,
    target: Target,
    check_timeout: Duration,
    /// Checks whose caps and engine disagreed (see `gate`): always zero
    /// unless there is a bug, which tests watch for.
    disagreements: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDb")
            .field("status", &self.pool.status())
            .field("target", &self.target)
            .finish()
    }
}

impl PgDb {
    /// Connects to `url` without TLS options (see [`Target`]) and brings
    /// the schema up to date.
    pub async fn open(url: &str, max_connections: usize) -> Result<Self, PgError> {
        Self::connect(Target::new(url, None)?, max_connections).await
    }

    /// Connects (at most `max_connections` at once) and brings the schema
    /// up to date.
    pub async fn connect(target: Target, max_connections: usize) -> Result<Self, PgError> {
        let manager = Manager::from_config(
            target.config().clone(),
            target.tls(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(PgError::Pool)?;
        let db = Self {
            pool,
            target,
            check_timeout: CHECK_TIMEOUT,
            disagreements: Default::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// The same database with checks bounded by `timeout` rather than
    /// [`CHECK_TIMEOUT`].
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Where the database is: for connections outside the pool.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Applies the migrations this database lacks, in one transaction under
    /// the migration lock; returns how many it applied.
    pub async fn migrate(&self) -> Result<usize, PgError> {
        let mut client = self.pool.get().await.map_err(PgError::Connect)?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS ccgate_schema (
                 version    BIGINT PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await?;
        let found: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM ccgate_schema", &[])
            .await?
            .get(0);
        let known = SCHEMA_VERSION;
        if found > known {
            return Err(PgError::Newer { found, known });
        }
        let mut applied = 0;
        for (version, sql) in (1_i64..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO ccgate_schema (version) VALUES ($1)",
                &[&version],
            )
            .await?;
            applied += 1;
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// How many checks' caps disagreed with the engine since start.
    pub fn caps_disagreements(&self) -> u64 {
        self.disagreements
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A connection from the pool.
    pub async fn connection(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool.get().await.map_err(PgError::Connect)
    }
}
