//! Configuration and delivery errors.

use std::time::Duration;

use crate::ChannelKind;

/// Why a channel configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("`{field}` is empty")]
    Empty { field: String },
    #[error("`{field}` still holds the redaction marker: enter the secret again")]
    Redacted { field: String },
    #[error("`{field}` is not a valid URL: {source}")]
    InvalidUrl {
        field: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "`{field}` must be an https:// URL with a host (plain http only for 127.0.0.1, ::1 or localhost)"
    )]
    InsecureUrl { field: String },
    #[error("`{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
    #[error("`{field}` is not a valid email address: {source}")]
    Address {
        field: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error(
        "SMTP security `none` sends mail and password in clear: only allowed for a loopback host, not `{host}`"
    )]
    PlainSmtpNotLoopback { host: String },
    #[error(
        "`body_template` is not valid JSON once its placeholders are filled ({case}): {source}"
    )]
    Template {
        case: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The HTTP client could not be set up (TLS roots, crypto provider).
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client could not be built: {0}")]
pub struct InitError(#[source] pub reqwest::Error);

/// One failed delivery attempt. [`DeliveryError::is_retryable`] tells the
/// retry loop whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{kind}: invalid configuration: {source}")]
    Config {
        kind: ChannelKind,
        #[source]
        source: ConfigError,
    },
    /// The service answered with a non-success status.
    #[error("{kind}: HTTP {status}: {body}")]
    Status {
        kind: ChannelKind,
        status: u16,
        /// Excerpt of the response body.
        body: String,
        /// What the service asked us to wait (Retry-After or its JSON body).
        retry_after: Option<Duration>,
    },
    /// A success status whose body says the message was not accepted
    /// (Pushover's `"status":0`).
    #[error("{kind}: HTTP {status} but the service refused the message: {body}")]
    Refused {
        kind: ChannelKind,
        status: u16,
        body: String,
    },
    /// No answer: connection refused, timeout, TLS failure, cut-off body.
    /// `detail` is the error chain without the URL (webhook URLs are secrets).
    #[error("{kind}: {detail}")]
    Http {
        kind: ChannelKind,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("email: {detail}")]
    Smtp {
        detail: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("email: the message could not be built: {source}")]
    Message {
        #[source]
        source: lettre::error::Error,
    },
    #[error("{kind}: no answer within {timeout:?}")]
    Timeout {
        kind: ChannelKind,
        timeout: Duration,
    },
}

impl DeliveryError {
    pub fn kind(&self) -> ChannelKind {
        match self {
            DeliveryError::Config { kind, .. }
            | DeliveryError::Status { kind, .. }
            | DeliveryError::Refused { kind, .. }
            | DeliveryError::Http { kind, .. }
            | DeliveryError::Timeout { kind, .. } => *kind,
            DeliveryError::Smtp { .. } | DeliveryError::Message { .. } => ChannelKind::Email,
        }
    }

    /// True for failures that may pass later: 5xx, 429, 408, timeouts,
    /// connection errors, SMTP 4xx. False for bad configuration and for
    /// rejections that will repeat (4xx, SMTP 5xx, missing STARTTLS).
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Config { .. }
            | DeliveryError::Refused { .. }
            | DeliveryError::Message { .. } => false,
            DeliveryError::Status { status, .. } => {
                *status == 429 || *status == 408 || *status >= 500
            }
            // A request that could not even be built, or a redirect we do not
            // follow, fails the same way every time.
            DeliveryError::Http { source, .. } => !(source.is_builder() || source.is_redirect()),
            // 4xx replies and broken connections may pass later; 5xx replies,
            // TLS failures and client-side refusals (no STARTTLS offered, no
            // usable AUTH mechanism) will not.
            DeliveryError::Smtp { source, .. } => {
                source.is_transient()
                    || !(source.is_permanent()
                        || source.is_client()
                        || source.is_tls()
                        || source.is_response())
            }
            DeliveryError::Timeout { .. } => true,
        }
    }

    /// The HTTP status (or SMTP reply code) the service answered with.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Status { status, .. } | DeliveryError::Refused { status, .. } => {
                Some(*status)
            }
            DeliveryError::Smtp { source, .. } => source.status().map(u16::from),
            _ => None,
        }
    }

    /// The start of the service's answer, when there was one.
    pub fn body_excerpt(&self) -> Option<&str> {
        match self {
            DeliveryError::Status { body, .. } | DeliveryError::Refused { body, .. } => Some(body),
            _ => None,
        }
    }

    /// How long the service asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The error chain as one line, so logs show "connection refused" rather
/// than reqwest's bare "error sending request".
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    // Bounded: error chains are short, but a cyclic one must not hang us.
    for _ in 0..8 {
        let Some(e) = cur else { break };
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = e.source();
    }
    text
}
