//! People (users) with their limits, install codes and the audit of changes to them.

use ccgate_quota::{AgentTurns, Rule, UserStatus};
use jiff::Timestamp;
use serde_json::{Value, json};

use super::{Store, StoreResult};
use crate::db::devices::DeviceRow;
use crate::db::users::{NewUser, UserChanges, UserRow};
use crate::db::{self};
use crate::model::CodeKind;
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
    ) -> db::audit::AuditEntry {
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

/// A replacement token for a device, by its hex hash.
pub type PendingToken = (i64, String);

fn insert_code(
    tx: &rusqlite::Transaction<'_>,
    user_id: i64,
    code: &NewInstallCode,
    now: Timestamp,
) -> StoreResult<()> {
    db::devices::insert_install_code(
        tx,
        user_id,
        code.kind,
        &code.hash,
        now.as_millisecond(),
        code.expires_at.as_millisecond(),
    )
}

impl Store {
    /// Creates a person with their limits and first setup code, audited.
    pub async fn create_person(
        &self,
        person: NewPerson,
        setup_code: NewInstallCode,
        change: Change,
    ) -> StoreResult<UserRow> {
        self.db
            .write(move |tx| {
                let mut slug = person.slug.clone();
                if !person.explicit_slug {
                    let mut n = 2;
                    while db::users::slug_taken(tx, &slug)? {
                        slug = format!("{}-{n}", person.slug);
                        n += 1;
                    }
                }
                let version = db::settings::next_policy_version(tx)?;
                let user = db::users::insert(
                    tx,
                    &NewUser {
                        name: &person.name,
                        slug: &slug,
                        time_zone: person.time_zone.as_deref(),
                        rules: &person.rules,
                        subscription_id: person.subscription_id,
                        agent_turns: person.agent_turns,
                        policy_version: version,
                        created_at: change.at.as_millisecond(),
                    },
                )?;
                insert_code(tx, user.id, &setup_code, change.at)?;
                let detail = json!({
                    "name": user.name, "slug": user.slug, "limits": user.rules,
                    "subscription": person.subscription_label, "agent_turns": user.agent_turns,
                });
                db::audit::insert(
                    tx,
                    &change.audit("user_created", Some(user.id), None, Some(detail)),
                )?;
                Ok(user)
            })
            .await
    }

    /// Changes a person under a new policy version; their proxies get the
    /// `pending` replacement tokens in the same transaction (a kill rotates
    /// them). Audited, with a second entry when the status changes.
    pub async fn update_person(
        &self,
        id: i64,
        changes: UserChanges,
        old_status: UserStatus,
        pending: Vec<PendingToken>,
        detail: Value,
        change: Change,
    ) -> StoreResult<UserRow> {
        self.db
            .write(move |tx| {
                let version = db::settings::next_policy_version(tx)?;
                let row = db::users::update(tx, id, &changes, version)?;
                for (device_id, hash) in &pending {
                    db::devices::set_pending_token(tx, *device_id, Some(hash))?;
                }
                db::audit::insert(
                    tx,
                    &change.audit("user_updated", Some(id), None, Some(detail)),
                )?;
                if row.status != old_status {
                    let kind = if row.status == UserStatus::Killed {
                        "user_killed"
                    } else {
                        "user_status_change"
                    };
                    let detail = json!({ "old_status": old_status, "new_status": row.status });
                    db::audit::insert(tx, &change.audit(kind, Some(id), None, Some(detail)))?;
                }
                Ok(row)
            })
            .await
    }

    /// Deletes a person (their devices and events go with them); false when
    /// there was none.
    pub async fn delete_person(&self, id: i64, change: Change) -> StoreResult<bool> {
        self.db
            .write(move |tx| {
                let row = db::users::get(tx, id)?;
                let deleted = db::users::delete(tx, id)?;
                if deleted {
                    let detail = row.map(|r| json!({ "name": r.name, "slug": r.slug }));
                    db::audit::insert(tx, &change.audit("user_deleted", Some(id), None, detail))?;
                }
                Ok(deleted)
            })
            .await
    }

    /// Stores a new install code for person `user_id`, audited.
    pub async fn add_install_code(
        &self,
        user_id: i64,
        code: NewInstallCode,
        change: Change,
    ) -> StoreResult<()> {
        self.db
            .write(move |tx| {
                insert_code(tx, user_id, &code, change.at)?;
                let detail = json!({ "kind": code.kind });
                db::audit::insert(
                    tx,
                    &change.audit("install_code_created", Some(user_id), None, Some(detail)),
                )
            })
            .await
    }

    /// Hands each of a person's proxies a replacement token, audited.
    pub async fn rotate_tokens(
        &self,
        user_id: i64,
        pending: Vec<PendingToken>,
        change: Change,
    ) -> StoreResult<()> {
        self.db
            .write(move |tx| {
                for (device_id, hash) in &pending {
                    db::devices::set_pending_token(tx, *device_id, Some(hash))?;
                }
                let detail = json!({ "devices": pending.len() });
                db::audit::insert(
                    tx,
                    &change.audit("tokens_rotated", Some(user_id), None, Some(detail)),
                )
            })
            .await
    }

    /// Revokes device `id` (its events stay), audited; `None` when there is none.
    pub async fn revoke_device(&self, id: i64, change: Change) -> StoreResult<Option<DeviceRow>> {
        self.db
            .write(move |tx| {
                let Some(row) = db::devices::revoke(tx, id, change.at.as_millisecond())? else {
                    return Ok(None);
                };
                let detail = json!({
                    "hostname": row.details.hostname, "kind": row.kind,
                    "os_user": row.details.os_user,
                });
                db::audit::insert(
                    tx,
                    &change.audit("device_revoked", Some(row.user_id), Some(id), Some(detail)),
                )?;
                Ok(Some(row))
            })
            .await
    }

    /// A device used its replacement token (hex hash): it becomes the only one.
    pub async fn promote_device_token(&self, device_id: i64, hash: String) -> StoreResult<()> {
        self.db
            .write(move |tx| db::devices::promote_pending_token(tx, device_id, &hash))
            .await
    }

    /// When each of `ids` last used Claude Code (ms), in the same order.
    pub async fn last_active(&self, ids: Vec<i64>) -> StoreResult<Vec<Option<i64>>> {
        self.db
            .read(move |conn| {
                ids.iter()
                    .map(|&id| db::events::last_active(conn, id))
                    .collect()
            })
            .await
    }

    /// A person's e-mail and the single-sign-on identity linked to them.
    pub async fn person_contact(
        &self,
        user_id: i64,
    ) -> StoreResult<(Option<String>, Option<db::identities::Identity>)> {
        self.db
            .read(move |conn| {
                Ok((
                    db::identities::user_email(conn, user_id)?,
                    db::identities::of_user(conn, user_id)?,
                ))
            })
            .await
    }

    /// The person who has `email` (compared without case), if any.
    pub async fn person_with_email(&self, email: String) -> StoreResult<Option<i64>> {
        self.db
            .read(move |conn| db::identities::user_with_email(conn, &email))
            .await
    }
}
