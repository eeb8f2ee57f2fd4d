//! A real PostgreSQL for a test: a fresh cluster (Debian's `postgresql`
//! package, installed by scripts/test.sh) in a temp dir, listening on
//! 127.0.0.1 only, run as `nobody` when the tests run as root (PostgreSQL
//! refuses root). Stopped when dropped.
//!
//! When the test script runs the whole suite on PostgreSQL it starts one
//! cluster for the run (scripts/with-postgres.sh) and names it in
//! `CCGATE_TEST_POSTGRES`; each test server then gets a database of its own
//! there ([`shared_database_for`]).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The user that owns the cluster when the tests run as root.
const NOBODY: u32 = 65534;

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
}

/// Where `initdb` and `postgres` are: `CCGATE_PG_BIN`, else the newest
/// Debian cluster version.
fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CCGATE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (scripts/test.sh installs Debian's postgresql)")
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `program` run as the cluster's owner.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".to_owned(),
                "--".to_owned(),
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A cluster that also speaks TLS, presenting `certificate` (PEM) with
    /// its private `key` (PEM).
    pub async fn start_with_tls(certificate: &str, key: &str) -> Self {
        Self::start_with(Some((certificate, key))).await
    }

    async fn start_with(tls: Option<(&str, &str)>) -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let data = dir.path().join("data");
        let initdb = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "ccgate",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        if is_root() {
            std::os::unix::fs::chown(dir.path().join("postgres.log"), Some(NOBODY), Some(NOBODY))
                .unwrap();
        }
        let mut settings = vec![
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
        ];
        if let Some((certificate, key)) = tls {
            for (name, text) in [("server.crt", certificate), ("server.key", key)] {
                let path = data.join(name);
                std::fs::write(&path, text).unwrap();
                // PostgreSQL refuses a key others can read.
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
                if is_root() {
                    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
                }
            }
            settings.extend([
                "ssl=on",
                "ssl_cert_file=server.crt",
                "ssl_key_file=server.key",
            ]);
        }
        let child = as_owner(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args(settings.iter().flat_map(|setting| ["-c", setting]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Self {
            dir,
            bin,
            child: Some(child),
            port,
        };
        server.wait_ready().await;
        server
    }

    /// A connection string for `database` as the superuser `ccgate`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://ccgate@127.0.0.1:{}/{database}", self.port)
    }

    /// Makes a fresh database and returns its connection string.
    pub async fn create_database(&self, name: &str) -> String {
        let client = self.connect("postgres").await;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        self.url(name)
    }

    pub async fn connect(&self, database: &str) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.url(database), tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect to {database}: {e}\n{}", self.log()));
        tokio::spawn(connection);
        client
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    async fn wait_ready(&self) {
        for _ in 0..300 {
            if tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("PostgreSQL did not start:\n{}", self.log());
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // An immediate stop ends the server and its backends at once.
        let _ = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The cluster the test script started for this run, if any: a connection
/// string to its `postgres` database.
fn shared_cluster_url() -> Option<String> {
    std::env::var("CCGATE_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether the suite runs on the script's PostgreSQL.
pub fn shared_cluster() -> bool {
    shared_cluster_url().is_some()
}

/// A database on the script's cluster for a server with data in
/// `data_dir`, created if need be: the same directory gives the same
/// database (a restart finds its record), another directory another one.
pub fn shared_database_for(data_dir: &Path) -> Option<String> {
    use std::hash::{Hash, Hasher};
    let base = shared_cluster_url()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    let name = format!("ccgate_{:016x}", hasher.finish());
    let (server, _database) = base.rsplit_once('/')?;
    let url = format!("{server}/{name}");
    // Callers are sync (a config, a command line): its own thread and runtime.
    let created = {
        let (base, name) = (base.clone(), name.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(ensure_database(&base, &name));
        })
        .join()
    };
    created.expect("creating the test database");
    Some(url)
}

/// Creates database `name` on the cluster at `base`, unless it exists.
async fn ensure_database(base: &str, name: &str) {
    let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to the test cluster {base}: {e}"));
    tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        match client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
        {
            Ok(()) => {}
            // Two servers of one test on the same directory, at once.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => panic!("create database {name}: {e}"),
        }
    }
}

/// Mel's policy: `max` Opus prompts a day.
pub fn one_opus_rule_policy(max: u64) -> ccgate_quota::CompiledPolicy {
    let policy: ccgate_quota::Policy = serde_json::from_value(serde_json::json!({
        "version": 1,
        "team": "Team",
        "user": { "id": 1, "name": "Mel", "slug": "mel" },
        "status": "active",
        "time_zone": "UTC",
        "credit_weights": ccgate_quota::CreditWeights::default(),
        "rules": [{ "type": "per_model", "model": "opus", "window": "daily", "value": max }],
    }))
    .unwrap();
    ccgate_quota::CompiledPolicy::new(policy).unwrap()
}

/// A proxy's check of a new prompt, held 30 minutes if allowed.
pub fn proxy_prompt(
    user_id: i64,
    device_id: i64,
    key: &str,
    family: ccgate_quota::ModelFamily,
    now: jiff::Timestamp,
) -> ccgate_server::postgres::gate::Check<'_> {
    ccgate_server::postgres::gate::Check {
        user_id,
        device_id,
        key,
        model: "claude-opus-4-5",
        family,
        kind: ccgate_quota::GateKind::Prompt,
        now,
        hold: Duration::from_secs(1800),
        shares: Vec::new(),
        hook: false,
        session_id: None,
    }
}
