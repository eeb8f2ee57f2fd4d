//! The installer's calls to the control server: registering the device,
//! and the checks doctor makes (reachable, token accepted, clock).

use std::path::Path;
use std::time::Duration;

use ccgate_quota::wire::{
    AGENT_API_PREFIX, ApiError, DeviceInfo, RegisterRequest, RegisterResponse, SyncRequest,
    SyncResponse,
};
use jiff::Timestamp;

use crate::error::{InstallError, Result};

pub struct ServerClient {
    http: reqwest::Client,
    url: String,
}

/// What the token probe found.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCheck {
    Accepted { server_time: Timestamp },
    Refused,
}

impl ServerClient {
    pub fn new(url: &str) -> Result<Self> {
        Self::through(url, None, None)
    }

    /// A client that reaches the server through the network's HTTP proxy
    /// (`http://HOST:PORT`) and trusts `extra_ca` (PEM) besides the public
    /// roots, as the daemon will.
    pub fn through(url: &str, proxy: Option<&str>, extra_ca: Option<&Path>) -> Result<Self> {
        let url = url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(InstallError::Invalid(format!(
                "--server {url:?} must be the ccgate server's http:// or https:// URL"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("ccgate/", env!("CARGO_PKG_VERSION")));
        // Like the daemon: a server on this machine is reached directly.
        let proxy = proxy.filter(|_| !ccgate_machine::config::on_this_machine(&url));
        builder =
            match proxy {
                Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy).map_err(|e| {
                    InstallError::Invalid(format!("--upstream-proxy {proxy:?}: {e}"))
                })?),
                None => builder.no_proxy(),
            };
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path).map_err(|e| {
                InstallError::Invalid(format!("--extra-ca {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                InstallError::Invalid(format!(
                    "--extra-ca {}: not PEM certificates: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(InstallError::Invalid(format!(
                    "--extra-ca {}: no certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().expect("HTTP client builds");
        Ok(Self { http, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn unreachable(&self, error: &reqwest::Error) -> InstallError {
        InstallError::Unreachable {
            url: self.url.clone(),
            detail: ccgate_proxy::link::error_chain(error),
        }
    }

    /// Redeems an install code for a device id and token.
    pub async fn register(&self, code: &str, device: DeviceInfo) -> Result<RegisterResponse> {
        let request = RegisterRequest {
            code: code.trim().to_owned(),
            device,
        };
        let response = self
            .http
            .post(format!("{}{AGENT_API_PREFIX}/register", self.url))
            .json(&request)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.answer(response, "the install code").await
    }

    /// `GET /healthz`: whether the server answers at all.
    pub async fn healthy(&self) -> Result<()> {
        let response = self
            .http
            .get(format!("{}/healthz", self.url))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(InstallError::Unreachable {
                url: self.url.clone(),
                detail: format!("/healthz answered {}", response.status()),
            })
        }
    }

    /// Whether the server accepts `token` (a sync, which changes nothing).
    pub async fn check_token(&self, token: &str) -> Result<TokenCheck> {
        let response = self
            .http
            .post(format!("{}{AGENT_API_PREFIX}/sync", self.url))
            .bearer_auth(token)
            .json(&SyncRequest::default())
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Ok(TokenCheck::Refused);
        }
        let sync: SyncResponse = self.answer(response, "the device token").await?;
        Ok(TokenCheck::Accepted {
            server_time: sync.server_time,
        })
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
        what: &'static str,
    ) -> Result<T> {
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            return serde_json::from_str(&text).map_err(|e| InstallError::Unreachable {
                url: self.url.clone(),
                detail: format!("it answered something that is not a ccgate server's reply: {e}"),
            });
        }
        let (message, code) = match serde_json::from_str::<ApiError>(&text) {
            Ok(error) => (error.error, error.code),
            Err(_) => (text.chars().take(200).collect(), None),
        };
        if status.is_server_error() {
            return Err(InstallError::Unreachable {
                url: self.url.clone(),
                detail: format!("{status}: {message}"),
            });
        }
        Err(InstallError::Refused {
            what,
            status: status.as_u16(),
            code,
            message,
        })
    }
}
