//! A machine (a proxy) or a claude-code-limiter hook client registered
//! for a person.

use jiff::Timestamp;

use super::{DeviceDetails, DeviceKind};

/// A registered device that was not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: i64,
    pub user_id: i64,
    pub kind: DeviceKind,
    pub token_hash: String,
    pub pending_token_hash: Option<String>,
    /// The replacement token's text, sealed with the server key (kept on
    /// PostgreSQL only, where another replica may have to hand it over).
    pub pending_token_sealed: Option<Vec<u8>>,
    pub details: DeviceDetails,
    pub created_at: Timestamp,
    pub last_seen_at: Option<Timestamp>,
}
