//! One delivery attempt: validate, then hand over to the channel.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Serialize;

use crate::error::chain;
use crate::text::excerpt;
use crate::{ChannelConfig, ChannelKind, DeliveryError, InitError, Notification};

/// Per-attempt limit: a hung service must not hold the alert queue.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response body read; answers are a few bytes, a larger one is
/// not a real service and only its start matters for the error message.
const MAX_BODY: usize = 64 * 1024;

/// What the service answered when it accepted the notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub kind: ChannelKind,
    /// HTTP status, or the SMTP reply code of the accepted message.
    pub status: u16,
    /// The service's id for the message when it returns one (Matrix
    /// event_id, Pushover request, ntfy id) or the SMTP reply text.
    pub detail: Option<String>,
}

/// A TLS client configuration trusting webpki-roots (Mozilla's list).
fn built_in_roots() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Sends notifications. Cheap to clone; holds one connection pool.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pub(crate) http: reqwest::Client,
    pub(crate) timeout: Duration,
    /// The system's trust store could not be used: TLS trusts the built-in
    /// Mozilla roots (HTTP and SMTP alike).
    pub(crate) built_in_roots: bool,
}

impl Deliverer {
    /// With the default 10 s per attempt.
    pub fn new() -> Result<Self, InitError> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// With another per-attempt timeout (tests use a short one).
    pub fn with_timeout(timeout: Duration) -> Result<Self, InitError> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                // A webhook that redirects is misconfigured; following it would
                // turn a POST into a GET and could reach a host nobody checked.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("ccgate-alerts/", env!("CARGO_PKG_VERSION")))
        };
        let mut built_in = false;
        let http = match builder().build() {
            Ok(http) => http,
            // The platform verifier needs the system's trust store, which a
            // slim container image lacks: Mozilla's roots, built in, instead.
            Err(error) => {
                tracing::warn!(%error, "no system trust store: alerts trust the built-in Mozilla roots");
                built_in = true;
                builder()
                    .tls_backend_preconfigured(built_in_roots())
                    .build()
                    .map_err(InitError)?
            }
        };
        Ok(Deliverer {
            http,
            timeout,
            built_in_roots: built_in,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One attempt, no retry. The configuration is validated first, so a
    /// bad one fails as a permanent [`DeliveryError::Config`].
    pub async fn deliver(
        &self,
        channel: &ChannelConfig,
        n: &Notification,
    ) -> Result<Delivered, DeliveryError> {
        let kind = channel.kind();
        channel
            .validate()
            .map_err(|source| DeliveryError::Config { kind, source })?;
        let result = match channel {
            ChannelConfig::Discord(c) => c.send(self, n).await,
            ChannelConfig::Slack(c) => c.send(self, n).await,
            ChannelConfig::Pushover(c) => c.send(self, n).await,
            ChannelConfig::Matrix(c) => c.send(self, n).await,
            ChannelConfig::Ntfy(c) => c.send(self, n).await,
            ChannelConfig::Email(c) => c.send(self, n).await,
            ChannelConfig::Webhook(c) => c.send(self, n).await,
        };
        match &result {
            Ok(d) => {
                tracing::debug!(target = %channel.target(), status = d.status, "alert delivered")
            }
            Err(e) => {
                tracing::debug!(target = %channel.target(), error = %e, "alert delivery failed")
            }
        }
        result
    }
}

/// A complete HTTP answer, whatever its status.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<Duration>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error for a non-success answer.
    pub fn into_error(self, kind: ChannelKind) -> DeliveryError {
        DeliveryError::Status {
            kind,
            status: self.status,
            body: excerpt(&self.body),
            retry_after: self.retry_after,
        }
    }

    /// For services that give the wait of a 429 in its JSON body, more
    /// precisely than in the Retry-After header.
    pub fn with_body_retry_after(
        mut self,
        read: impl FnOnce(&serde_json::Value) -> Option<Duration>,
    ) -> Self {
        if self.status == 429 {
            let json = serde_json::from_str::<serde_json::Value>(&self.body).ok();
            if let Some(wait) = json.as_ref().and_then(read) {
                self.retry_after = Some(wait);
            }
        }
        self
    }

    /// Ok for 2xx, the status error otherwise.
    pub fn success(self, kind: ChannelKind) -> Result<Reply, DeliveryError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.into_error(kind))
        }
    }
}

/// Sends the request and reads the answer (bounded).
pub(crate) async fn execute(
    kind: ChannelKind,
    request: reqwest::RequestBuilder,
) -> Result<Reply, DeliveryError> {
    let http_error = |e: reqwest::Error| {
        // Webhook URLs carry their token in the path: never let one reach an
        // error message.
        let e = e.without_url();
        DeliveryError::Http {
            kind,
            detail: if e.is_timeout() {
                "timed out".to_owned()
            } else {
                chain(&e)
            },
            source: e,
        }
    };
    let mut response = request.send().await.map_err(http_error)?;
    let status = response.status().as_u16();
    let retry_after = parse_retry_after(response.headers());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_error)? {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_BODY {
            body.truncate(MAX_BODY);
            break;
        }
    }
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        retry_after,
    })
}

/// Retry-After as delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    retry_after_value(value, jiff::Timestamp::now())
}

pub(crate) fn retry_after_value(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return seconds(secs);
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let wait = at
        .as_millisecond()
        .saturating_sub(now.as_millisecond())
        .max(0);
    Some(Duration::from_millis(u64::try_from(wait).ok()?))
}

/// A non-negative, finite number of seconds (services send floats).
pub(crate) fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now: jiff::Timestamp = "2025-10-21T07:28:00Z".parse().unwrap();
        assert_eq!(
            retry_after_value("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after_value("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            retry_after_value("Tue, 21 Oct 2025 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date in the past means "now".
        assert_eq!(
            retry_after_value("Tue, 21 Oct 2025 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_value("-3", now), None);
        assert_eq!(retry_after_value("soon", now), None);
    }
}
