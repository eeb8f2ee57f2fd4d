//! A Claude subscription the team shares: enrolled with its credential,
//! or seen in personal-login traffic.

use ccgate_quota::CredentialKind;
use jiff::Timestamp;

/// Where a subscription came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionOrigin {
    /// Enrolled with its credential for team-credential mode.
    Enrolled,
    /// An account named by personal-login traffic: no credential.
    Seen,
}

/// A subscription as admins see it: no credential, its last four characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub name: String,
    pub origin: SubscriptionOrigin,
    /// The account's id as Claude Code names it (seen subscriptions).
    pub account_uuid: Option<String>,
    /// When the held credential was enrolled or last rotated.
    pub credential_set_at: Option<Timestamp>,
    pub kind: CredentialKind,
    pub credential_hint: String,
    /// Grows with every rotation.
    pub credential_version: u64,
    /// How many users are assigned to it.
    pub users: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
