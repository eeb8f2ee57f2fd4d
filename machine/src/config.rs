//! The daemon's configuration file (`config.toml`, written by `ccgate setup`)
//! and the environment overrides for tests and diagnosis.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_PORT: u16 = 47770;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The control server, e.g. `https://ccgate.example.com`.
    pub server_url: String,
    /// This device's id at the server.
    pub device_id: i64,
    /// Where the proxy listens; must be a loopback address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The OS account whose Claude Code goes through this proxy (the kill
    /// switch logs it out).
    #[serde(default)]
    pub os_user: Option<String>,
    /// That account's home directory as a system path.
    #[serde(default)]
    pub os_user_home: Option<PathBuf>,
    /// How long a prompt waits for the server before deciding locally.
    #[serde(default = "default_check_timeout_ms")]
    pub check_timeout_ms: u64,
    /// Largest request body read for classification; larger ones are refused.
    /// Anthropic's own limit for the Messages API is 32 MB.
    #[serde(default = "default_max_request_mb")]
    pub max_request_mb: u64,
    /// Request bodies held in memory at once, all requests together (at
    /// least one `max_request_mb`): a local process cannot push the daemon
    /// out of memory by opening many large requests.
    #[serde(default = "default_max_buffered_mb")]
    pub max_buffered_mb: u64,
    /// How long a request waits for room in that budget before a 503.
    #[serde(default = "default_buffer_wait_ms")]
    pub buffer_wait_ms: u64,
    /// Talk to a server on another machine over plain http (`ccgate setup
    /// --insecure`): the device token and every count cross the network
    /// readable and changeable by anyone on the path.
    #[serde(default)]
    pub allow_insecure_server: bool,
    /// The network's HTTP proxy (`http://HOST:PORT`), when this machine
    /// reaches the internet only through one (`ccgate setup --upstream-proxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_proxy: Option<String>,
    /// A CA (PEM) trusted besides the public roots, for a TLS-inspecting
    /// proxy (`ccgate setup --extra-ca`); root-owned, guarded like the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_ca: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))
}

fn default_check_timeout_ms() -> u64 {
    1500
}

fn default_max_request_mb() -> u64 {
    32
}

fn default_max_buffered_mb() -> u64 {
    256
}

fn default_buffer_wait_ms() -> u64 {
    20_000
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl ProxyConfig {
    pub fn new(server_url: impl Into<String>, device_id: i64) -> Self {
        Self {
            server_url: server_url.into(),
            device_id,
            listen: default_listen(),
            os_user: None,
            os_user_home: None,
            check_timeout_ms: default_check_timeout_ms(),
            max_request_mb: default_max_request_mb(),
            max_buffered_mb: default_max_buffered_mb(),
            buffer_wait_ms: default_buffer_wait_ms(),
            allow_insecure_server: false,
            upstream_proxy: None,
            extra_ca: None,
        }
    }

    /// Takes the tuning an admin set in an earlier config (setup re-runs).
    pub fn keep_tuning_of(&mut self, previous: &Self) {
        self.check_timeout_ms = previous.check_timeout_ms;
        self.max_request_mb = previous.max_request_mb;
        self.max_buffered_mb = previous.max_buffered_mb;
        self.buffer_wait_ms = previous.buffer_wait_ms;
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("config serializes");
        format!("# Written by ccgate setup. Protected: changes are reverted.\n{body}")
    }

    pub fn validate(&self) -> Result<(), String> {
        let url = self.server_url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            return Err(format!(
                "server_url {:?} must be an http:// or https:// URL",
                self.server_url
            ));
        }
        if plain_http_off_loopback(url) && !self.allow_insecure_server {
            return Err(format!(
                "server_url {url} is plain http to another machine: the device token and the counts would cross the network unprotected. Use the server's https:// URL, or accept the risk with `ccgate setup --insecure`"
            ));
        }
        if !self.listen.ip().is_loopback() {
            return Err(format!(
                "listen {} must be a loopback address: the proxy holds a CA key and must not serve the network",
                self.listen
            ));
        }
        if !(100..=30_000).contains(&self.check_timeout_ms) {
            return Err(format!(
                "check_timeout_ms {} must be between 100 and 30000",
                self.check_timeout_ms
            ));
        }
        if !(1..=1024).contains(&self.max_request_mb) {
            return Err(format!(
                "max_request_mb {} must be between 1 and 1024",
                self.max_request_mb
            ));
        }
        if !(1..=16 * 1024).contains(&self.max_buffered_mb) {
            return Err(format!(
                "max_buffered_mb {} must be between 1 and 16384",
                self.max_buffered_mb
            ));
        }
        if !(100..=300_000).contains(&self.buffer_wait_ms) {
            return Err(format!(
                "buffer_wait_ms {} must be between 100 and 300000",
                self.buffer_wait_ms
            ));
        }
        Ok(())
    }

    pub fn server_url(&self) -> &str {
        self.server_url.trim_end_matches('/')
    }

    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms)
    }

    pub fn max_request_bytes(&self) -> usize {
        usize::try_from(self.max_request_mb * 1024 * 1024).unwrap_or(usize::MAX)
    }

    /// The body budget in bytes: never less than one largest body.
    pub fn max_buffered_bytes(&self) -> usize {
        let mb = self.max_buffered_mb.max(self.max_request_mb);
        usize::try_from(mb * 1024 * 1024).unwrap_or(usize::MAX)
    }

    pub fn buffer_wait(&self) -> Duration {
        Duration::from_millis(self.buffer_wait_ms)
    }
}

/// Whether `url` is `http://` to a host other than this machine's loopback
/// (`localhost`, 127.0.0.0/8, `::1`). Unparseable URLs count as such.
pub fn plain_http_off_loopback(url: &str) -> bool {
    let Ok(url) = url::Url::parse(url.trim()) else {
        return true;
    };
    if url.scheme() != "http" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return true;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    host.parse::<std::net::IpAddr>()
        .map_or(true, |ip| !ip.to_canonical().is_loopback())
}

/// Whether `url`'s host is this machine (reached without a proxy).
pub fn on_this_machine(url: &str) -> bool {
    let host = url::Url::parse(url).ok().and_then(|url| {
        url.host_str()
            .map(|h| h.trim_matches(['[', ']']).to_owned())
    });
    host.is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
    })
}

/// Overrides read from the environment, for tests and diagnosis only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamOverrides {
    /// `CCGATE_UPSTREAM_CONNECT_TO=HOST:PORT`: dial this address for
    /// api.anthropic.com, keeping SNI and Host.
    pub connect_to: Option<String>,
    /// `CCGATE_UPSTREAM_CA_FILE`: an extra CA (PEM) trusted for the upstream.
    pub ca_file: Option<PathBuf>,
    /// Refuse to tunnel any host but api.anthropic.com (tests must not reach
    /// the internet). `CCGATE_TUNNEL_ONLY_ANTHROPIC=1`.
    pub refuse_other_hosts: bool,
}

impl UpstreamOverrides {
    pub fn from_env() -> Self {
        Self {
            connect_to: std::env::var("CCGATE_UPSTREAM_CONNECT_TO")
                .ok()
                .filter(|v| !v.is_empty()),
            ca_file: std::env::var_os("CCGATE_UPSTREAM_CA_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            refuse_other_hosts: std::env::var("CCGATE_TUNNEL_ONLY_ANTHROPIC")
                .is_ok_and(|v| v == "1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_written_config_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ProxyConfig::new("http://127.0.0.1:3000/", 7);
        config.os_user = Some("alice".into());
        let path = write(dir.path(), &config.to_toml());
        let loaded = ProxyConfig::load(&path).unwrap();
        assert_eq!(loaded, config);
        assert_eq!(loaded.server_url(), "http://127.0.0.1:3000");
    }

    #[test]
    fn only_loopback_counts_as_safe_for_plain_http() {
        for url in [
            "http://127.0.0.1:3000",
            "http://localhost",
            "http://[::1]:80/",
            "http://[::ffff:127.0.0.1]",
            "https://x.example",
        ] {
            assert!(!plain_http_off_loopback(url), "{url}");
        }
        for url in [
            "http://x.example",
            "http://10.0.0.5",
            "http://127.0.0.1.nip.io",
            "http://[::ffff:10.0.0.1]",
            "not a url",
        ] {
            assert!(plain_http_off_loopback(url), "{url}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "server_url = \"http://x:1\"\ndevice_id = 1\nlisten_port = 3\n",
                "unknown field",
            ),
            (
                "server_url = \"ftp://x\"\ndevice_id = 1\n",
                "must be an http",
            ),
            (
                "server_url = \"https://x.example\"\ndevice_id = 1\nlisten = \"0.0.0.0:47770\"\n",
                "loopback",
            ),
            (
                "server_url = \"https://x.example\"\ndevice_id = 1\ncheck_timeout_ms = 5\n",
                "between 100",
            ),
            (
                "server_url = \"http://ccgate.example\"\ndevice_id = 1\n",
                "--insecure",
            ),
            (
                "server_url = \"http://10.0.0.5:8080\"\ndevice_id = 1\n",
                "plain http",
            ),
            ("device_id = 1\n", "missing field"),
            ("server_url = [\n", "not valid"),
        ];
        for (text, expected) in cases {
            let error = ProxyConfig::load(&write(dir.path(), text))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        let accepted =
            "server_url = \"http://ccgate.example\"\ndevice_id = 1\nallow_insecure_server = true\n";
        assert!(ProxyConfig::load(&write(dir.path(), accepted)).is_ok());
        let missing = ProxyConfig::load(&dir.path().join("nope.toml")).unwrap_err();
        assert!(missing.to_string().contains("cannot read"));
    }
}
