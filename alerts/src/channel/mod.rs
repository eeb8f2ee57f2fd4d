//! One module per service: its config, its payload, its answer.

mod discord;
mod email;
mod matrix;
mod ntfy;
mod pushover;
mod slack;
mod webhook;

pub use discord::DiscordConfig;
pub use email::{EmailConfig, SmtpSecurity};
pub use matrix::MatrixConfig;
pub use ntfy::NtfyConfig;
pub use pushover::PushoverConfig;
pub use slack::SlackConfig;
pub use webhook::{PLACEHOLDERS, WebhookConfig, WebhookMethod, render_template};
