//! Matrix client-server API: `PUT /_matrix/client/v3/rooms/{roomId}/send/
//! m.room.message/{txnId}`. The txnId comes from the notification's id, so a
//! retry (or a re-delivery after a restart) is deduplicated by the
//! homeserver instead of posting twice.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{check_nonempty, check_secret, check_url, keep_secret};
use crate::deliver::{execute, seconds};
use crate::text::html_escape;
use crate::{ChannelKind, ConfigError, Delivered, Deliverer, DeliveryError, Notification, Secret};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatrixConfig {
    /// Client-server API base, e.g. `https://matrix.example.org`.
    pub homeserver: String,
    pub access_token: Secret,
    /// `!opaque:server` (or `!opaque` in room version 12); an alias does
    /// not work with this endpoint.
    pub room_id: String,
}

const KIND: ChannelKind = ChannelKind::Matrix;

impl MatrixConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_url("homeserver", &self.homeserver)?;
        check_secret("access_token", &self.access_token)?;
        check_nonempty("room_id", &self.room_id)?;
        if !self.room_id.starts_with('!')
            || self.room_id.len() < 2
            || self.room_id.chars().any(char::is_whitespace)
        {
            return Err(ConfigError::invalid(
                "room_id",
                "a room ID starts with '!' (a #alias is not accepted here)",
            ));
        }
        Ok(())
    }

    pub(crate) fn redact(&mut self) {
        self.access_token = Secret::redacted();
    }

    /// The token only goes back to the homeserver it was issued by.
    pub(crate) fn merge_secrets(&mut self, previous: &Self) {
        if self.homeserver == previous.homeserver {
            keep_secret(&mut self.access_token, &previous.access_token);
        }
    }

    pub(crate) fn send_url(&self, n: &Notification) -> String {
        format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
            self.homeserver.trim().trim_end_matches('/'),
            encode_segment(&self.room_id),
            txn_id(n),
        )
    }

    pub(crate) async fn send(
        &self,
        d: &Deliverer,
        n: &Notification,
    ) -> Result<Delivered, DeliveryError> {
        let request = d
            .http
            .put(self.send_url(n))
            .bearer_auth(self.access_token.expose())
            .json(&payload(n));
        // M_LIMIT_EXCEEDED carries retry_after_ms in the body.
        let reply = execute(KIND, request)
            .await?
            .with_body_retry_after(|v| {
                v["retry_after_ms"]
                    .as_f64()
                    .and_then(|ms| seconds(ms / 1000.0))
            })
            .success(KIND)?;
        let event_id = serde_json::from_str::<Value>(&reply.body)
            .ok()
            .and_then(|v| v["event_id"].as_str().map(str::to_owned));
        Ok(Delivered {
            kind: KIND,
            status: reply.status,
            detail: event_id,
        })
    }
}

/// Same notification, same transaction.
pub(crate) fn txn_id(n: &Notification) -> String {
    format!("ccgate-{}", n.id.simple())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so `!`
/// and `:` of a room ID travel as `%21` and `%3A` as the spec's examples do.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn payload(n: &Notification) -> Value {
    let mut html = format!("<strong>{}</strong>", html_escape(&n.title));
    for line in n.message.lines() {
        html.push_str("<br>");
        html.push_str(&html_escape(line));
    }
    let details = n.detail_lines();
    if !details.is_empty() {
        html.push_str("<br><em>");
        html.push_str(&html_escape(&details.join(" · ")));
        html.push_str("</em>");
    }
    json!({
        "msgtype": "m.text",
        "body": format!("{}\n{}", n.title, n.plain_text()),
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_id_is_percent_encoded() {
        assert_eq!(encode_segment("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(encode_segment("!a/b"), "%21a%2Fb");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn url_joins_without_double_slash() {
        let c = MatrixConfig {
            homeserver: "https://m.example.org/".into(),
            access_token: "t".into(),
            room_id: "!r:m.example.org".into(),
        };
        let n = Notification::new(crate::Severity::Info, "t", "m");
        assert_eq!(
            c.send_url(&n),
            format!(
                "https://m.example.org/_matrix/client/v3/rooms/%21r%3Am.example.org/send/m.room.message/ccgate-{}",
                n.id.simple()
            )
        );
    }
}
