//! One line of the audit log: admin actions, kills, registrations, tamper
//! reports.

use jiff::Timestamp;

/// What happened, when, by whom, to whom.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    /// `user_created`, `user_updated`, `user_killed`, `tamper`, `login`, …
    pub kind: String,
    /// Who did it: `admin`, `account:NAME`, `token:NAME`, `device:ID`.
    pub actor: Option<String>,
    pub user_id: Option<i64>,
    pub device_id: Option<i64>,
    pub detail: Option<serde_json::Value>,
}
