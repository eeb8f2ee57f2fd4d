//! Generic webhook: any method and headers, and a JSON body template whose
//! placeholders are filled JSON-escaped, so `{"text": "{title}"}` stays
//! valid JSON whatever the title holds. Without a template the body is the
//! notification itself as JSON.

use std::collections::BTreeMap;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::config::{check_secret, check_url, keep_secret};
use crate::deliver::execute;
use crate::notification::fmt_pct;
use crate::{
    ChannelKind, ConfigError, Delivered, Deliverer, DeliveryError, Notification, Secret, Severity,
};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    #[default]
    Post,
    Put,
    /// Sends no body: for endpoints that only need to be called.
    Get,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Treated as a secret: n8n, Zapier and Slack-style hooks authenticate
    /// by the URL alone.
    pub url: Secret,
    #[serde(default)]
    pub method: WebhookMethod,
    /// Extra headers; values are secrets (they usually carry auth).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default)]
    pub body_template: Option<String>,
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "title",
    "message",
    "subscription",
    "person",
    "pct",
    "window",
    "severity",
    "at",
];

const KIND: ChannelKind = ChannelKind::Webhook;

impl WebhookConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_secret("url", &self.url)?;
        check_url("url", self.url.expose())?;
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(ConfigError::invalid(field, "not a valid HTTP header name"));
            }
            if value.is_redacted() {
                return Err(ConfigError::Redacted { field });
            }
            if HeaderValue::from_str(value.expose()).is_err() {
                return Err(ConfigError::invalid(
                    field,
                    "header values must be printable ASCII",
                ));
            }
        }
        if let Some(template) = &self.body_template {
            if self.method == WebhookMethod::Get {
                return Err(ConfigError::invalid(
                    "body_template",
                    "a GET request sends no body",
                ));
            }
            // Both with every value set and with the optional ones missing:
            // a bare `{pct}` is valid JSON only in the first case.
            for (case, sample) in [
                ("sample values", sample(true)),
                ("optional values missing", sample(false)),
            ] {
                serde_json::from_str::<IgnoredAny>(&render_template(template, &sample))
                    .map_err(|source| ConfigError::Template { case, source })?;
            }
        }
        Ok(())
    }

    pub(crate) fn redact(&mut self) {
        self.url = Secret::redacted();
        for value in self.headers.values_mut() {
            *value = Secret::redacted();
        }
    }

    /// Header values are kept only while the URL is (so they are not sent to
    /// a new endpoint), and only for headers that still exist.
    pub(crate) fn merge_secrets(&mut self, previous: &Self) {
        keep_secret(&mut self.url, &previous.url);
        if self.url != previous.url {
            return;
        }
        for (name, value) in &mut self.headers {
            if let Some(old) = previous.headers.get(name) {
                keep_secret(value, old);
            }
        }
    }

    pub(crate) async fn send(
        &self,
        d: &Deliverer,
        n: &Notification,
    ) -> Result<Delivered, DeliveryError> {
        let url = self.url.expose();
        let mut request = match self.method {
            WebhookMethod::Get => d.http.get(url),
            WebhookMethod::Post | WebhookMethod::Put => {
                let body = match &self.body_template {
                    Some(t) => render_template(t, n),
                    None => serde_json::to_string(n).unwrap_or_default(),
                };
                let rb = if self.method == WebhookMethod::Put {
                    d.http.put(url)
                } else {
                    d.http.post(url)
                };
                rb.header(CONTENT_TYPE, "application/json").body(body)
            }
        };
        // Added last so an admin can override Content-Type on purpose.
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.expose());
        }
        let reply = execute(KIND, request).await?.success(KIND)?;
        Ok(Delivered {
            kind: KIND,
            status: reply.status,
            detail: None,
        })
    }
}

/// Replaces each `{name}` of [`PLACEHOLDERS`] by the JSON-escaped value,
/// without quotes; a missing optional value is empty. One pass, so text
/// that itself contains `{message}` is not expanded again; other braces are
/// kept as they are.
pub fn render_template(template: &str, n: &Notification) -> String {
    let mut out = String::with_capacity(template.len() + n.message.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let found = PLACEHOLDERS.iter().find(|name| {
            after
                .strip_prefix(**name)
                .is_some_and(|r| r.starts_with('}'))
        });
        match found {
            Some(name) => {
                out.push_str(&json_escape(&value(name, n)));
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn value(name: &str, n: &Notification) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    match name {
        "title" => n.title.clone(),
        "message" => n.message.clone(),
        "subscription" => opt(&n.subscription),
        "person" => opt(&n.person),
        "pct" => n.pct.map(fmt_pct).unwrap_or_default(),
        "window" => opt(&n.window),
        "severity" => n.severity.as_str().to_owned(),
        "at" => n.at.to_string(),
        _ => String::new(),
    }
}

/// The JSON string literal of `s`, without its quotes.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Text that breaks naive substitution: quotes, backslashes, control
/// characters, braces, non-ASCII.
fn sample(full: bool) -> Notification {
    let mut n = Notification::new(
        Severity::Critical,
        "Quota \"alert\" \\ {message}",
        "line 1\nline 2\t\u{1}é🚨",
    );
    if full {
        n = n
            .with_subscription("team \"max\"")
            .with_person("O'Brien \\ {")
            .with_usage(87.5, "5-hour");
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(template: &str) -> WebhookConfig {
        WebhookConfig {
            url: "https://hooks.example.org/x".into(),
            method: WebhookMethod::Post,
            headers: BTreeMap::new(),
            body_template: Some(template.to_owned()),
        }
    }

    #[test]
    fn values_are_json_escaped_and_not_expanded_twice() {
        let n = sample(true);
        let body = render_template(
            r#"{"text": "{title}: {message}", "pct": "{pct}", "who": "{person}"}"#,
            &n,
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], format!("{}: {}", n.title, n.message));
        assert_eq!(v["pct"], "87.5");
        assert_eq!(v["who"], "O'Brien \\ {");
    }

    #[test]
    fn unknown_and_unclosed_braces_stay() {
        let n = sample(false);
        assert_eq!(render_template("{x} {title", &n), "{x} {title");
        assert_eq!(render_template("{{severity}}", &n), "{critical}");
        assert_eq!(render_template("{pct}|{person}", &n), "|");
    }

    #[test]
    fn template_validation() {
        assert!(
            config(r#"{"text": "{title}: {message}"}"#)
                .validate()
                .is_ok()
        );
        // Placeholders outside quotes break once the text has a quote.
        let err = config(r#"{"text": {title}}"#).validate().unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Template {
                    case: "sample values",
                    ..
                }
            ),
            "{err}"
        );
        // A bare number placeholder is fine until the value is missing.
        let err = config(r#"{"pct": {pct}}"#).validate().unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Template {
                    case: "optional values missing",
                    ..
                }
            ),
            "{err}"
        );
        assert!(config("not json").validate().is_err());
        let mut get = config("{}");
        get.method = WebhookMethod::Get;
        assert!(get.validate().is_err());
    }

    #[test]
    fn header_validation() {
        let mut c = config("{}");
        c.headers.insert("X-Token".into(), "abc".into());
        assert!(c.validate().is_ok());
        c.headers.insert("Bad Name".into(), "abc".into());
        assert!(c.validate().is_err());
        c.headers.remove("Bad Name");
        c.headers.insert("X-Other".into(), "line\nbreak".into());
        assert!(c.validate().is_err());
    }
}
