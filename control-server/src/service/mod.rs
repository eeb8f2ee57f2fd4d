//! What the server does, independent of how it is asked: the APIs call into
//! these modules, which combine the database and the live state.

pub mod admin_auth;
pub mod credential;
pub mod gate;
pub mod ingest;
pub mod register;
pub mod shares;
pub mod sso;
pub mod subscriptions;
pub mod sync;
pub mod users;

use jiff::Timestamp;

use crate::model::AuditEntry;

/// An audit entry at `at`.
pub fn audit(
    at: Timestamp,
    kind: &str,
    actor: &str,
    user_id: Option<i64>,
    device_id: Option<i64>,
    detail: Option<serde_json::Value>,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at,
        kind: kind.to_owned(),
        actor: Some(actor.to_owned()),
        user_id,
        device_id,
        detail,
    }
}
