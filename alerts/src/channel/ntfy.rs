//! ntfy: `POST {server}/{topic}` with the message as plain text and the
//! rest in headers.

use base64::Engine as _;
use reqwest::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{check_secret, check_url, keep_optional_secret, redact_optional};
use crate::deliver::execute;
use crate::{
    ChannelKind, ConfigError, Delivered, Deliverer, DeliveryError, Notification, Secret, Severity,
};

pub const DEFAULT_SERVER: &str = "https://ntfy.sh";

/// ntfy turns a body over 4096 bytes into an attachment; stay under it.
const MAX_BODY_BYTES: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    #[serde(default = "default_server")]
    pub server: String,
    pub topic: String,
    /// Access token for a protected topic.
    #[serde(default)]
    pub token: Option<Secret>,
}

fn default_server() -> String {
    DEFAULT_SERVER.to_owned()
}

const KIND: ChannelKind = ChannelKind::Ntfy;

impl NtfyConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_url("server", &self.server)?;
        // ntfy's own topic rule.
        let topic_ok = (1..=64).contains(&self.topic.len())
            && self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !topic_ok {
            return Err(ConfigError::invalid(
                "topic",
                "1–64 characters of A–Z, a–z, 0–9, - and _",
            ));
        }
        if let Some(token) = &self.token {
            check_secret("token", token)?;
        }
        Ok(())
    }

    pub(crate) fn redact(&mut self) {
        redact_optional(&mut self.token);
    }

    /// The token only goes back to the server it was issued by.
    pub(crate) fn merge_secrets(&mut self, previous: &Self) {
        if self.server == previous.server {
            keep_optional_secret(&mut self.token, &previous.token);
        }
    }

    pub(crate) async fn send(
        &self,
        d: &Deliverer,
        n: &Notification,
    ) -> Result<Delivered, DeliveryError> {
        let url = format!(
            "{}/{}",
            self.server.trim().trim_end_matches('/'),
            self.topic
        );
        let (priority, tag) = match n.severity {
            Severity::Info => ("default", "information_source"),
            Severity::Warning => ("high", "warning"),
            Severity::Critical => ("urgent", "rotating_light"),
        };
        let mut request = d
            .http
            .post(url)
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("Title", header_text(&n.title))
            .header("Priority", priority)
            .header("Tags", tag)
            .body(body(n));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let reply = execute(KIND, request).await?.success(KIND)?;
        let id = serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        Ok(Delivered {
            kind: KIND,
            status: reply.status,
            detail: id,
        })
    }
}

/// The message text, cut on a char boundary below ntfy's attachment limit.
fn body(n: &Notification) -> String {
    let mut text = n.plain_text();
    if text.len() > MAX_BODY_BYTES {
        let mut end = MAX_BODY_BYTES - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// A header value: plain when it is printable ASCII, else an RFC 2047
/// encoded word, which ntfy decodes (HTTP headers cannot carry UTF-8).
/// Line breaks would end the header, so they become spaces.
pub(crate) fn header_text(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        one_line
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(one_line.as_bytes());
        format!("=?UTF-8?B?{b64}?=")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_encodes_non_ascii_only() {
        assert_eq!(header_text("Quota at 90%"), "Quota at 90%");
        assert_eq!(header_text("a\r\nb"), "a  b");
        assert_eq!(header_text("Café"), "=?UTF-8?B?Q2Fmw6k=?=");
    }

    #[test]
    fn body_stays_under_the_attachment_limit() {
        let n = Notification::new(Severity::Info, "t", "é".repeat(3000));
        let b = body(&n);
        assert!(b.len() <= MAX_BODY_BYTES);
        assert!(b.ends_with('…'));
    }
}
