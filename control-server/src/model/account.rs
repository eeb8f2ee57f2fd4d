//! Who may use the dashboard and the admin API besides the built-in admin:
//! named accounts and API tokens.

use jiff::Timestamp;

use super::Role;

/// A named dashboard account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// An API token (its secret is never kept, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// The named account that made it (also through a token of its own);
    /// `None`: the built-in admin.
    pub account_id: Option<i64>,
}
