//! Users and their limit rules. Limits are replaced as a whole inside the
//! caller's transaction, so a user is never seen without them.

use ccgate_quota::{AgentTurns, Rule, UserStatus};

use crate::model::{Person, PersonChanges};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    DbError, DbResult, corrupt, enum_from_text, enum_to_text, is_foreign_key_violation,
    is_unique_violation,
};

pub struct NewUser<'a> {
    pub name: &'a str,
    pub slug: &'a str,
    pub time_zone: Option<&'a str>,
    pub rules: &'a [Rule],
    pub subscription_id: Option<i64>,
    pub agent_turns: Option<AgentTurns>,
    pub policy_version: u64,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, name, slug, status, time_zone, policy_version, created_at, subscription_id, agent_turns";

/// A row with the columns that still need parsing: status and agent turns.
type RawUser = (Person, String, Option<String>);

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawUser> {
    let status: String = row.get(3)?;
    Ok((
        Person {
            id: row.get(0)?,
            name: row.get(1)?,
            slug: row.get(2)?,
            status: UserStatus::Active,
            time_zone: row.get(4)?,
            policy_version: row.get::<_, i64>(5)?.max(0) as u64,
            created_at: super::instant_column(row, 6)?,
            rules: Vec::new(),
            subscription_id: row.get(7)?,
            agent_turns: None,
        },
        status,
        row.get(8)?,
    ))
}

fn finish(conn: &Connection, (mut user, status, agent_turns): RawUser) -> DbResult<Person> {
    user.status = status.parse().map_err(corrupt)?;
    user.agent_turns = agent_turns.as_deref().map(enum_from_text).transpose()?;
    user.rules = rules_of(conn, user.id)?;
    Ok(user)
}

fn agent_turns_text(value: Option<AgentTurns>) -> DbResult<Option<String>> {
    value.as_ref().map(enum_to_text).transpose()
}

pub fn rules_of(conn: &Connection, user_id: i64) -> DbResult<Vec<Rule>> {
    let mut statement = conn
        .prepare_cached("SELECT id, rule FROM limits WHERE user_id = ?1 ORDER BY position, id")?;
    let rows = statement.query_map([user_id], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
    })?;
    rows.map(|row| {
        let (id, json) = row?;
        let mut rule: Rule =
            serde_json::from_str(&json).map_err(|e| corrupt(format!("limit {id}: {e}")))?;
        rule.id = Some(id);
        Ok(rule)
    })
    .collect()
}

pub fn list(conn: &Connection) -> DbResult<Vec<Person>> {
    let mut statement = conn.prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY id"))?;
    let rows = statement
        .query_map([], from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(|row| finish(conn, row)).collect()
}

pub fn get(conn: &Connection, id: i64) -> DbResult<Option<Person>> {
    let row = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?;
    row.map(|row| finish(conn, row)).transpose()
}

pub fn slug_taken(conn: &Connection, slug: &str) -> DbResult<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM users WHERE slug = ?1", [slug], |_| Ok(()))
        .optional()?
        .is_some())
}

fn slug_conflict(error: rusqlite::Error, slug: &str) -> DbError {
    if is_unique_violation(&error) {
        DbError::Conflict(format!("the slug {slug:?} is already taken"))
    } else {
        subscription_gone(error)
    }
}

/// A subscription deleted while it was being assigned.
fn subscription_gone(error: rusqlite::Error) -> DbError {
    if is_foreign_key_violation(&error) {
        DbError::Conflict("that subscription was deleted meanwhile".to_owned())
    } else {
        error.into()
    }
}

pub fn insert(conn: &Connection, user: &NewUser<'_>) -> DbResult<Person> {
    conn.execute(
        "INSERT INTO users (name, slug, status, time_zone, policy_version, created_at,
             subscription_id, agent_turns)
         VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?6, ?7)",
        params![
            user.name,
            user.slug,
            user.time_zone,
            user.policy_version as i64,
            user.created_at,
            user.subscription_id,
            agent_turns_text(user.agent_turns)?,
        ],
    )
    .map_err(|e| slug_conflict(e, user.slug))?;
    let id = conn.last_insert_rowid();
    replace_rules(conn, id, user.rules)?;
    get(conn, id)?.ok_or_else(|| DbError::NotFound(format!("user {id} vanished")))
}

/// Replaces all of a user's rules (the caller's transaction makes it atomic).
pub fn replace_rules(conn: &Connection, user_id: i64, rules: &[Rule]) -> DbResult<()> {
    conn.execute("DELETE FROM limits WHERE user_id = ?1", [user_id])?;
    let mut statement =
        conn.prepare_cached("INSERT INTO limits (user_id, position, rule) VALUES (?1, ?2, ?3)")?;
    for (position, rule) in rules.iter().enumerate() {
        let mut stored = rule.clone();
        stored.id = None;
        let json = serde_json::to_string(&stored).map_err(corrupt)?;
        statement.execute(params![user_id, position as i64, json])?;
    }
    Ok(())
}

/// Applies `changes` and stamps the user with `policy_version`.
pub fn update(
    conn: &Connection,
    id: i64,
    changes: &PersonChanges,
    policy_version: u64,
) -> DbResult<Person> {
    let exists = conn
        .query_row("SELECT 1 FROM users WHERE id = ?1", [id], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Err(DbError::NotFound(format!("no user with id {id}")));
    }
    if let Some(name) = &changes.name {
        conn.execute(
            "UPDATE users SET name = ?2 WHERE id = ?1",
            params![id, name],
        )?;
    }
    if let Some(slug) = &changes.slug {
        conn.execute(
            "UPDATE users SET slug = ?2 WHERE id = ?1",
            params![id, slug],
        )
        .map_err(|e| slug_conflict(e, slug))?;
    }
    if let Some(status) = changes.status {
        conn.execute(
            "UPDATE users SET status = ?2 WHERE id = ?1",
            params![id, status.as_str()],
        )?;
    }
    if let Some(zone) = &changes.time_zone {
        conn.execute(
            "UPDATE users SET time_zone = ?2 WHERE id = ?1",
            params![id, zone],
        )?;
    }
    if let Some(rules) = &changes.rules {
        replace_rules(conn, id, rules)?;
    }
    if let Some(subscription_id) = changes.subscription_id {
        conn.execute(
            "UPDATE users SET subscription_id = ?2 WHERE id = ?1",
            params![id, subscription_id],
        )
        .map_err(subscription_gone)?;
    }
    if let Some(agent_turns) = changes.agent_turns {
        conn.execute(
            "UPDATE users SET agent_turns = ?2 WHERE id = ?1",
            params![id, agent_turns_text(agent_turns)?],
        )?;
    }
    set_policy_version(conn, id, policy_version)?;
    get(conn, id)?.ok_or_else(|| DbError::NotFound(format!("no user with id {id}")))
}

/// Stamps the user with `policy_version` (a change elsewhere altered their policy).
pub fn set_policy_version(conn: &Connection, id: i64, policy_version: u64) -> DbResult<()> {
    conn.execute(
        "UPDATE users SET policy_version = ?2 WHERE id = ?1",
        params![id, policy_version as i64],
    )?;
    Ok(())
}

/// Deletes a user with their limits, devices, codes and events.
pub fn delete(conn: &Connection, id: i64) -> DbResult<bool> {
    Ok(conn.execute("DELETE FROM users WHERE id = ?1", [id])? > 0)
}
