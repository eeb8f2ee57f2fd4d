//! Alert delivery for ccgate: one [`Notification`] to one channel
//! ([`ChannelConfig`]) in that service's own request format, with retries
//! ([`Deliverer::deliver_with_retry`]).
//!
//! Configs (de)serialise as tagged JSON (`{"kind": "slack", ...}`); their
//! secrets can be redacted for the API and merged back after an edit
//! ([`ChannelConfig::redacted`], [`ChannelConfig::merge_secrets`]).
//! Encryption at rest is the caller's business.

mod channel;
mod config;
mod deliver;
mod error;
mod notification;
mod retry;
mod secret;
mod text;

pub use channel::{
    DiscordConfig, EmailConfig, MatrixConfig, NtfyConfig, PLACEHOLDERS, PushoverConfig,
    SlackConfig, SmtpSecurity, WebhookConfig, WebhookMethod, render_template,
};
pub use config::{ChannelConfig, ChannelKind};
pub use deliver::{DEFAULT_TIMEOUT, Delivered, Deliverer};
pub use error::{ConfigError, DeliveryError, InitError};
pub use notification::{Notification, Severity};
pub use retry::{AttemptFailure, AttemptReport, RetryPolicy};
pub use secret::{REDACTED, Secret};
