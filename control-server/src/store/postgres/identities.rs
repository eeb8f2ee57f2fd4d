//! On PostgreSQL: Single sign-on: identities, the logins under way, sign-ins and session
//! re-checks.

mod statements;

pub(super) use self::statements::{identity, identity_columns};

use jiff::Timestamp;
use serde_json::json;

use self::statements::{
    identity_by_id, link, locked_identity, set_identity_sessions_role, set_recheck,
    unlinked_user_by_email,
};
use super::accounts::{conflict_if_unique, insert_session};
use super::insert_audit;
use crate::db::auth::{DueRecheck, NewSession};
use crate::db::corrupt;
use crate::db::identities::{Claims, PendingLogin};
use crate::model::{AuditEntry, Identity, Role};
use crate::postgres::PgDb;
use crate::service::audit;
use crate::store::identities::{SSO_ACTOR, no_identity};
use crate::store::{StoreError, StoreResult};

/// Most logins under way at once; the oldest give way (a flood of started
/// logins cannot fill the disk). The same cap as on SQLite.
const MAX_PENDING_LOGINS: i64 = 10_000;

impl PgDb {
    pub async fn identities(&self) -> StoreResult<Vec<Identity>> {
        let client = self.connection().await?;
        statements::identities(&**client).await
    }

    pub async fn identity(&self, id: i64) -> StoreResult<Option<Identity>> {
        let client = self.connection().await?;
        identity_by_id(&**client, id).await
    }

    pub async fn remember_pending_login(
        &self,
        login: PendingLogin,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "DELETE FROM oidc_logins WHERE expires_at <= $1",
            &[&now.as_millisecond()],
        )
        .await?;
        tx.execute(
            "DELETE FROM oidc_logins WHERE state_hash IN (
                 SELECT state_hash FROM oidc_logins ORDER BY expires_at DESC OFFSET $1)",
            &[&(MAX_PENDING_LOGINS - 1)],
        )
        .await?;
        tx.execute(
            "INSERT INTO oidc_logins (state_hash, browser_hash, nonce, pkce_verifier, return_to,
                                      expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &login.state_hash,
                &login.browser_hash,
                &login.nonce,
                &login.pkce_verifier,
                &login.return_to,
                &login.expires_at,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn take_pending_login(
        &self,
        state_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<PendingLogin>> {
        let client = self.connection().await?;
        // One statement: of replicas taking the same state at once, one
        // deletes the row and gets it, the others find nothing.
        let row = client
            .query_opt(
                "DELETE FROM oidc_logins WHERE state_hash = $1
                 RETURNING state_hash, browser_hash, nonce, pkce_verifier, return_to, expires_at",
                &[&state_hash],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let login = PendingLogin {
            state_hash: row.try_get(0)?,
            browser_hash: row.try_get(1)?,
            nonce: row.try_get(2)?,
            pkce_verifier: row.try_get(3)?,
            return_to: row.try_get(4)?,
            expires_at: row.try_get(5)?,
        };
        Ok(Some(login).filter(|login| login.expires_at > now.as_millisecond()))
    }

    pub async fn record_sso_sign_in(
        &self,
        claims: Claims,
        group_role: Option<Role>,
        link_by_email: bool,
        session: NewSession<'_>,
        client: String,
        now: Timestamp,
    ) -> StoreResult<Identity> {
        let mut connection = self.connection().await?;
        let tx = connection.transaction().await?;
        let id =
            statements::record_sign_in(&*tx, &claims, group_role, now.as_millisecond()).await?;
        let mut identity = identity_by_id(&*tx, id)
            .await?
            .ok_or_else(|| corrupt("an identity vanished while it was written"))?;
        if identity.person.is_none()
            && link_by_email
            && claims.email_verified
            && let Some(email) = &claims.email
            && let Some(user_id) = unlinked_user_by_email(&*tx, email).await?
        {
            link(&*tx, identity.id, Some(user_id)).await?;
            insert_audit(
                &*tx,
                &audit(
                    now,
                    "identity_linked",
                    SSO_ACTOR,
                    Some(user_id),
                    None,
                    Some(
                        json!({ "identity_id": identity.id, "subject": identity.subject,
                                 "by": "verified e-mail", "email": email }),
                    ),
                ),
            )
            .await?;
            identity = identity_by_id(&*tx, identity.id).await?.unwrap_or(identity);
        }
        // The identity's other sessions follow what this sign-in found
        // (new groups, or none: they end).
        set_identity_sessions_role(&*tx, identity.id, identity.role()).await?;
        if let Some(role) = identity.role() {
            insert_session(
                &*tx,
                &NewSession {
                    account_id: None,
                    identity_id: Some(identity.id),
                    role,
                    ..session
                },
            )
            .await?;
            insert_audit(
                &*tx,
                &audit(
                    now,
                    "login",
                    &identity.actor(),
                    identity.person.as_ref().map(|(id, _)| *id),
                    None,
                    Some(json!({ "client": client, "via": "sso",
                                 "subject": identity.subject, "role": role,
                                 "groups": identity.groups })),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(identity)
    }

    pub async fn due_sso_rechecks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueRecheck>> {
        let client = self.connection().await?;
        let rows = client
            .query(
                "SELECT id, identity_id, refresh_token FROM sessions
                 WHERE recheck_at IS NOT NULL AND recheck_at <= $1 AND expires_at > $1
                       AND identity_id IS NOT NULL AND refresh_token IS NOT NULL
                 ORDER BY recheck_at, id LIMIT $2",
                &[&now.as_millisecond(), &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DueRecheck {
                    session_id: row.try_get(0)?,
                    identity_id: row.try_get(1)?,
                    refresh_token: row.try_get(2)?,
                })
            })
            .collect()
    }

    pub async fn record_sso_recheck(
        &self,
        session_id: i64,
        identity: Identity,
        groups: Option<(Vec<String>, Option<Role>)>,
        refresh_token: Vec<u8>,
        next_recheck_at: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        let before = identity.role();
        let mut after = before;
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        if let Some((groups, group_role)) = &groups {
            statements::set_groups(&*tx, identity.id, groups, *group_role).await?;
            after = identity.role_override.or(*group_role);
        }
        set_recheck(&*tx, session_id, &refresh_token, next_recheck_at).await?;
        if after != before {
            set_identity_sessions_role(&*tx, identity.id, after).await?;
            insert_audit(
                &*tx,
                &audit(
                    now,
                    "identity_role_changed",
                    SSO_ACTOR,
                    identity.person.as_ref().map(|(id, _)| *id),
                    None,
                    Some(json!({ "identity_id": identity.id,
                                 "from": before, "to": after,
                                 "by": "groups" })),
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn postpone_sso_recheck(
        &self,
        session_id: i64,
        refresh_token: Vec<u8>,
        retry_at: i64,
    ) -> StoreResult<()> {
        let client = self.connection().await?;
        set_recheck(&**client, session_id, &refresh_token, retry_at).await
    }

    pub async fn end_sso_session(&self, session_id: i64, entry: AuditEntry) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM sessions WHERE id = $1", &[&session_id])
            .await?;
        insert_audit(&*tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_identity(
        &self,
        id: i64,
        role_override: Option<Option<Role>>,
        person: Option<Option<i64>>,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<Identity> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let identity = locked_identity(&*tx, id)
            .await?
            .ok_or_else(|| no_identity(id))?;
        if let Some(role) = role_override
            && role != identity.role_override
        {
            tx.execute(
                "UPDATE identities SET role_override = $2 WHERE id = $1",
                &[&id, &role.map(Role::as_str)],
            )
            .await?;
            let after = role.or(identity.group_role);
            set_identity_sessions_role(&*tx, id, after).await?;
            insert_audit(
                &*tx,
                &audit(
                    now,
                    "identity_role_changed",
                    &actor,
                    identity.person.as_ref().map(|(id, _)| *id),
                    None,
                    Some(
                        json!({ "identity_id": id, "from": identity.role(), "to": after,
                                 "role_override": role, "by": "admin" }),
                    ),
                ),
            )
            .await?;
        }
        let linked = identity.person.as_ref().map(|(id, _)| *id);
        if let Some(user_id) = person
            && user_id != linked
        {
            link(&*tx, id, user_id).await?;
            let (kind, user) = match user_id {
                Some(user_id) => ("identity_linked", Some(user_id)),
                None => ("identity_unlinked", linked),
            };
            insert_audit(
                &*tx,
                &audit(
                    now,
                    kind,
                    &actor,
                    user,
                    None,
                    Some(json!({ "identity_id": id, "subject": identity.subject,
                                 "email": identity.email, "by": "admin" })),
                ),
            )
            .await?;
        }
        let identity = identity_by_id(&*tx, id)
            .await?
            .ok_or_else(|| no_identity(id))?;
        tx.commit().await?;
        Ok(identity)
    }

    pub async fn set_person_email(
        &self,
        user_id: i64,
        email: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<()> {
        let taken = |email: &str| format!("another person has the e-mail {email:?}");
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        if let Some(email) = &email {
            let holder = tx
                .query_opt(
                    "SELECT id FROM users WHERE lower(email) = lower($1)",
                    &[email],
                )
                .await?
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()?;
            if holder.is_some_and(|id| id != user_id) {
                return Err(StoreError::Conflict(taken(email)));
            }
        }
        tx.execute(
            "UPDATE users SET email = $2 WHERE id = $1",
            &[&user_id, &email],
        )
        .await
        .map_err(|e| conflict_if_unique(e, || taken(email.as_deref().unwrap_or_default())))?;
        insert_audit(
            &*tx,
            &audit(
                now,
                "person_email_changed",
                &actor,
                Some(user_id),
                None,
                Some(json!({ "email": email })),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_identity(&self, id: i64, actor: String, now: Timestamp) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        // Its sessions go with it (ON DELETE CASCADE).
        let row = tx
            .query_opt(
                "DELETE FROM identities WHERE id = $1 RETURNING subject, email, user_id",
                &[&id],
            )
            .await?
            .ok_or_else(|| no_identity(id))?;
        let subject: String = row.try_get(0)?;
        let email: Option<String> = row.try_get(1)?;
        let user_id: Option<i64> = row.try_get(2)?;
        insert_audit(
            &*tx,
            &audit(
                now,
                "identity_deleted",
                &actor,
                user_id,
                None,
                Some(json!({ "identity_id": id, "subject": subject, "email": email })),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
