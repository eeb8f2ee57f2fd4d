//! ccgate-server: the central control server. Quotas are decided from
//! memory (policy, usage index, reservations per user); SQLite keeps the
//! record. See `docs/architecture.md`, "As built: ccgate-server".
//!
//! ```no_run
//! # async fn run() -> Result<(), ccgate_server::ServerError> {
//! let mut config = ccgate_server::ServerConfig::new("./data");
//! config.admin_password = Some("a long password".into());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! ccgate_server::serve(config, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod agent_bundle;
pub mod alerts;
pub mod api;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod hub;
pub mod key_file;
pub mod live;
pub mod metrics;
pub mod model;
pub mod postgres;
pub mod ratelimit;
pub mod replicas;
pub mod secrets;
pub mod service;
pub mod sso;
pub mod state;
pub mod store;
pub mod tasks;
pub mod vault;
pub mod writer;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

pub use clock::Clock;
pub use config::{Args, ConfigError, ServerConfig};
pub use error::ServerError;
use error::error_chain;

use crate::db::Db;
use crate::live::Live;
use crate::postgres::PgDb;
use crate::ratelimit::FailureLimiter;
use crate::state::{AppState, Inner};
use crate::store::Store;
use crate::vault::Vault;
use crate::writer::EventWriter;

/// Opens (creating) the SQLite database in the data directory. Blocking;
/// [`serve`] runs it off the runtime.
fn open_database(config: &ServerConfig) -> Result<Db, ServerError> {
    let path = config.database_path();
    Db::open(&path).map_err(|error| match error {
        db::DbError::Sqlite(error) => ServerError::DataDir {
            path: path.clone(),
            error: format!("cannot open the database: {error}"),
        },
        other => other.into(),
    })
}

/// The store `config` names: PostgreSQL (migrated under a lock, so replicas
/// starting together agree) or the SQLite file in the data directory.
async fn open_store(config: &ServerConfig) -> Result<(Store, Option<PgDb>), ServerError> {
    // The data directory holds the server key whatever the backend.
    std::fs::create_dir_all(&config.data_dir).map_err(|error| ServerError::DataDir {
        path: config.data_dir.clone(),
        error: error.to_string(),
    })?;
    match &config.database {
        config::Database::Postgres {
            url,
            max_connections,
            ca_file,
        } => {
            let connect = async {
                let target = postgres::Target::new(url.expose(), ca_file.as_deref())?;
                postgres::PgDb::connect(target, *max_connections).await
            };
            let pg = connect
                .await
                .map_err(|error| ServerError::Db(error_chain(&error)))?;
            tracing::info!("keeping the record in PostgreSQL");
            Ok((Store::postgres(pg.clone()), Some(pg)))
        }
        config::Database::Sqlite => {
            let config = config.clone();
            let db = tokio::task::spawn_blocking(move || open_database(&config))
                .await
                .map_err(|e| ServerError::Io(e.to_string()))??;
            Ok((Store::sqlite(db), None))
        }
    }
}

/// Makes sure the built-in admin has a password, finds the server key, and
/// loads the live state.
async fn open(config: &ServerConfig, store: &Store) -> Result<(Live, Vault), ServerError> {
    let stored = store.admin_password_hash().await?;
    match (&stored, &config.admin_password) {
        (None, None) => {
            return Err(ConfigError(
                "ADMIN_PASSWORD is required on the first start (it becomes the built-in admin's password)"
                    .to_owned(),
            )
            .into());
        }
        (None, Some(password)) => {
            // argon2id takes a moment: off the runtime's threads.
            let password = password.clone();
            let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
                .await
                .map_err(|e| ServerError::Io(e.to_string()))??;
            store.set_first_admin_password(hash).await?;
            tracing::info!("stored the admin password (argon2id)");
        }
        (Some(_), Some(_)) => tracing::info!(
            "ADMIN_PASSWORD is ignored: a password is already stored (change it in the settings)"
        ),
        (Some(_), None) => {}
    }
    let vault = open_vault(config, store).await?;
    let since = config.history_since(config.clock.now());
    let (live, stats) = Live::load(store, &vault, since).await?;
    tracing::info!(
        users = stats.users,
        devices = stats.devices,
        events = stats.events,
        "loaded live state"
    );
    Ok((live, vault))
}

/// The server key (`SECRET_KEY`, else `DATA_DIR/secret.key`), checked
/// against every credential sealed in the database: a wrong key stops the
/// start rather than failing the first device that asks.
async fn open_vault(config: &ServerConfig, store: &Store) -> Result<Vault, ServerError> {
    let sealed = store.sealed_credentials().await?;
    let (key, source) = key_file::resolve(
        &config.key_file_path(),
        config.secret_key.as_ref(),
        !sealed.is_empty(),
    )?;
    if let key_file::KeySource::Created(path) = &source {
        tracing::warn!(
            path = %path.display(),
            "created the server key that encrypts subscription credentials; back it up apart from the database"
        );
    }
    let vault = Vault::new(key);
    for (name, credential) in &sealed {
        if vault.open(credential).is_err() {
            return Err(ServerError::SecretKey(format!(
                "the credential of subscription {name:?} does not open with the server key from \
                 {source}: start with the key it was sealed with (SECRET_KEY, or the \
                 DATA_DIR/secret.key of that database)"
            )));
        }
    }
    Ok(vault)
}

/// Runs the server on `listener` until `shutdown` completes, then finishes
/// open requests, ends streams and writes what is still queued.
pub async fn serve(
    mut config: ServerConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    config.validate()?;
    let local_addr = listener.local_addr()?;
    let (store, shared) = open_store(&config).await?;
    // With PostgreSQL other replicas may share the record: this one's live
    // events and changes go to them, and theirs come here.
    let (hub, replica_link) = match &shared {
        Some(pg) => {
            let origin = uuid::Uuid::new_v4();
            let listener = postgres::fanout::Listener::<hub::Notice>::start(pg.target(), origin)
                .await
                .map_err(|error| ServerError::Db(error_chain(&error)))?;
            let (notices, outgoing) = tokio::sync::mpsc::channel(replicas::RELAY_QUEUE);
            let relay = tokio::spawn(replicas::relay(pg.clone(), origin, outgoing));
            (hub::Hub::relayed(notices), Some((listener, relay)))
        }
        None => (hub::Hub::default(), None),
    };
    // And one of them raises the alerts.
    let (election, leadership) = match &shared {
        Some(pg) => {
            let (elected, leadership) = replicas::Leadership::elected();
            (Some((pg.target().clone(), elected)), leadership)
        }
        None => (None, replicas::Leadership::alone()),
    };
    let (live, vault) = open(&config, &store).await?;
    let agent = {
        let (agent_dir, binaries_dir) = (config.agent_dir.clone(), config.binaries_dir.clone());
        tokio::task::spawn_blocking(move || {
            agent_bundle::AgentBundle::find(&agent_dir, &binaries_dir)
        })
        .await
        .map_err(|e| ServerError::Io(e.to_string()))??
    };
    match &agent {
        Some(bundle) => tracing::info!("install script serves {}", bundle.describe()),
        None => tracing::warn!(
            "no agent binaries to serve: /install.sh answers that none are here (set AGENT_DIR to a release bundle, or put ccgate and ccgate-proxy beside ccgate-server)"
        ),
    }
    let (stop_sender, stop) = watch::channel(false);
    // The writer outlives the last request: it stops after the HTTP server.
    let (writer_stop, writer_stopped) = watch::channel(false);
    let metrics = metrics::Metrics::default();
    let (writer, writer_task) = EventWriter::spawn(
        store.clone(),
        writer_stopped,
        config.event_queue_rows,
        config.event_queue_wait,
        metrics.event_queue_rows.clone(),
    );
    let sso = match config.oidc.clone() {
        Some(oidc) => Some(sso::Provider::new(oidc).map_err(|e| ServerError::Io(e.to_string()))?),
        None => None,
    };
    let mut login_limiter =
        FailureLimiter::new(config.login_max_failures, config.login_failure_window);
    let mut register_limiter = FailureLimiter::new(
        config.login_max_failures.max(10),
        config.login_failure_window,
    );
    // Replicas count each other's failures.
    if let Some(pg) = &shared {
        login_limiter = login_limiter.shared(pg.clone(), "login");
        register_limiter = register_limiter.shared(pg.clone(), "register");
    }
    let state = AppState::new(Inner {
        login_limiter,
        passwords: secrets::PasswordWork::default(),
        register_limiter,
        config,
        store,
        live,
        vault,
        hub,
        metrics,
        writer,
        shutdown: stop,
        local_addr,
        agent,
        alerts: alerts::Alerts::new().map_err(|e| ServerError::Io(e.to_string()))?,
        shares: service::shares::ShareBook::default(),
        sso,
        leadership,
    });
    let leader_election = election.map(|(target, elected)| {
        tokio::spawn(postgres::leader::keep(
            target,
            elected,
            state.shutdown.clone(),
        ))
    });
    let housekeeping = tasks::spawn(state.clone());
    let alert_engine = tokio::spawn(alerts::engine::run(state.clone()));
    let share_keeper = tokio::spawn(service::shares::run(state.clone()));
    let sso_rechecks = tokio::spawn(service::sso::run_rechecks(state.clone()));
    let (follower, relay) = match replica_link {
        Some((listener, relay)) => (
            Some(tokio::spawn(replicas::follow(state.clone(), listener))),
            Some(relay),
        ),
        None => (None, None),
    };
    let app = api::router(state.clone());
    tracing::info!(address = %local_addr, "ccgate-server listening");
    if let Some(warning) = state.config.plain_http_warning(local_addr) {
        tracing::warn!("{warning}");
    }
    let stop_sender = Arc::new(stop_sender);
    let signal = Arc::clone(&stop_sender);
    let limits = http::Limits {
        header_read_timeout: state.config.header_read_timeout,
        idle_timeout: state.config.idle_timeout,
        max_connections: state.config.max_connections,
    };
    http::serve(listener, app, limits, async move {
        shutdown.await;
        tracing::info!("shutting down");
        // Streams and websockets end, so graceful shutdown does not wait on them.
        let _ = signal.send(true);
    })
    .await;
    let _ = stop_sender.send(true);
    let _ = housekeeping.await;
    let _ = alert_engine.await;
    let _ = share_keeper.await;
    let _ = sso_rechecks.await;
    if let Some(election) = leader_election {
        let _ = election.await;
    }
    if let Some(follower) = follower {
        let _ = follower.await;
    }
    tasks::flush_sightings(&state).await;
    let _ = writer_stop.send(true);
    let _ = writer_task.await;
    if let Some(relay) = relay {
        // Notices still queued at the stop are not sent: live events are
        // at most once, and the other replicas reload on the next change.
        relay.abort();
    }
    Ok(())
}
