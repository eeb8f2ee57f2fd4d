//! Discord execute-webhook: `POST {webhook_url}` with content and an embed.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{check_secret, check_url, keep_secret};
use crate::deliver::{execute, seconds};
use crate::text::{severity_emoji, truncate};
use crate::{
    ChannelKind, ConfigError, Delivered, Deliverer, DeliveryError, Notification, Secret, Severity,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// `https://discord.com/api/webhooks/{id}/{token}`: the token makes the
    /// whole URL a secret.
    pub webhook_url: Secret,
}

const KIND: ChannelKind = ChannelKind::Discord;

impl DiscordConfig {
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
        let reply = execute(KIND, request)
            .await?
            .with_body_retry_after(|v| v["retry_after"].as_f64().and_then(seconds))
            .success(KIND)?;
        Ok(Delivered {
            kind: KIND,
            status: reply.status,
            detail: None,
        })
    }
}

/// Embed colours, as Discord's 24-bit integers.
fn color(s: Severity) -> u32 {
    match s {
        Severity::Info => 0x3498DB,
        Severity::Warning => 0xF39C12,
        Severity::Critical => 0xE74C3C,
    }
}

/// Limits from Discord's docs: content 2000, embed title 256, description
/// 4096 characters; a longer field fails the whole message with a 400.
pub(crate) fn payload(n: &Notification) -> Value {
    json!({
        "content": truncate(&format!("{} {}", severity_emoji(n.severity), n.title), 2000),
        "embeds": [{
            "title": truncate(&n.title, 256),
            "description": truncate(&n.plain_text(), 4096),
            "color": color(n.severity),
            "timestamp": n.at.to_string(),
        }],
        // Names and messages are user text: never let them ping @everyone.
        "allowed_mentions": { "parse": [] },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_cut_to_discord_limits() {
        let n = Notification::new(Severity::Info, "t".repeat(300), "m".repeat(5000));
        let p = payload(&n);
        assert_eq!(
            p["embeds"][0]["title"].as_str().unwrap().chars().count(),
            256
        );
        assert_eq!(
            p["embeds"][0]["description"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            4096
        );
        assert!(p["content"].as_str().unwrap().chars().count() <= 2000);
    }
}
