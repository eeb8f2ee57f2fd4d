//! A single sign-on identity (one per issuer and subject) and the person
//! and role ccgate gives it.

use jiff::Timestamp;

use super::Role;

/// An identity as the provider last described it, and what ccgate made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: i64,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// What the groups gave at the last sign-in or re-check.
    pub group_role: Option<Role>,
    /// Set by an admin; wins over the groups.
    pub role_override: Option<Role>,
    /// The person this identity is, and their name.
    pub person: Option<(i64, String)>,
    pub created_at: Timestamp,
    pub last_login_at: Timestamp,
}

impl Identity {
    /// The role sessions of this identity get; `None`: it may not sign in.
    pub fn role(&self) -> Option<Role> {
        self.role_override.or(self.group_role)
    }

    /// How the audit log names it.
    pub fn actor(&self) -> String {
        format!("sso:{}", self.email.as_deref().unwrap_or(&self.subject))
    }
}
