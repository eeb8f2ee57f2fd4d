//! Configuration: every option is declared once here, as a flag with an
//! environment variable and a default; [`ServerConfig`] is what the server
//! runs with.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use crate::client_addr::TrustedProxies;
use std::time::Duration;

use ccgate_quota::seal::SealKey;

use crate::clock::Clock;

/// Shortest admin password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Command-line flags, each also read from its environment variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "ccgate-server",
    version,
    about = "ccgate's control server: quotas, devices, usage and live events for a team"
)]
pub struct Args {
    /// TCP port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "BIND", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind: IpAddr,
    /// Directory holding ccgate.db; created if missing.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// URL devices reach this server at, shown in setup commands
    /// [default: http://<host>:<port> of the admin's request].
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Release bundle served to developer machines by /install.sh
    /// [default: `agent` beside the server binary; without one, the
    /// ccgate and ccgate-proxy beside it].
    #[arg(long, env = "AGENT_DIR")]
    pub agent_dir: Option<PathBuf>,
    /// How long an allowed check holds its prompt when no event settles it.
    #[arg(long, env = "RESERVATION_TTL_SECS", default_value_t = 1800)]
    pub reservation_ttl_secs: u64,
    /// How long a new install code stays valid.
    #[arg(long, env = "INSTALL_CODE_TTL_HOURS", default_value_t = 168)]
    pub install_code_ttl_hours: u64,
    /// How long an admin login lasts.
    #[arg(long, env = "SESSION_TTL_HOURS", default_value_t = 168)]
    pub session_ttl_hours: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Failed logins (or install-code registrations) allowed per client
    /// address within the failure window before answering 429.
    #[arg(long, env = "LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,
    /// The failure window, in seconds.
    #[arg(long, env = "LOGIN_FAILURE_WINDOW_SECS", default_value_t = 900)]
    pub login_failure_window_secs: u64,
    /// Seconds a client has to send a request's line and headers; the same
    /// timer closes a kept-alive connection that sends no new request.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout_secs: u64,
    /// Seconds a connection may move no byte in either direction (a stalled
    /// body, a client that stops reading) before it is closed; a request
    /// body must arrive in full within it. Live streams send a ping every
    /// 15 s and websockets every 30 s, so they stay open.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout_secs: u64,
    /// Connections served at once (live streams and websockets included);
    /// more wait in the listen backlog until one closes. Keep the process's
    /// open-file limit above it.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Key that encrypts subscription credentials at rest: 64 hex characters
    /// (`openssl rand -hex 32`). Prefer the environment variable: other local
    /// users can read a flag in the process list. Back it up apart from the
    /// database [default: DATA_DIR/secret.key, created on the first start].
    #[arg(long, env = "SECRET_KEY", hide_env_values = true, value_name = "HEX")]
    pub secret_key: Option<SecretText>,
    /// PostgreSQL to keep the record in, shared by several replicas of the
    /// server behind one address: `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// [default: SQLite, DATA_DIR/ccgate.db].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<SecretText>,
    /// Connections this replica keeps to PostgreSQL at most.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: usize,
    /// The CA certificates (PEM) PostgreSQL's certificate must chain to when
    /// DATABASE_URL has `sslmode=require` [default: Mozilla's roots].
    #[arg(long, env = "DATABASE_CA_FILE", value_name = "PATH")]
    pub database_ca_file: Option<PathBuf>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses
    /// or CIDR ranges, or `private_ranges`), so that failed logins count
    /// per client rather than per proxy [default: none, the TCP peer is the
    /// client].
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_name = "RANGES",
        default_value = ""
    )]
    pub trusted_proxies: String,
    #[command(flatten)]
    pub oidc: crate::sso::OidcArgs,
}

/// A secret given on the command line or in the environment. Parsing never
/// fails (so clap never echoes it in an error) and `Debug` never shows it;
/// [`Args::into_config`] checks its form.
#[derive(Clone)]
pub struct SecretText(pub(crate) String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl SecretText {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretText {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

impl Args {
    /// The server configuration these flags describe. `ADMIN_PASSWORD` is read
    /// from the environment only, so it never shows in a process listing.
    pub fn into_config(self) -> Result<ServerConfig, ConfigError> {
        let mut config = ServerConfig::new(self.data_dir);
        config.admin_password = std::env::var("ADMIN_PASSWORD").ok();
        config.oidc = self.oidc.into_config(self.public_url.as_deref())?;
        config.public_url = self.public_url;
        if let Some(dir) = self.agent_dir {
            config.agent_dir = dir;
        }
        config.reservation_ttl = Duration::from_secs(self.reservation_ttl_secs);
        config.install_code_ttl = Duration::from_secs(self.install_code_ttl_hours * 3600);
        config.session_ttl = Duration::from_secs(self.session_ttl_hours * 3600);
        config.max_body_bytes = self.max_body_bytes;
        config.login_max_failures = self.login_max_failures;
        config.login_failure_window = Duration::from_secs(self.login_failure_window_secs);
        config.header_read_timeout = Duration::from_secs(self.header_read_timeout_secs);
        config.idle_timeout = Duration::from_secs(self.idle_timeout_secs);
        config.max_connections = self.max_connections;
        config.trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|error| ConfigError(error.to_string()))?;
        // An empty value is unset, as compose passes `${DATABASE_URL:-}`.
        if let Some(url) = self.database_url.filter(|url| !url.0.is_empty()) {
            config.database = Database::Postgres {
                url,
                max_connections: self.database_max_connections,
                ca_file: self
                    .database_ca_file
                    .filter(|path| !path.as_os_str().is_empty()),
            };
        }
        config.secret_key = self
            .secret_key
            .filter(|text| !text.0.is_empty())
            .map(|text| {
                SealKey::from_hex(&text.0).map_err(|error| {
                    ConfigError(format!(
                        "SECRET_KEY (or --secret-key) must be 64 hex characters: {error}"
                    ))
                })
            })
            .transpose()?;
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Whether `url` is plain http to another machine: not https, and its host
/// is not `localhost` or a loopback address. Setup and the daemon refuse
/// such a server unless given `--insecure`.
pub fn plain_http_off_machine(url: &str) -> bool {
    let Some(rest) = url.trim().strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let host = host.to_ascii_lowercase();
    let local = host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    !local
}

/// The directory of the running binary (`.` if it cannot be told).
fn own_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where the record is kept.
#[derive(Debug, Clone, Default)]
pub enum Database {
    /// `DATA_DIR/ccgate.db`: one server.
    #[default]
    Sqlite,
    /// A PostgreSQL database several replicas share (`DATABASE_URL`).
    Postgres {
        url: SecretText,
        max_connections: usize,
        /// What PostgreSQL's TLS certificate must chain to (`postgres::Target`).
        ca_file: Option<PathBuf>,
    },
}

impl Database {
    /// PostgreSQL at `url` with the default pool size.
    pub fn postgres(url: impl Into<String>) -> Self {
        Self::Postgres {
            url: SecretText(url.into()),
            max_connections: 16,
            ca_file: None,
        }
    }
}

/// Everything [`crate::serve`] needs besides its listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds `ccgate.db` (with SQLite) and `secret.key`.
    pub data_dir: PathBuf,
    pub database: Database,
    /// The built-in admin's password; required when the database has none yet.
    pub admin_password: Option<String>,
    /// Base URL shown in setup commands; `None` uses the request's Host.
    pub public_url: Option<String>,
    /// How long an allowed check holds its prompt if no event settles it.
    pub reservation_ttl: Duration,
    pub install_code_ttl: Duration,
    pub session_ttl: Duration,
    pub max_body_bytes: usize,
    /// The release bundle of agent binaries (`AGENT_DIR`).
    pub agent_dir: PathBuf,
    /// Where `ccgate` and `ccgate-proxy` are looked for without a bundle:
    /// the server binary's directory.
    pub binaries_dir: PathBuf,
    /// Failed logins and failed registrations per client address per window.
    pub login_max_failures: u32,
    pub login_failure_window: Duration,
    /// Time to send a request's head (and to start the next one on a
    /// kept-alive connection).
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long is closed; a request
    /// body must arrive within it.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Usage held in memory for checks: enough for the longest window (a month).
    pub history_days: u32,
    /// Events older than this (by their own clock) are moved up to it.
    pub max_event_age: Duration,
    /// A hook `count` without a reservation, repeated for the same device,
    /// session and model within this time, counts once.
    pub hook_count_dedupe: Duration,
    /// A device seen within this time shows as online.
    pub online_window: Duration,
    /// How often an open live-events socket checks that its session or
    /// token still holds (logout, password change, revoked token).
    pub live_session_recheck: Duration,
    /// How often `last_seen_at` is written to the database.
    pub last_seen_flush_interval: Duration,
    /// The key that seals subscription credentials at rest (`SECRET_KEY`);
    /// `None` uses `DATA_DIR/secret.key`, created on the first start.
    pub secret_key: Option<SealKey>,
    /// Whether a device on a loopback address may receive its subscription
    /// credential over plain http. True for the real server; tests turn it
    /// off to stand for a remote device (every test peer is on loopback).
    pub loopback_is_local: bool,
    /// Proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: TrustedProxies,
    /// Rows the background writer may hold before requests that add events
    /// wait for room (then 503 with `Retry-After`).
    pub event_queue_rows: usize,
    /// How long such a request waits for room in the writer's queue.
    pub event_queue_wait: Duration,
    /// How often the alert engine looks at standing conditions (silent
    /// devices, credentials near expiry, windows that reset).
    pub alert_tick: Duration,
    /// Retries of an alert delivery.
    pub alert_retry: ccgate_alerts::RetryPolicy,
    /// Single sign-on; `None`: password logins only.
    pub oidc: Option<crate::sso::OidcConfig>,
    pub clock: Clock,
}

impl ServerConfig {
    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database: Database::Sqlite,
            admin_password: None,
            public_url: None,
            reservation_ttl: Duration::from_secs(30 * 60),
            install_code_ttl: Duration::from_secs(7 * 24 * 3600),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 1 << 20,
            agent_dir: own_dir().join("agent"),
            binaries_dir: own_dir(),
            login_max_failures: 5,
            login_failure_window: Duration::from_secs(15 * 60),
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            history_days: 35,
            max_event_age: Duration::from_secs(7 * 24 * 3600),
            hook_count_dedupe: Duration::from_secs(10),
            online_window: Duration::from_secs(120),
            live_session_recheck: Duration::from_secs(10),
            last_seen_flush_interval: Duration::from_secs(5),
            secret_key: None,
            loopback_is_local: true,
            trusted_proxies: TrustedProxies::default(),
            event_queue_rows: 100_000,
            event_queue_wait: Duration::from_secs(5),
            alert_tick: Duration::from_secs(60),
            alert_retry: ccgate_alerts::RetryPolicy::default(),
            oidc: None,
            clock: Clock::system(),
        }
    }

    /// The configuration from the environment variables of [`Args`]
    /// (`DATA_DIR`, `ADMIN_PASSWORD`, `PUBLIC_URL`, …), defaults otherwise.
    pub fn from_env() -> Result<Self, ConfigError> {
        use clap::Parser;
        Args::try_parse_from(["ccgate-server"])
            .map_err(|e| ConfigError(e.to_string()))?
            .into_config()
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("ccgate.db")
    }

    /// Where the server key is kept when `SECRET_KEY` is not set.
    pub fn key_file_path(&self) -> PathBuf {
        self.data_dir.join(crate::key_file::KEY_FILE)
    }

    /// Whether devices reach the server over https (`PUBLIC_URL`).
    pub fn public_url_is_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    /// The warning to log at start, if the server listens beyond loopback
    /// while devices and admins reach it over plain http.
    pub fn plain_http_warning(&self, bound: std::net::SocketAddr) -> Option<String> {
        if bound.ip().to_canonical().is_loopback() || self.public_url_is_https() {
            return None;
        }
        let url = self.public_url.as_deref().unwrap_or("not set");
        Some(format!(
            "ccgate-server listens on {bound}, beyond loopback, and PUBLIC_URL ({url}) is not \
             https: install codes, device tokens, checks and admin logins would cross the network \
             in plain http, readable and changeable on the way. Put it behind a TLS reverse proxy \
             and set PUBLIC_URL=https://…; setup commands for plain http say --insecure"
        ))
    }

    /// Whether cookies must be `Secure` (the server is reached over https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url_is_https()
    }

    /// Whether a secret may be sent to a client at `peer`: the server is
    /// reached over https, or the client is on this machine.
    pub fn transport_is_private(&self, peer: IpAddr) -> bool {
        self.public_url_is_https() || (self.loopback_is_local && peer.to_canonical().is_loopback())
    }

    /// The oldest usage kept in memory (`history_days` before `now`).
    pub fn history_since(&self, now: jiff::Timestamp) -> jiff::Timestamp {
        let history = jiff::SignedDuration::from_hours(24 * i64::from(self.history_days));
        now.checked_sub(history)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if let Database::Postgres {
            url,
            max_connections,
            ..
        } = &self.database
        {
            let url = url.0.trim();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError(
                    "DATABASE_URL must start with postgres:// or postgresql://".to_owned(),
                ));
            }
            if *max_connections == 0 {
                return Err(ConfigError(
                    "DATABASE_MAX_CONNECTIONS must be at least 1".to_owned(),
                ));
            }
        }
        if let Some(url) = &self.public_url {
            let url = url.trim().trim_end_matches('/');
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() <= "https://".len()
            {
                return Err(ConfigError(format!(
                    "PUBLIC_URL {url:?} must start with http:// or https://"
                )));
            }
            self.public_url = Some(url.to_owned());
        }
        if let Some(password) = &self.admin_password
            && password.chars().count() < MIN_PASSWORD_LEN
        {
            return Err(ConfigError(format!(
                "ADMIN_PASSWORD must be at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        for (name, value) in [
            ("reservation TTL", self.reservation_ttl),
            ("install code TTL", self.install_code_ttl),
            ("session TTL", self.session_ttl),
            ("login failure window", self.login_failure_window),
            (
                "header read timeout (HEADER_READ_TIMEOUT_SECS)",
                self.header_read_timeout,
            ),
            ("idle timeout (IDLE_TIMEOUT_SECS)", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError(format!("the {name} must be more than zero")));
            }
        }
        if self.max_connections == 0 {
            return Err(ConfigError("MAX_CONNECTIONS must be at least 1".to_owned()));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError(
                "MAX_BODY_BYTES must be at least 1024".to_owned(),
            ));
        }
        if self.history_days < 32 {
            return Err(ConfigError(
                "history_days must cover a month (at least 32)".to_owned(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config_of(args: &[&str]) -> ServerConfig {
        Args::try_parse_from(std::iter::once("ccgate-server").chain(args.iter().copied()))
            .unwrap()
            .into_config()
            .unwrap()
    }

    #[test]
    fn an_empty_database_url_or_secret_key_is_unset() {
        let config = config_of(&["--database-url", "", "--secret-key", ""]);
        assert!(matches!(config.database, Database::Sqlite));
        assert!(config.secret_key.is_none());
        let config = config_of(&["--database-url", "postgres://db/ccgate"]);
        assert!(matches!(
            config.database,
            Database::Postgres { ca_file: None, .. }
        ));
        let config = config_of(&[
            "--database-url",
            "postgres://db/ccgate?sslmode=require",
            "--database-ca-file",
            "/etc/ccgate/db-ca.pem",
        ]);
        let Database::Postgres { ca_file, .. } = config.database else {
            panic!("PostgreSQL expected");
        };
        assert_eq!(ca_file.as_deref(), Some(Path::new("/etc/ccgate/db-ca.pem")));
    }
}
