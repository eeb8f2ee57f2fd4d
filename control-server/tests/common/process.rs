//! `ccgate-server` itself as a child process, configured by environment
//! variables only: for what only the real binary shows (its exit code and
//! messages, a kill).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The binary with its data in `data_dir`, on 127.0.0.1:`port`, with the
/// test admin password and `secret_key`; on the run's PostgreSQL when
/// there is one (a later `DATABASE_URL` replaces it).
pub fn server_binary(data_dir: &Path, port: u16, secret_key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ccgate-server"));
    command
        .env_clear()
        .env("DATA_DIR", data_dir)
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("ADMIN_PASSWORD", super::ADMIN_PASSWORD)
        .env("SECRET_KEY", secret_key)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = super::postgres::shared_database_for(data_dir) {
        command.env("DATABASE_URL", url);
    }
    command
}

/// Waits (10 s at most) until the server at `base` answers `/healthz`.
pub async fn wait_healthy(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("ccgate-server at {base} did not come up");
}
