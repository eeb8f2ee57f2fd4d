//! Delivery against local receivers on 127.0.0.1 that check each request
//! the way the real service does and answer as it does. One test binary
//! (linking is the slow part); one module per service.

#[path = "delivery/common.rs"]
mod common;
#[path = "delivery/smtp_server.rs"]
mod smtp_server;

#[path = "delivery/discord.rs"]
mod discord;
#[path = "delivery/email.rs"]
mod email;
#[path = "delivery/matrix.rs"]
mod matrix;
#[path = "delivery/ntfy.rs"]
mod ntfy;
#[path = "delivery/pushover.rs"]
mod pushover;
#[path = "delivery/retry.rs"]
mod retry;
#[path = "delivery/slack.rs"]
mod slack;
#[path = "delivery/webhook.rs"]
mod webhook;
