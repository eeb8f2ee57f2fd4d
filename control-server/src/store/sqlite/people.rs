//! On SQLite: People (users) with their limits, install codes and the audit of changes to them.

use ccgate_quota::UserStatus;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::db::Db;
use crate::db::users::NewUser;
use crate::db::{self};
use crate::model::{Device, Person, PersonChanges};
use crate::store::StoreResult;
use crate::store::{Change, NewInstallCode, NewPerson, PendingToken};

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

impl Db {
    pub async fn create_person(
        &self,
        person: NewPerson,
        setup_code: NewInstallCode,
        change: Change,
    ) -> StoreResult<Person> {
        self.write(move |tx| {
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

    pub async fn update_person(
        &self,
        id: i64,
        changes: PersonChanges,
        old_status: UserStatus,
        pending: Vec<PendingToken>,
        detail: Value,
        change: Change,
    ) -> StoreResult<Person> {
        self.write(move |tx| {
            let version = db::settings::next_policy_version(tx)?;
            let row = db::users::update(tx, id, &changes, version)?;
            for token in &pending {
                db::devices::set_pending_token(tx, token.device_id, Some(&token.hash))?;
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

    pub async fn delete_person(&self, id: i64, change: Change) -> StoreResult<bool> {
        self.write(move |tx| {
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

    pub async fn add_install_code(
        &self,
        user_id: i64,
        code: NewInstallCode,
        change: Change,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            insert_code(tx, user_id, &code, change.at)?;
            let detail = json!({ "kind": code.kind });
            db::audit::insert(
                tx,
                &change.audit("install_code_created", Some(user_id), None, Some(detail)),
            )
        })
        .await
    }

    pub async fn rotate_tokens(
        &self,
        user_id: i64,
        pending: Vec<PendingToken>,
        change: Change,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            for token in &pending {
                db::devices::set_pending_token(tx, token.device_id, Some(&token.hash))?;
            }
            let detail = json!({ "devices": pending.len() });
            db::audit::insert(
                tx,
                &change.audit("tokens_rotated", Some(user_id), None, Some(detail)),
            )
        })
        .await
    }

    pub async fn revoke_device(&self, id: i64, change: Change) -> StoreResult<Option<Device>> {
        self.write(move |tx| {
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

    pub async fn promote_device_token(&self, device_id: i64, hash: String) -> StoreResult<()> {
        self.write(move |tx| db::devices::promote_pending_token(tx, device_id, &hash))
            .await
    }

    pub async fn last_active(&self, ids: Vec<i64>) -> StoreResult<Vec<Option<i64>>> {
        self.read(move |conn| {
            ids.iter()
                .map(|&id| db::events::last_active(conn, id))
                .collect()
        })
        .await
    }

    pub async fn person_contact(
        &self,
        user_id: i64,
    ) -> StoreResult<(Option<String>, Option<crate::model::Identity>)> {
        self.read(move |conn| {
            Ok((
                db::identities::user_email(conn, user_id)?,
                db::identities::of_user(conn, user_id)?,
            ))
        })
        .await
    }

    pub async fn person_with_email(&self, email: String) -> StoreResult<Option<i64>> {
        self.read(move |conn| db::identities::user_with_email(conn, &email))
            .await
    }
}
