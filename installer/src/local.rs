//! Talking to the daemon on this machine: where it listens, its status
//! endpoint, and the sync request.

use std::net::SocketAddr;
use std::time::Duration;

use ccgate_machine::config::{DEFAULT_PORT, ProxyConfig};
use ccgate_machine::local_api::SYNC_PATH;
use ccgate_machine::local_api::{STATUS_PATH, StatusReport};
use ccgate_machine::paths::Paths;

use crate::error::{InstallError, Result};

/// Where the daemon listens: `--port`, else the config (root can read it),
/// else the proxy URL in the managed settings (anyone can), else the default.
pub fn daemon_address(paths: &Paths, port: Option<u16>) -> SocketAddr {
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    if let Some(port) = port {
        return loopback(port);
    }
    if let Ok(config) = ProxyConfig::load(&paths.config_file()) {
        return config.listen;
    }
    let from_settings = std::fs::read(paths.managed_settings())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|settings| {
            let url = settings["env"]["HTTPS_PROXY"].as_str()?.to_owned();
            url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
        });
    loopback(from_settings.unwrap_or(DEFAULT_PORT))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // The daemon is local: never through a proxy (the shell may point
        // at ccgate itself).
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("HTTP client builds")
}

fn down(address: SocketAddr, error: &reqwest::Error) -> InstallError {
    InstallError::DaemonDown {
        address: address.to_string(),
        detail: ccgate_proxy::link::error_chain(error),
    }
}

pub async fn fetch_status(address: SocketAddr) -> Result<StatusReport> {
    let response = client()
        .get(format!("http://{address}{STATUS_PATH}"))
        .send()
        .await
        .map_err(|e| down(address, &e))?;
    if !response.status().is_success() {
        return Err(InstallError::DaemonDown {
            address: address.to_string(),
            detail: format!("{STATUS_PATH} answered {}", response.status()),
        });
    }
    response.json().await.map_err(|e| down(address, &e))
}

pub async fn request_sync(address: SocketAddr) -> Result<()> {
    let response = client()
        .post(format!("http://{address}{SYNC_PATH}"))
        .send()
        .await
        .map_err(|e| down(address, &e))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(InstallError::DaemonDown {
            address: address.to_string(),
            detail: format!(
                "{SYNC_PATH} answered {} (an older daemon? restart it)",
                response.status()
            ),
        })
    }
}
