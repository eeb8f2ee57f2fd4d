//! The statements single sign-on's use cases share on PostgreSQL, each in
//! the caller's transaction (or on its connection).

use tokio_postgres::types::Json;
use tokio_postgres::{GenericClient, Row};

use crate::db::corrupt;
use crate::db::identities::Claims;
use crate::model::{Identity, Role};
use crate::store::StoreResult;
use crate::store::postgres::accounts::{conflict_if_unique, role};

/// An identity's columns (`i`) with the name of its person (`u`), in the
/// order [`identity`] reads them.
macro_rules! identity_columns {
    () => {
        "i.id, i.issuer, i.subject, i.email, i.email_verified, i.name, i.groups,
         i.group_role, i.role_override, i.user_id, u.name, i.created_at, i.last_login_at"
    };
}
pub(in crate::store::postgres) use identity_columns;

/// An identity with the name of its person, then `$tail` (a filter, an order).
macro_rules! select_identities {
    ($tail:literal) => {
        concat!(
            "SELECT ",
            identity_columns!(),
            " FROM identities i LEFT JOIN users u ON u.id = i.user_id ",
            $tail
        )
    };
}

fn optional_role(text: Option<&str>) -> StoreResult<Option<Role>> {
    text.map(role).transpose()
}

/// A row of [`identity_columns!`].
pub(in crate::store::postgres) fn identity(row: &Row) -> StoreResult<Identity> {
    let id: i64 = row.try_get(0)?;
    let groups: serde_json::Value = row.try_get(6)?;
    let user_id: Option<i64> = row.try_get(9)?;
    let user_name: Option<String> = row.try_get(10)?;
    Ok(Identity {
        id,
        issuer: row.try_get(1)?,
        subject: row.try_get(2)?,
        email: row.try_get(3)?,
        email_verified: row.try_get(4)?,
        name: row.try_get(5)?,
        groups: serde_json::from_value(groups)
            .map_err(|e| corrupt(format!("identity {id} groups: {e}")))?,
        group_role: optional_role(row.try_get(7)?)?,
        role_override: optional_role(row.try_get(8)?)?,
        person: user_id.zip(user_name),
        created_at: crate::store::postgres::instant(row, 11)?,
        last_login_at: crate::store::postgres::instant(row, 12)?,
    })
}

/// Every identity, oldest first.
pub(super) async fn identities(client: &impl GenericClient) -> StoreResult<Vec<Identity>> {
    let rows = client
        .query(select_identities!("ORDER BY i.id"), &[])
        .await?;
    rows.iter().map(identity).collect()
}

pub(super) async fn identity_by_id(
    client: &impl GenericClient,
    id: i64,
) -> StoreResult<Option<Identity>> {
    let row = client
        .query_opt(select_identities!("WHERE i.id = $1"), &[&id])
        .await?;
    row.as_ref().map(identity).transpose()
}

/// An identity, locked until the transaction ends: an admin's change reads
/// it as no other replica is changing it.
pub(super) async fn locked_identity(
    client: &impl GenericClient,
    id: i64,
) -> StoreResult<Option<Identity>> {
    let row = client
        .query_opt(
            select_identities!("WHERE i.id = $1 FOR UPDATE OF i"),
            &[&id],
        )
        .await?;
    row.as_ref().map(identity).transpose()
}

/// Records a sign-in: the identity is created or its claims replaced, with
/// the role its groups give now; its id (the row stays locked until the
/// transaction ends).
pub(super) async fn record_sign_in(
    client: &impl GenericClient,
    claims: &Claims,
    group_role: Option<Role>,
    now: i64,
) -> StoreResult<i64> {
    let row = client
        .query_one(
            "INSERT INTO identities (issuer, subject, email, email_verified, name, groups,
                                     group_role, created_at, last_login_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
             ON CONFLICT (issuer, subject) DO UPDATE SET
                 email = EXCLUDED.email, email_verified = EXCLUDED.email_verified,
                 name = EXCLUDED.name, groups = EXCLUDED.groups,
                 group_role = EXCLUDED.group_role, last_login_at = EXCLUDED.last_login_at
             RETURNING id",
            &[
                &claims.issuer,
                &claims.subject,
                &claims.email,
                &claims.email_verified,
                &claims.name,
                &Json(&claims.groups),
                &group_role.map(Role::as_str),
                &now,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Replaces the groups (and the role they give) after a re-check.
pub(super) async fn set_groups(
    client: &impl GenericClient,
    id: i64,
    groups: &[String],
    group_role: Option<Role>,
) -> StoreResult<()> {
    client
        .execute(
            "UPDATE identities SET groups = $2, group_role = $3 WHERE id = $1",
            &[&id, &Json(groups), &group_role.map(Role::as_str)],
        )
        .await?;
    Ok(())
}

/// Locks a person's row until the transaction ends: whoever links an
/// identity to them (a sign-in by e-mail, an admin) does it one at a time,
/// across replicas, and sees the link the one before made.
async fn lock_person(client: &impl GenericClient, user_id: i64) -> StoreResult<()> {
    client
        .execute(
            "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
            &[&user_id],
        )
        .await?;
    Ok(())
}

/// Links an identity to a person (`None`: unlinks it). A person has at
/// most one identity: linking takes the person from any other.
pub(super) async fn link(
    client: &impl GenericClient,
    id: i64,
    user_id: Option<i64>,
) -> StoreResult<()> {
    if let Some(user_id) = user_id {
        lock_person(client, user_id).await?;
        client
            .execute(
                "UPDATE identities SET user_id = NULL WHERE user_id = $1 AND id <> $2",
                &[&user_id, &id],
            )
            .await?;
    }
    client
        .execute(
            "UPDATE identities SET user_id = $2 WHERE id = $1",
            &[&id, &user_id],
        )
        .await
        .map_err(|e| {
            conflict_if_unique(e, || "that person is linked to another identity".to_owned())
        })?;
    Ok(())
}

/// The person whose e-mail is `email` (case-insensitive) and who has no
/// identity yet; their row stays locked (see [`lock_person`]).
pub(super) async fn unlinked_user_by_email(
    client: &impl GenericClient,
    email: &str,
) -> StoreResult<Option<i64>> {
    let Some(row) = client
        .query_opt(
            "SELECT id FROM users WHERE lower(email) = lower($1) FOR NO KEY UPDATE",
            &[&email],
        )
        .await?
    else {
        return Ok(None);
    };
    let user_id: i64 = row.try_get(0)?;
    // A statement of its own, after the lock: it sees a link made while
    // this waited.
    let linked = client
        .query_opt("SELECT 1 FROM identities WHERE user_id = $1", &[&user_id])
        .await?
        .is_some();
    Ok((!linked).then_some(user_id))
}

/// Gives every session of an identity its new role, or ends them (`None`).
pub(super) async fn set_identity_sessions_role(
    client: &impl GenericClient,
    identity_id: i64,
    role: Option<Role>,
) -> StoreResult<()> {
    match role {
        Some(role) => {
            client
                .execute(
                    "UPDATE sessions SET role = $2 WHERE identity_id = $1",
                    &[&identity_id, &role.as_str()],
                )
                .await?
        }
        None => {
            client
                .execute(
                    "DELETE FROM sessions WHERE identity_id = $1",
                    &[&identity_id],
                )
                .await?
        }
    };
    Ok(())
}

/// After a re-check: the (possibly new) refresh token and the next check.
pub(super) async fn set_recheck(
    client: &impl GenericClient,
    session_id: i64,
    refresh_token: &[u8],
    recheck_at: i64,
) -> StoreResult<()> {
    client
        .execute(
            "UPDATE sessions SET refresh_token = $2, recheck_at = $3 WHERE id = $1",
            &[&session_id, &refresh_token, &recheck_at],
        )
        .await?;
    Ok(())
}
