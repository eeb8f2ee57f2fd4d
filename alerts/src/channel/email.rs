//! Email over SMTP (lettre): STARTTLS, implicit TLS, or — for loopback
//! test servers only — plain.

use std::time::SystemTime;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::config::{
    check_nonempty, check_secret, is_loopback_name, keep_optional_secret, redact_optional,
};
use crate::error::chain;
use crate::{ChannelKind, ConfigError, Delivered, Deliverer, DeliveryError, Notification, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connect, then STARTTLS, required (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: loopback hosts only.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// `alerts@example.org` or `ccgate <alerts@example.org>`.
    pub from: String,
    pub to: Vec<String>,
}

const KIND: ChannelKind = ChannelKind::Email;

impl EmailConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        check_nonempty("host", &self.host)?;
        if self.port == 0 {
            return Err(ConfigError::invalid("port", "must be 1–65535"));
        }
        if self.security == SmtpSecurity::None && !is_loopback_name(&self.host) {
            return Err(ConfigError::PlainSmtpNotLoopback {
                host: self.host.clone(),
            });
        }
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                check_nonempty("username", user)?;
                check_secret("password", password)?;
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::Empty {
                    field: "password".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Empty {
                    field: "username".into(),
                });
            }
        }
        mailbox("from", &self.from)?;
        if self.to.is_empty() {
            return Err(ConfigError::Empty { field: "to".into() });
        }
        for (i, to) in self.to.iter().enumerate() {
            mailbox(&format!("to[{i}]"), to)?;
        }
        Ok(())
    }

    pub(crate) fn redact(&mut self) {
        redact_optional(&mut self.password);
    }

    /// The password only goes back to the same server and account.
    pub(crate) fn merge_secrets(&mut self, previous: &Self) {
        if self.host == previous.host && self.username == previous.username {
            keep_optional_secret(&mut self.password, &previous.password);
        }
    }

    fn transport(
        &self,
        d: &Deliverer,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, DeliveryError> {
        let host = self.host.trim();
        let builder = match self.security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                host,
            )),
        }
        .map_err(smtp_error)?;
        let mut builder = builder.port(self.port).timeout(Some(d.timeout));
        if d.built_in_roots && self.security != SmtpSecurity::None {
            let parameters = TlsParameters::builder(host.to_owned())
                .certificate_store(CertificateStore::WebpkiRoots)
                .build_rustls()
                .map_err(smtp_error)?;
            builder = builder.tls(match self.security {
                SmtpSecurity::Tls => Tls::Wrapper(parameters),
                _ => Tls::Required(parameters),
            });
        }
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(builder.build())
    }

    pub(crate) async fn send(
        &self,
        d: &Deliverer,
        n: &Notification,
    ) -> Result<Delivered, DeliveryError> {
        let message = self.message(n)?;
        let transport = self.transport(d)?;
        // lettre's timeout is per command; this bounds the whole exchange.
        let response = tokio::time::timeout(d.timeout, transport.send(message))
            .await
            .map_err(|_| DeliveryError::Timeout {
                kind: KIND,
                timeout: d.timeout,
            })?
            .map_err(smtp_error)?;
        Ok(Delivered {
            kind: KIND,
            status: u16::from(response.code()),
            detail: Some(response.message().collect::<Vec<_>>().join(" ")),
        })
    }

    fn message(&self, n: &Notification) -> Result<Message, DeliveryError> {
        // Validated before sending, so these parse.
        let config = |source| DeliveryError::Config { kind: KIND, source };
        let from = mailbox("from", &self.from).map_err(config)?;
        // Stable per notification, so a re-sent alert threads with (or is
        // recognised as) the first.
        let message_id = format!("<ccgate.{}@{}>", n.id.simple(), from.email.domain());
        let mut builder = Message::builder()
            .from(from)
            .subject(n.title.replace(['\r', '\n'], " "))
            .date(SystemTime::from(n.at))
            .message_id(Some(message_id));
        for (i, to) in self.to.iter().enumerate() {
            builder = builder.to(mailbox(&format!("to[{i}]"), to).map_err(config)?);
        }
        let body = format!(
            "{}\n\nSeverity: {}\nAt: {}\n",
            n.plain_text(),
            n.severity.as_str(),
            n.at
        );
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|source| DeliveryError::Message { source })
    }
}

fn mailbox(field: &str, value: &str) -> Result<Mailbox, ConfigError> {
    check_nonempty(field, value)?;
    value.trim().parse().map_err(|source| ConfigError::Address {
        field: field.to_owned(),
        source,
    })
}

fn smtp_error(source: lettre::transport::smtp::Error) -> DeliveryError {
    DeliveryError::Smtp {
        detail: chain(&source),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EmailConfig {
        EmailConfig {
            host: "smtp.example.org".into(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: Some("alerts".into()),
            password: Some("pw".into()),
            from: "ccgate <alerts@example.org>".into(),
            to: vec!["admin@example.org".into()],
        }
    }

    #[test]
    fn validation() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.security = SmtpSecurity::None;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PlainSmtpNotLoopback { .. })
        ));
        c.host = "127.0.0.1".into();
        assert!(c.validate().is_ok());
        let mut c = config();
        c.to.clear();
        assert!(matches!(c.validate(), Err(ConfigError::Empty { .. })));
        let mut c = config();
        c.to.push("not an address".into());
        assert!(
            matches!(c.validate(), Err(ConfigError::Address { field, .. }) if field == "to[1]")
        );
        let mut c = config();
        c.password = None;
        assert!(c.validate().is_err());
        let mut c = config();
        c.port = 0;
        assert!(c.validate().is_err());
    }
}
