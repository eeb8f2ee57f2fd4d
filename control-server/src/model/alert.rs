//! What the alert engine raised and where it sent it, as every part of the
//! server sees it (whatever backend stores it).

use ccgate_alerts::{ChannelKind, Severity};
use jiff::Timestamp;

/// A channel as listed: never its settings (they hold secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertChannel {
    pub id: i64,
    pub name: String,
    pub kind: ChannelKind,
    pub target: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A fired alert.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    pub id: i64,
    pub rule_id: Option<i64>,
    pub subject: String,
    pub at: Timestamp,
    pub severity: Severity,
    pub title: String,
    pub message: String,
}

/// One delivery attempt of an alert to a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDelivery {
    pub id: i64,
    pub event_id: Option<i64>,
    pub channel_id: Option<i64>,
    pub at: Timestamp,
    pub attempt: u32,
    pub ok: bool,
    pub detail: String,
}
