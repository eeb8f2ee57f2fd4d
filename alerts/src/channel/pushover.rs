//! Pushover: `POST {api_url}` form-urlencoded; `{"status":1}` on success.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{check_secret, check_url, keep_secret};
use crate::deliver::execute;
use crate::text::{excerpt, truncate};
use crate::{
    ChannelKind, ConfigError, Delivered, Deliverer, DeliveryError, Notification, Secret, Severity,
};

pub const DEFAULT_API_URL: &str = "https://api.pushover.net/1/messages.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushoverConfig {
    /// The application's API token.
    pub token: Secret,
    /// The user or group key to notify.
    pub user: Secret,
    #[serde(default = "default_api_url")]
    pub api_url: String,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_owned()
}

const KIND: ChannelKind = ChannelKind::Pushover;

impl PushoverConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_secret("token", &self.token)?;
        check_secret("user", &self.user)?;
        check_url("api_url", &self.api_url)?;
        Ok(())
    }

    pub(crate) fn redact(&mut self) {
        self.token = Secret::redacted();
        self.user = Secret::redacted();
    }

    /// The keys only go back to the API they were entered for.
    pub(crate) fn merge_secrets(&mut self, previous: &Self) {
        if self.api_url == previous.api_url {
            keep_secret(&mut self.token, &previous.token);
            keep_secret(&mut self.user, &previous.user);
        }
    }

    pub(crate) async fn send(
        &self,
        d: &Deliverer,
        n: &Notification,
    ) -> Result<Delivered, DeliveryError> {
        let form = form(self, n);
        let request = d.http.post(&self.api_url).form(&form);
        let reply = execute(KIND, request).await?.success(KIND)?;
        // A 2xx is not enough: Pushover reports acceptance in the body.
        let body: Option<Value> = serde_json::from_str(&reply.body).ok();
        match body {
            Some(v) if v["status"].as_i64() == Some(1) => Ok(Delivered {
                kind: KIND,
                status: reply.status,
                detail: v["request"].as_str().map(str::to_owned),
            }),
            _ => Err(DeliveryError::Refused {
                kind: KIND,
                status: reply.status,
                body: excerpt(&reply.body),
            }),
        }
    }
}

/// Pushover's limits: title 250, message 1024 characters; message required.
/// Priority 1 bypasses quiet hours, which is what a critical alert is for;
/// 2 (emergency) would need retry/expire and an acknowledgement.
fn form(c: &PushoverConfig, n: &Notification) -> Vec<(&'static str, String)> {
    let message = match n.plain_text() {
        m if m.trim().is_empty() => n.title.clone(),
        m => m,
    };
    let priority = match n.severity {
        Severity::Critical => 1,
        Severity::Info | Severity::Warning => 0,
    };
    vec![
        ("token", c.token.expose().to_owned()),
        ("user", c.user.expose().to_owned()),
        ("title", truncate(&n.title, 250)),
        ("message", truncate(&message, 1024)),
        ("priority", priority.to_string()),
        ("timestamp", n.at.as_second().to_string()),
    ]
}
