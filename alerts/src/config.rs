//! The channel configuration an admin edits: one tagged enum, validation,
//! and secret redaction for the API.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::channel::{
    DiscordConfig, EmailConfig, MatrixConfig, NtfyConfig, PushoverConfig, SlackConfig,
    WebhookConfig,
};
use crate::{ConfigError, Secret};

/// Where one alert goes. Serialised as `{"kind": "discord", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelConfig {
    Discord(DiscordConfig),
    Slack(SlackConfig),
    Pushover(PushoverConfig),
    Matrix(MatrixConfig),
    Ntfy(NtfyConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
}

/// The variant of a [`ChannelConfig`], without its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Discord,
    Slack,
    Pushover,
    Matrix,
    Ntfy,
    Email,
    Webhook,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Discord => "discord",
            ChannelKind::Slack => "slack",
            ChannelKind::Pushover => "pushover",
            ChannelKind::Matrix => "matrix",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ChannelConfig {
    pub fn kind(&self) -> ChannelKind {
        match self {
            ChannelConfig::Discord(_) => ChannelKind::Discord,
            ChannelConfig::Slack(_) => ChannelKind::Slack,
            ChannelConfig::Pushover(_) => ChannelKind::Pushover,
            ChannelConfig::Matrix(_) => ChannelKind::Matrix,
            ChannelConfig::Ntfy(_) => ChannelKind::Ntfy,
            ChannelConfig::Email(_) => ChannelKind::Email,
            ChannelConfig::Webhook(_) => ChannelKind::Webhook,
        }
    }

    /// Checks everything that can be checked without sending: URLs (https
    /// except loopback), required fields, leftover redaction markers, email
    /// addresses, the webhook template.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            ChannelConfig::Discord(c) => c.validate(),
            ChannelConfig::Slack(c) => c.validate(),
            ChannelConfig::Pushover(c) => c.validate(),
            ChannelConfig::Matrix(c) => c.validate(),
            ChannelConfig::Ntfy(c) => c.validate(),
            ChannelConfig::Email(c) => c.validate(),
            ChannelConfig::Webhook(c) => c.validate(),
        }
    }

    /// Names of the fields holding secrets (`headers` means every header
    /// value), so a form can render them as password inputs.
    pub fn secret_fields(&self) -> &'static [&'static str] {
        match self {
            ChannelConfig::Discord(_) | ChannelConfig::Slack(_) => &["webhook_url"],
            ChannelConfig::Pushover(_) => &["token", "user"],
            ChannelConfig::Matrix(_) => &["access_token"],
            ChannelConfig::Ntfy(_) => &["token"],
            ChannelConfig::Email(_) => &["password"],
            ChannelConfig::Webhook(_) => &["url", "headers"],
        }
    }

    /// A copy safe to return from the API: every secret replaced by
    /// [`crate::REDACTED`].
    pub fn redacted(&self) -> ChannelConfig {
        let mut copy = self.clone();
        match &mut copy {
            ChannelConfig::Discord(c) => c.redact(),
            ChannelConfig::Slack(c) => c.redact(),
            ChannelConfig::Pushover(c) => c.redact(),
            ChannelConfig::Matrix(c) => c.redact(),
            ChannelConfig::Ntfy(c) => c.redact(),
            ChannelConfig::Email(c) => c.redact(),
            ChannelConfig::Webhook(c) => c.redact(),
        }
        copy
    }

    /// After an admin edits a redacted copy: every secret still equal to the
    /// marker takes the previous value. A secret bound to a destination
    /// (a token to its server, header values to their URL) is only carried
    /// over while that destination is unchanged, so an edit cannot send an
    /// old token to a new host; it then stays redacted and [`Self::validate`]
    /// asks for it. Nothing is carried across different kinds.
    pub fn merge_secrets(&mut self, previous: &ChannelConfig) {
        match (self, previous) {
            (ChannelConfig::Discord(c), ChannelConfig::Discord(p)) => c.merge_secrets(p),
            (ChannelConfig::Slack(c), ChannelConfig::Slack(p)) => c.merge_secrets(p),
            (ChannelConfig::Pushover(c), ChannelConfig::Pushover(p)) => c.merge_secrets(p),
            (ChannelConfig::Matrix(c), ChannelConfig::Matrix(p)) => c.merge_secrets(p),
            (ChannelConfig::Ntfy(c), ChannelConfig::Ntfy(p)) => c.merge_secrets(p),
            (ChannelConfig::Email(c), ChannelConfig::Email(p)) => c.merge_secrets(p),
            (ChannelConfig::Webhook(c), ChannelConfig::Webhook(p)) => c.merge_secrets(p),
            _ => {}
        }
    }

    /// A description without secrets for logs and lists, e.g.
    /// `discord (discord.com)` or `email (smtp.example.org:587)`.
    pub fn target(&self) -> String {
        let host = match self {
            ChannelConfig::Discord(c) => url_host(c.webhook_url.expose()),
            ChannelConfig::Slack(c) => url_host(c.webhook_url.expose()),
            ChannelConfig::Pushover(c) => url_host(&c.api_url),
            ChannelConfig::Matrix(c) => url_host(&c.homeserver),
            ChannelConfig::Ntfy(c) => format!("{}/{}", url_host(&c.server), c.topic),
            ChannelConfig::Email(c) => format!("{}:{}", c.host, c.port),
            ChannelConfig::Webhook(c) => url_host(c.url.expose()),
        };
        format!("{} ({host})", self.kind())
    }
}

fn url_host(value: &str) -> String {
    Url::parse(value)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// A required text field.
pub(crate) fn check_nonempty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::Empty {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// A required secret that was not left as the redaction marker.
pub(crate) fn check_secret(field: &str, value: &Secret) -> Result<(), ConfigError> {
    if value.is_redacted() {
        return Err(ConfigError::Redacted {
            field: field.to_owned(),
        });
    }
    check_nonempty(field, value.expose())
}

/// An endpoint URL: https, or plain http to a loopback host (test servers).
pub(crate) fn check_url(field: &str, value: &str) -> Result<Url, ConfigError> {
    check_nonempty(field, value)?;
    let url = Url::parse(value.trim()).map_err(|source| ConfigError::InvalidUrl {
        field: field.to_owned(),
        source,
    })?;
    let ok = match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(host)) => is_loopback(&host),
        _ => false,
    };
    if !ok {
        return Err(ConfigError::InsecureUrl {
            field: field.to_owned(),
        });
    }
    Ok(url)
}

pub(crate) fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// The same test for a bare host name (SMTP), bracketed IPv6 allowed.
pub(crate) fn is_loopback_name(host: &str) -> bool {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// The previous secret when the edited one is the marker.
pub(crate) fn keep_secret(edited: &mut Secret, previous: &Secret) {
    if edited.is_redacted() {
        *edited = previous.clone();
    }
}

/// The same for an optional secret.
pub(crate) fn keep_optional_secret(edited: &mut Option<Secret>, previous: &Option<Secret>) {
    if let (Some(e), Some(p)) = (edited.as_mut(), previous) {
        keep_secret(e, p);
    }
}

/// The marker in place of an optional secret that is set.
pub(crate) fn redact_optional(secret: &mut Option<Secret>) {
    if let Some(s) = secret.as_mut() {
        *s = Secret::redacted();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_https_except_loopback() {
        assert!(check_url("u", "https://discord.com/api/webhooks/1/x").is_ok());
        assert!(check_url("u", "http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("u", "http://127.3.4.5/x").is_ok());
        assert!(check_url("u", "http://[::1]:9/x").is_ok());
        assert!(check_url("u", "http://LOCALHOST/x").is_ok());
        for bad in [
            "http://example.com/x",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(check_url("u", bad), Err(ConfigError::InsecureUrl { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            check_url("u", "not a url"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("u", "  "),
            Err(ConfigError::Empty { .. })
        ));
    }

    #[test]
    fn loopback_names() {
        assert!(is_loopback_name("127.0.0.1"));
        assert!(is_loopback_name("::1"));
        assert!(is_loopback_name("[::1]"));
        assert!(is_loopback_name("localhost"));
        assert!(!is_loopback_name("smtp.example.org"));
        assert!(!is_loopback_name("192.168.1.1"));
        assert!(!is_loopback_name("localhost.example.org"));
    }
}
