//! A developer machine under a temp root prefix: registered with the server,
//! the proxy's config and token written as setup would, and the real
//! ccgate-proxy daemon started in-process against the fake upstream.

use std::path::Path;

use ccgate_proxy::config::{ProxyConfig, UpstreamOverrides};
use ccgate_proxy::daemon::{self, DaemonOptions, RunningDaemon};
use ccgate_proxy::fsutil::{create_dir_with_mode, write_atomic};
use ccgate_proxy::paths::{Paths, Platform};
use ccgate_quota::wire::{DeviceInfo, RegisterRequest, RegisterResponse};
use tokio::net::TcpListener;

use crate::upstream::FakeAnthropic;

pub struct TestMachine {
    pub paths: Paths,
    pub device_id: i64,
    _root: tempfile::TempDir,
}

impl TestMachine {
    /// Registers a device with `code` at `server_url` and writes the files.
    pub async fn register(server_url: &str, code: &str) -> Self {
        let root = tempfile::tempdir().expect("temp root");
        let paths = Paths::new(root.path(), Platform::Linux);
        let request = RegisterRequest {
            code: code.to_owned(),
            device: DeviceInfo {
                hostname: "devbox".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                os_user: Some("alice".into()),
                agent_version: "test".into(),
                agent_build: None,
                ..DeviceInfo::default()
            },
        };
        let response = reqwest::Client::new()
            .post(format!("{server_url}/api/agent/v1/register"))
            .json(&request)
            .send()
            .await
            .expect("register");
        assert!(
            response.status().is_success(),
            "register: {}",
            response.status()
        );
        let registered: RegisterResponse = response.json().await.expect("register answer");
        Self::write_files(
            &paths,
            server_url,
            registered.device_id,
            &registered.device_token,
        );
        Self {
            paths,
            device_id: registered.device_id,
            _root: root,
        }
    }

    /// A machine whose files point at a server that never answered.
    pub fn unregistered(server_url: &str) -> Self {
        let root = tempfile::tempdir().expect("temp root");
        let paths = Paths::new(root.path(), Platform::Linux);
        Self::write_files(&paths, server_url, 1, &"ab".repeat(32));
        Self {
            paths,
            device_id: 1,
            _root: root,
        }
    }

    fn write_files(paths: &Paths, server_url: &str, device_id: i64, token: &str) {
        create_dir_with_mode(&paths.state_dir(), 0o700).unwrap();
        let mut config = ProxyConfig::new(server_url, device_id);
        config.check_timeout_ms = 1000;
        config.os_user = Some("alice".into());
        config.os_user_home = Some("/home/alice".into());
        write_atomic(&paths.config_file(), config.to_toml().as_bytes(), 0o600).unwrap();
        write_atomic(&paths.device_token(), token.as_bytes(), 0o600).unwrap();
    }

    pub fn root(&self) -> &Path {
        self.paths.root()
    }

    /// Points the server URL somewhere else (an outage relay, say).
    pub fn set_server_url(&self, server_url: &str) {
        self.edit_config(|config| config.server_url = server_url.to_owned());
    }

    /// Changes the proxy's config file (before the proxy starts).
    pub fn edit_config(&self, edit: impl FnOnce(&mut ProxyConfig)) {
        let mut config = ProxyConfig::load(&self.paths.config_file()).unwrap();
        edit(&mut config);
        write_atomic(
            &self.paths.config_file(),
            config.to_toml().as_bytes(),
            0o600,
        )
        .unwrap();
    }

    pub async fn start_proxy(&self, upstream: &FakeAnthropic) -> RunningDaemon {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut options = DaemonOptions::new(self.paths.clone());
        options.overrides = UpstreamOverrides {
            connect_to: Some(upstream.connect_to()),
            ca_file: Some(upstream.ca_file()),
            refuse_other_hosts: true,
        };
        daemon::start(options, Some(listener))
            .await
            .expect("proxy starts")
    }
}
