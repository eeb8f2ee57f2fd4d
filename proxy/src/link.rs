//! The proxy's client of the agent API (`/api/agent/v1/*`).

use crate::egress::Egress;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use ccgate_quota::wire::{
    AGENT_API_PREFIX, ApiError, CheckRequest, CheckResponse, CredentialResponse, EventsRequest,
    EventsResponse, SyncRequest, SyncResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::fsutil::write_atomic;

/// Timeout of ordinary calls (sync, events); checks have their own.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    #[error("cannot reach the ccgate server: {0}")]
    Unreachable(String),
    #[error(
        "the ccgate server did not accept this device's token (device removed or token revoked)"
    )]
    Unauthorized,
    /// The server is overloaded (or its disk full) and asked to come back.
    #[error("the ccgate server is busy ({status}), retry in {retry_after:?}: {message}")]
    Busy {
        status: u16,
        retry_after: Duration,
        message: String,
    },
    #[error("the ccgate server refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("the ccgate server sent an unreadable answer: {0}")]
    BadAnswer(String),
    #[error(
        "the ccgate server at {0} is reached over plain http: ccgate receives the team credential only over https (or on loopback)"
    )]
    Insecure(String),
}

impl LinkError {
    /// Whether the server was reached and answered (as opposed to down).
    pub fn server_answered(&self) -> bool {
        !matches!(self, Self::Unreachable(_))
    }

    /// How long the server asked to be left alone (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

pub use ccgate_machine::config::on_this_machine;

/// The longest `Retry-After` obeyed: a server (or a proxy in front of it)
/// asking for hours would otherwise silence the device.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// `Retry-After` in seconds (the HTTP-date form is not used by ccgate-server).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// Idle connections to the server are closed before the server's own idle
/// timeout (10 s for a connection that has not sent a request), so a
/// request never goes out on a connection the server is closing.
const POOL_IDLE: Duration = Duration::from_secs(5);
/// The largest release file downloaded (a debug build is well under it).
const MAX_DOWNLOAD_BYTES: u64 = 512 << 20;
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

pub struct ServerLink {
    http: reqwest::Client,
    base: String,
    token: RwLock<String>,
    token_file: PathBuf,
}

impl ServerLink {
    pub fn new(server_url: &str, token: String, token_file: PathBuf) -> Self {
        Self::through(server_url, token, token_file, &Egress::default(), &[])
    }

    /// A link that reaches a server off this machine through `egress`'s
    /// proxy, trusting `extra_roots` (PEM certificates) besides the public ones.
    pub fn through(
        server_url: &str,
        token: String,
        token_file: PathBuf,
        egress: &Egress,
        extra_roots: &[reqwest::Certificate],
    ) -> Self {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .user_agent(concat!("ccgate-proxy/", env!("CARGO_PKG_VERSION")));
        // Only the configured proxy counts, never the environment's.
        builder = match egress.proxy_url() {
            Some(url) if !on_this_machine(server_url) => {
                builder.proxy(reqwest::Proxy::all(&url).expect("Egress gives a valid proxy URL"))
            }
            _ => builder.no_proxy(),
        };
        for root in extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        let http = builder.build().expect("HTTP client builds");
        Self {
            http,
            base: format!("{}{AGENT_API_PREFIX}", server_url.trim_end_matches('/')),
            token: RwLock::new(token),
            token_file,
        }
    }

    pub fn server_url(&self) -> &str {
        self.base.trim_end_matches(AGENT_API_PREFIX)
    }

    fn token(&self) -> String {
        self.token.read().expect("token lock").clone()
    }

    /// Stores a rotated device token (0600) and uses it from now on.
    pub fn replace_token(&self, token: &str) -> std::io::Result<()> {
        write_atomic(&self.token_file, token.as_bytes(), 0o600)?;
        *self.token.write().expect("token lock") = token.to_owned();
        Ok(())
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, LinkError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token())
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| LinkError::Unreachable(error_chain(&e)))?;
        read_answer(response).await
    }

    pub async fn check(
        &self,
        request: &CheckRequest,
        timeout: Duration,
    ) -> Result<CheckResponse, LinkError> {
        self.post("/check", request, timeout).await
    }

    pub async fn sync(&self, request: &SyncRequest) -> Result<SyncResponse, LinkError> {
        self.post("/sync", request, CALL_TIMEOUT).await
    }

    pub async fn send_events(&self, request: &EventsRequest) -> Result<EventsResponse, LinkError> {
        self.post("/events", request, CALL_TIMEOUT).await
    }

    /// Whether secrets may travel on this link: https, or plain http to a
    /// loopback address (the same machine).
    pub fn carries_secrets(&self) -> bool {
        let url = self.server_url();
        if url.starts_with("https://") {
            return true;
        }
        let host = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .map(|authority| match authority.rsplit_once(':') {
                Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
                _ => authority,
            })
            .unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Fetches the team credential (team-credential mode only).
    pub async fn credential(&self) -> Result<CredentialResponse, LinkError> {
        if !self.carries_secrets() {
            return Err(LinkError::Insecure(self.server_url().to_owned()));
        }
        self.post("/credential", &serde_json::json!({}), CALL_TIMEOUT)
            .await
    }

    /// Opens the live stream (server-sent events); the caller reads it.
    /// A file of the server's agent release (`/downloads/<file>`).
    pub async fn download(&self, file: &str) -> Result<bytes::Bytes, LinkError> {
        let response = self
            .http
            .get(format!("{}/downloads/{file}", self.server_url()))
            .timeout(DOWNLOAD_TIMEOUT)
            .send()
            .await
            .map_err(|e| LinkError::Unreachable(error_chain(&e)))?;
        let response = check_status(response).await?;
        if response.content_length().unwrap_or(0) > MAX_DOWNLOAD_BYTES {
            return Err(LinkError::BadAnswer(format!(
                "{file} is larger than {MAX_DOWNLOAD_BYTES} bytes"
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| LinkError::Unreachable(error_chain(&e)))?;
        if bytes.len() as u64 > MAX_DOWNLOAD_BYTES {
            return Err(LinkError::BadAnswer(format!(
                "{file} is larger than {MAX_DOWNLOAD_BYTES} bytes"
            )));
        }
        Ok(bytes)
    }

    pub async fn open_stream(&self) -> Result<reqwest::Response, LinkError> {
        let response = self
            .http
            .get(format!("{}/stream", self.base))
            .bearer_auth(self.token())
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| LinkError::Unreachable(error_chain(&e)))?;
        check_status(response).await
    }
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, LinkError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(LinkError::Unauthorized);
    }
    let asked_wait = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ApiError>(&text)
        .map(|e| e.error)
        .unwrap_or_else(|_| text.chars().take(200).collect());
    let busy = status == reqwest::StatusCode::SERVICE_UNAVAILABLE
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    if let (true, Some(retry_after)) = (busy, asked_wait) {
        return Err(LinkError::Busy {
            status: status.as_u16(),
            retry_after,
            message,
        });
    }
    if status.is_server_error() {
        // A proxy in front of a dead server answers 502/503: as good as down.
        return Err(LinkError::Unreachable(format!("{status}: {message}")));
    }
    Err(LinkError::Rejected {
        status: status.as_u16(),
        message,
    })
}

async fn read_answer<R: DeserializeOwned>(response: reqwest::Response) -> Result<R, LinkError> {
    let response = check_status(response).await?;
    let bytes = response
        .bytes()
        .await
        .map_err(|e| LinkError::Unreachable(error_chain(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| LinkError::BadAnswer(e.to_string()))
}

pub use ccgate_quota::error_chain;

#[cfg(test)]
mod tests {
    use super::*;

    async fn status_of(status: u16, retry_after: Option<&str>) -> LinkError {
        let mut response = http::Response::builder().status(status);
        if let Some(value) = retry_after {
            response = response.header("retry-after", value);
        }
        let response = response.body(r#"{"error":"busy"}"#.to_owned()).unwrap();
        check_status(reqwest::Response::from(response))
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn a_busy_server_is_left_alone_as_long_as_it_asks() {
        let busy = status_of(503, Some("2")).await;
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
        assert!(busy.server_answered());
        let slow_down = status_of(429, Some("5")).await;
        assert_eq!(slow_down.retry_after(), Some(Duration::from_secs(5)));
        // Hours are not obeyed: the device would go quiet for them.
        let greedy = status_of(503, Some("86400")).await;
        assert_eq!(greedy.retry_after(), Some(MAX_RETRY_AFTER));
        // Without the header (or with a date) a 503 is a server down.
        let down = status_of(503, None).await;
        assert!(matches!(down, LinkError::Unreachable(_)), "{down:?}");
        let dated = status_of(503, Some("Wed, 21 Oct 2026 07:28:00 GMT")).await;
        assert_eq!(dated.retry_after(), None);
    }

    #[test]
    fn secrets_travel_only_over_https_or_loopback() {
        let link = |url: &str| ServerLink::new(url, "t".into(), PathBuf::from("/nonexistent"));
        for url in [
            "https://ccgate.example.com",
            "http://127.0.0.1:3000",
            "http://localhost:3000/",
            "http://[::1]:3000",
        ] {
            assert!(link(url).carries_secrets(), "{url}");
        }
        for url in [
            "http://ccgate.example.com",
            "http://10.0.0.5:3000",
            "http://127.0.0.1.example.com",
        ] {
            assert!(!link(url).carries_secrets(), "{url}");
        }
    }
}
