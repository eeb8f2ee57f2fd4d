//! People (users) with their limits, install codes and the audit of changes to them.

use ccgate_quota::{AgentTurns, Rule, UserStatus};
use jiff::Timestamp;
use serde_json::Value;

use super::{Store, StoreResult};
use crate::model::{CodeKind, Device, Person, PersonChanges};
use crate::service::audit;

/// Who changes the record, and when: every audited use case takes one.
#[derive(Debug, Clone)]
pub struct Change {
    pub actor: String,
    pub at: Timestamp,
}

impl Change {
    pub fn new(actor: &str, at: Timestamp) -> Self {
        Self {
            actor: actor.to_owned(),
            at,
        }
    }

    pub(super) fn audit(
        &self,
        kind: &str,
        user_id: Option<i64>,
        device_id: Option<i64>,
        detail: Option<Value>,
    ) -> crate::model::AuditEntry {
        audit(self.at, kind, &self.actor, user_id, device_id, detail)
    }
}

/// A person to create, already validated.
#[derive(Debug, Clone)]
pub struct NewPerson {
    pub name: String,
    pub slug: String,
    /// An explicit slug that is taken is a conflict; a derived one gets a number.
    pub explicit_slug: bool,
    pub time_zone: Option<String>,
    pub rules: Vec<Rule>,
    pub subscription_id: Option<i64>,
    pub agent_turns: Option<AgentTurns>,
    /// How the audit log names the subscription.
    pub subscription_label: String,
}

/// An install code by its hash (the text is shown once and never stored).
#[derive(Debug, Clone)]
pub struct NewInstallCode {
    pub kind: CodeKind,
    pub hash: String,
    pub expires_at: Timestamp,
}

/// A replacement token for a device: its hex hash, and its text sealed
/// with the server key (kept on PostgreSQL, so that any replica can hand
/// it over).
#[derive(Debug, Clone)]
pub struct PendingToken {
    pub device_id: i64,
    pub hash: String,
    pub sealed: Vec<u8>,
}

impl Store {
    /// Creates a person with their limits and first setup code, audited.
    pub async fn create_person(
        &self,
        person: NewPerson,
        setup_code: NewInstallCode,
        change: Change,
    ) -> StoreResult<Person> {
        dispatch!(self, create_person(person, setup_code, change))
    }

    /// Changes a person under a new policy version; their proxies get the
    /// `pending` replacement tokens in the same transaction (a kill rotates
    /// them). Audited, with a second entry when the status changes.
    pub async fn update_person(
        &self,
        id: i64,
        changes: PersonChanges,
        old_status: UserStatus,
        pending: Vec<PendingToken>,
        detail: Value,
        change: Change,
    ) -> StoreResult<Person> {
        dispatch!(
            self,
            update_person(id, changes, old_status, pending, detail, change)
        )
    }

    /// Deletes a person (their devices and events go with them); false when
    /// there was none.
    pub async fn delete_person(&self, id: i64, change: Change) -> StoreResult<bool> {
        dispatch!(self, delete_person(id, change))
    }

    /// Stores a new install code for person `user_id`, audited.
    pub async fn add_install_code(
        &self,
        user_id: i64,
        code: NewInstallCode,
        change: Change,
    ) -> StoreResult<()> {
        dispatch!(self, add_install_code(user_id, code, change))
    }

    /// Hands each of a person's proxies a replacement token, audited.
    pub async fn rotate_tokens(
        &self,
        user_id: i64,
        pending: Vec<PendingToken>,
        change: Change,
    ) -> StoreResult<()> {
        dispatch!(self, rotate_tokens(user_id, pending, change))
    }

    /// Revokes device `id` (its events stay), audited; `None` when there is none.
    pub async fn revoke_device(&self, id: i64, change: Change) -> StoreResult<Option<Device>> {
        dispatch!(self, revoke_device(id, change))
    }

    /// A device used its replacement token (hex hash): it becomes the only one.
    pub async fn promote_device_token(&self, device_id: i64, hash: String) -> StoreResult<()> {
        dispatch!(self, promote_device_token(device_id, hash))
    }

    /// When each of `ids` last used Claude Code (ms), in the same order.
    pub async fn last_active(&self, ids: Vec<i64>) -> StoreResult<Vec<Option<i64>>> {
        dispatch!(self, last_active(ids))
    }

    /// A person's e-mail and the single-sign-on identity linked to them.
    pub async fn person_contact(
        &self,
        user_id: i64,
    ) -> StoreResult<(Option<String>, Option<crate::model::Identity>)> {
        dispatch!(self, person_contact(user_id))
    }

    /// The person who has `email` (compared without case), if any.
    pub async fn person_with_email(&self, email: String) -> StoreResult<Option<i64>> {
        dispatch!(self, person_with_email(email))
    }
}
