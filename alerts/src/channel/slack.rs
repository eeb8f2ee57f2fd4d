//! Slack incoming webhook: `POST {webhook_url}` with text and Block Kit
//! blocks; Slack answers `ok`. Mattermost and others accept the same.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{check_secret, check_url, keep_secret};
use crate::deliver::execute;
use crate::text::{escape_truncated, severity_emoji, slack_char, truncate};
use crate::{ChannelKind, ConfigError, Delivered, Deliverer, DeliveryError, Notification, Secret};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// `https://hooks.slack.com/services/T…/B…/…`: a bearer secret.
    pub webhook_url: Secret,
}

const KIND: ChannelKind = ChannelKind::Slack;

impl SlackConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_secret("webhook_url", &self.webhook_url)?;
        check_url("webhook_url", self.webhook_url.expose())?;
        Ok(())
    }

    pub(crate) fn redact(&mut self) {
        self.webhook_url = Secret::redacted();
    }

    pub(crate) fn merge_secrets(&mut self, previous: &Self) {
        keep_secret(&mut self.webhook_url, &previous.webhook_url);
    }

    pub(crate) async fn send(
        &self,
        d: &Deliverer,
        n: &Notification,
    ) -> Result<Delivered, DeliveryError> {
        let request = d.http.post(self.webhook_url.expose()).json(&payload(n));
        let reply = execute(KIND, request).await?.success(KIND)?;
        Ok(Delivered {
            kind: KIND,
            status: reply.status,
            detail: None,
        })
    }
}

/// `text` is the notification fallback; the blocks are what the channel
/// shows. Block Kit limits: header 150, section/context text 3000 chars.
/// mrkdwn needs `&`, `<`, `>` escaped or `<!channel>` in a message pings.
pub(crate) fn payload(n: &Notification) -> Value {
    let esc = |s: &str, max| escape_truncated(s, max, slack_char);
    let mut context = vec![format!("Severity: {}", n.severity.as_str())];
    context.extend(n.detail_lines());
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": truncate(&n.title, 150), "emoji": true },
    })];
    // An empty section text is rejected as invalid_blocks.
    if !n.message.trim().is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": esc(&n.message, 3000) },
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": esc(&context.join(" · "), 3000) }],
    }));
    json!({
        "text": esc(&format!("{} {}: {}", severity_emoji(n.severity), n.title, n.message), 3000),
        "blocks": blocks,
    })
}
