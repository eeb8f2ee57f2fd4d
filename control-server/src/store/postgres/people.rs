//! On PostgreSQL: People (users) with their limits, install codes and the audit of changes to them.

use std::collections::HashMap;

use ccgate_quota::{AgentTurns, Rule, UserStatus};
use jiff::Timestamp;
use serde_json::{Value, json};
use tokio_postgres::{GenericClient, Row};

use super::devices;
use super::identities::{identity, identity_columns};
use super::settings::next_policy_version;
use crate::db::{corrupt, enum_from_text, enum_to_text};
use crate::model::{Device, Identity, Person, PersonChanges};
use crate::postgres::{PgDb, PgError};
use crate::store::{Change, NewInstallCode, NewPerson, PendingToken};
use crate::store::{StoreError, StoreResult};

/// A user's columns, in the order [`user_row`] reads them.
macro_rules! user_columns {
    () => {
        "id, name, slug, status, time_zone, policy_version, created_at, subscription_id, \
         agent_turns"
    };
}
pub(super) use user_columns;

const USERS: &str = concat!("SELECT ", user_columns!(), " FROM users ORDER BY id");

/// Every limit, each person's in order.
const ALL_RULES: &str = "SELECT user_id, id, rule FROM limits ORDER BY user_id, position, id";

const RULES_OF: &str = "SELECT id, rule FROM limits WHERE user_id = $1 ORDER BY position, id";

const INSERT_RULE: &str = "INSERT INTO limits (user_id, position, rule) VALUES ($1, $2, $3)";

/// No row when the slug is taken.
const INSERT_USER: &str = concat!(
    "INSERT INTO users (name, slug, status, time_zone, policy_version, created_at,
         subscription_id, agent_turns)
     VALUES ($1, $2, 'active', $3, $4, $5, $6, $7)
     ON CONFLICT (slug) DO NOTHING
     RETURNING ",
    user_columns!()
);

/// Applies a [`PersonChanges`]: a field whose flag is false keeps its value.
/// No row when there is no such user.
const UPDATE_USER: &str = concat!(
    "UPDATE users SET
         name = COALESCE($2::text, name),
         slug = COALESCE($3::text, slug),
         status = COALESCE($4::text, status),
         time_zone = CASE WHEN $5::boolean THEN $6::text ELSE time_zone END,
         subscription_id = CASE WHEN $7::boolean THEN $8::bigint ELSE subscription_id END,
         agent_turns = CASE WHEN $9::boolean THEN $10::text ELSE agent_turns END,
         policy_version = $11
     WHERE id = $1
     RETURNING ",
    user_columns!()
);

const INSERT_INSTALL_CODE: &str =
    "INSERT INTO install_codes (code_hash, user_id, kind, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5)";

/// The new token was used: it becomes the device's token, the old one is dropped.
const PROMOTE_PENDING_TOKEN: &str =
    "UPDATE devices SET token_hash = pending_token_hash, pending_token_hash = NULL,
            pending_token_sealed = NULL
     WHERE id = $1 AND pending_token_hash = $2";

/// When each of the ids (an array) last did anything that counts, in the
/// array's order.
const LAST_ACTIVE: &str = "SELECT (SELECT MAX(at) FROM events WHERE user_id = ids.id)
     FROM unnest($1::bigint[]) WITH ORDINALITY AS ids(id, n)
     ORDER BY ids.n";

/// The identity linked to the person (at most one: the `identities_user`
/// index; all NULL when none), then the person's e-mail.
const CONTACT: &str = concat!(
    "SELECT ",
    identity_columns!(),
    ", u.email FROM users u LEFT JOIN identities i ON i.user_id = u.id WHERE u.id = $1"
);

const USER_WITH_EMAIL: &str = "SELECT id FROM users WHERE lower(email) = lower($1)";

/// A row of [`user_columns!`], without its rules.
pub(super) fn user_row(row: &Row) -> StoreResult<Person> {
    let status: String = row.try_get(3)?;
    let agent_turns: Option<String> = row.try_get(8)?;
    Ok(Person {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        slug: row.try_get(2)?,
        status: status.parse().map_err(corrupt)?,
        time_zone: row.try_get(4)?,
        policy_version: u64::try_from(row.try_get::<_, i64>(5)?).unwrap_or(0),
        created_at: super::instant(row, 6)?,
        rules: Vec::new(),
        subscription_id: row.try_get(7)?,
        agent_turns: agent_turns.as_deref().map(enum_from_text).transpose()?,
    })
}

/// A stored limit, with its row id.
pub(super) fn rule(id: i64, value: Value) -> StoreResult<Rule> {
    let mut rule: Rule =
        serde_json::from_value(value).map_err(|e| corrupt(format!("limit {id}: {e}")))?;
    rule.id = Some(id);
    Ok(rule)
}

async fn rules_of(client: &impl GenericClient, user_id: i64) -> StoreResult<Vec<Rule>> {
    client
        .query(RULES_OF, &[&user_id])
        .await?
        .iter()
        .map(|row| rule(row.try_get(0)?, row.try_get(1)?))
        .collect()
}

/// Every person with their limits, by id.
pub(super) async fn list(client: &impl GenericClient) -> StoreResult<Vec<Person>> {
    let mut rules: HashMap<i64, Vec<Rule>> = HashMap::new();
    for row in client.query(ALL_RULES, &[]).await? {
        rules
            .entry(row.try_get(0)?)
            .or_default()
            .push(rule(row.try_get(1)?, row.try_get(2)?)?);
    }
    client
        .query(USERS, &[])
        .await?
        .iter()
        .map(|row| {
            let mut user = user_row(row)?;
            user.rules = rules.remove(&user.id).unwrap_or_default();
            Ok(user)
        })
        .collect()
}

/// Replaces all of a user's rules (the caller's transaction makes it atomic).
async fn replace_rules(
    client: &impl GenericClient,
    user_id: i64,
    rules: &[Rule],
) -> StoreResult<()> {
    client
        .execute("DELETE FROM limits WHERE user_id = $1", &[&user_id])
        .await?;
    if rules.is_empty() {
        return Ok(());
    }
    let statement = client.prepare(INSERT_RULE).await?;
    for (position, rule) in rules.iter().enumerate() {
        let position =
            i32::try_from(position).map_err(|_| corrupt(format!("limit position {position}")))?;
        let mut stored = rule.clone();
        stored.id = None;
        let value = serde_json::to_value(&stored).map_err(corrupt)?;
        client
            .execute(&statement, &[&user_id, &position, &value])
            .await?;
    }
    Ok(())
}

fn agent_turns_text(value: Option<AgentTurns>) -> StoreResult<Option<String>> {
    value.as_ref().map(enum_to_text).transpose()
}

/// A policy version as it is stored.
pub(super) fn policy_version(version: u64) -> StoreResult<i64> {
    i64::try_from(version).map_err(|_| corrupt(format!("policy version {version} is too large")))
}

/// A slug taken by someone else, or a subscription deleted while it was
/// being assigned, as SQLite reports them.
fn user_write_error(error: tokio_postgres::Error, slug: Option<&str>) -> StoreError {
    let error = PgError::Query(error);
    match slug {
        Some(slug) if error.is_unique_violation() => {
            StoreError::Conflict(format!("the slug {slug:?} is already taken"))
        }
        _ if error.is_foreign_key_violation() => {
            StoreError::Conflict("that subscription was deleted meanwhile".to_owned())
        }
        _ => StoreError::Postgres(error),
    }
}

/// Inserts the person under the first free slug (or exactly theirs when
/// explicit) with their limits.
async fn insert_user(
    client: &impl GenericClient,
    person: &NewPerson,
    version: u64,
    created_at: i64,
) -> StoreResult<Person> {
    let version = policy_version(version)?;
    let agent_turns = agent_turns_text(person.agent_turns)?;
    let mut slug = person.slug.clone();
    let mut n = 2;
    let mut user = loop {
        let inserted = client
            .query_opt(
                INSERT_USER,
                &[
                    &person.name,
                    &slug,
                    &person.time_zone,
                    &version,
                    &created_at,
                    &person.subscription_id,
                    &agent_turns,
                ],
            )
            .await
            .map_err(|e| user_write_error(e, Some(&slug)))?;
        if let Some(row) = inserted {
            break user_row(&row)?;
        }
        if person.explicit_slug {
            return Err(StoreError::Conflict(format!(
                "the slug {slug:?} is already taken"
            )));
        }
        slug = format!("{}-{n}", person.slug);
        n += 1;
    };
    replace_rules(client, user.id, &person.rules).await?;
    user.rules = rules_of(client, user.id).await?;
    Ok(user)
}

/// Applies `changes` and stamps the user with `version`.
async fn update_user(
    client: &impl GenericClient,
    id: i64,
    changes: &PersonChanges,
    version: u64,
) -> StoreResult<Person> {
    let version = policy_version(version)?;
    let status = changes.status.map(UserStatus::as_str);
    let agent_turns = changes.agent_turns.map(agent_turns_text).transpose()?;
    let row = client
        .query_opt(
            UPDATE_USER,
            &[
                &id,
                &changes.name,
                &changes.slug,
                &status,
                &changes.time_zone.is_some(),
                &changes.time_zone.clone().flatten(),
                &changes.subscription_id.is_some(),
                &changes.subscription_id.flatten(),
                &agent_turns.is_some(),
                &agent_turns.flatten(),
                &version,
            ],
        )
        .await
        .map_err(|e| user_write_error(e, changes.slug.as_deref()))?
        .ok_or_else(|| StoreError::NotFound(format!("no user with id {id}")))?;
    let mut user = user_row(&row)?;
    if let Some(rules) = &changes.rules {
        replace_rules(client, id, rules).await?;
    }
    user.rules = rules_of(client, id).await?;
    Ok(user)
}

async fn insert_code(
    client: &impl GenericClient,
    user_id: i64,
    code: &NewInstallCode,
    now: Timestamp,
) -> StoreResult<()> {
    client
        .execute(
            INSERT_INSTALL_CODE,
            &[
                &code.hash,
                &user_id,
                &code.kind.as_str(),
                &now.as_millisecond(),
                &code.expires_at.as_millisecond(),
            ],
        )
        .await?;
    Ok(())
}

impl PgDb {
    pub async fn create_person(
        &self,
        person: NewPerson,
        setup_code: NewInstallCode,
        change: Change,
    ) -> StoreResult<Person> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let version = next_policy_version(&*tx).await?;
        let user = insert_user(&*tx, &person, version, change.at.as_millisecond()).await?;
        insert_code(&*tx, user.id, &setup_code, change.at).await?;
        let detail = json!({
            "name": user.name, "slug": user.slug, "limits": user.rules,
            "subscription": person.subscription_label, "agent_turns": user.agent_turns,
        });
        super::insert_audit(
            &*tx,
            &change.audit("user_created", Some(user.id), None, Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(user)
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
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let version = next_policy_version(&*tx).await?;
        let row = update_user(&*tx, id, &changes, version).await?;
        for token in &pending {
            devices::set_pending_token(&*tx, token).await?;
        }
        super::insert_audit(
            &*tx,
            &change.audit("user_updated", Some(id), None, Some(detail)),
        )
        .await?;
        if row.status != old_status {
            let kind = if row.status == UserStatus::Killed {
                "user_killed"
            } else {
                "user_status_change"
            };
            let detail = json!({ "old_status": old_status, "new_status": row.status });
            super::insert_audit(&*tx, &change.audit(kind, Some(id), None, Some(detail))).await?;
        }
        tx.commit().await?;
        Ok(row)
    }

    pub async fn delete_person(&self, id: i64, change: Change) -> StoreResult<bool> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .query_opt(
                "DELETE FROM users WHERE id = $1 RETURNING name, slug",
                &[&id],
            )
            .await?;
        let Some(row) = deleted else {
            return Ok(false);
        };
        let name: String = row.try_get(0)?;
        let slug: String = row.try_get(1)?;
        let detail = json!({ "name": name, "slug": slug });
        super::insert_audit(
            &*tx,
            &change.audit("user_deleted", Some(id), None, Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn add_install_code(
        &self,
        user_id: i64,
        code: NewInstallCode,
        change: Change,
    ) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        insert_code(&*tx, user_id, &code, change.at).await?;
        let detail = json!({ "kind": code.kind });
        super::insert_audit(
            &*tx,
            &change.audit("install_code_created", Some(user_id), None, Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn rotate_tokens(
        &self,
        user_id: i64,
        pending: Vec<PendingToken>,
        change: Change,
    ) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        for token in &pending {
            devices::set_pending_token(&*tx, token).await?;
        }
        let detail = json!({ "devices": pending.len() });
        super::insert_audit(
            &*tx,
            &change.audit("tokens_rotated", Some(user_id), None, Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn revoke_device(&self, id: i64, change: Change) -> StoreResult<Option<Device>> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let Some(row) = devices::revoke(&*tx, id, change.at.as_millisecond()).await? else {
            return Ok(None);
        };
        let detail = json!({
            "hostname": row.details.hostname, "kind": row.kind,
            "os_user": row.details.os_user,
        });
        super::insert_audit(
            &*tx,
            &change.audit("device_revoked", Some(row.user_id), Some(id), Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    pub async fn promote_device_token(&self, device_id: i64, hash: String) -> StoreResult<()> {
        let client = self.connection().await?;
        client
            .execute(PROMOTE_PENDING_TOKEN, &[&device_id, &hash])
            .await?;
        Ok(())
    }

    pub async fn last_active(&self, ids: Vec<i64>) -> StoreResult<Vec<Option<i64>>> {
        let client = self.connection().await?;
        client
            .query(LAST_ACTIVE, &[&ids])
            .await?
            .iter()
            .map(|row| Ok(row.try_get(0)?))
            .collect()
    }

    pub async fn person_contact(
        &self,
        user_id: i64,
    ) -> StoreResult<(Option<String>, Option<Identity>)> {
        let client = self.connection().await?;
        let Some(row) = client.query_opt(CONTACT, &[&user_id]).await? else {
            return Ok((None, None));
        };
        let linked = row.try_get::<_, Option<i64>>(0)?.is_some();
        let identity = linked.then(|| identity(&row)).transpose()?;
        Ok((row.try_get(13)?, identity))
    }

    pub async fn person_with_email(&self, email: String) -> StoreResult<Option<i64>> {
        let client = self.connection().await?;
        Ok(client
            .query_opt(USER_WITH_EMAIL, &[&email])
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    }
}
