//! On SQLite: Single sign-on: identities, the logins under way, sign-ins and session
//! re-checks.

use jiff::Timestamp;
use serde_json::json;

use crate::db::Db;
use crate::db::auth::{DueRecheck, NewSession};
use crate::db::identities::{Claims, PendingLogin};
use crate::db::{self};
use crate::model::{AuditEntry, Identity, Role};
use crate::service::audit;
use crate::store::identities::{SSO_ACTOR, no_identity};
use crate::store::{StoreError, StoreResult};

impl Db {
    pub async fn identities(&self) -> StoreResult<Vec<Identity>> {
        self.read(db::identities::list).await
    }

    pub async fn identity(&self, id: i64) -> StoreResult<Option<Identity>> {
        self.read(move |conn| db::identities::get(conn, id)).await
    }

    pub async fn remember_pending_login(
        &self,
        login: PendingLogin,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.write(move |tx| db::identities::insert_pending(tx, &login, now.as_millisecond()))
            .await
    }

    pub async fn take_pending_login(
        &self,
        state_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<PendingLogin>> {
        self.write(move |tx| db::identities::take_pending(tx, &state_hash, now.as_millisecond()))
            .await
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
        let (token_hash, csrf_token) =
            (session.token_hash.to_owned(), session.csrf_token.to_owned());
        let NewSession {
            created_at,
            expires_at,
            refresh_token,
            recheck_at,
            ..
        } = session;
        self.write(move |tx| {
            let mut identity =
                db::identities::record_sign_in(tx, &claims, group_role, now.as_millisecond())?;
            if identity.person.is_none()
                && link_by_email
                && claims.email_verified
                && let Some(email) = &claims.email
                && let Some(user_id) = db::identities::unlinked_user_by_email(tx, email)?
            {
                db::identities::link(tx, identity.id, Some(user_id))?;
                db::audit::insert(
                    tx,
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
                )?;
                identity = db::identities::get(tx, identity.id)?.unwrap_or(identity);
            }
            // The identity's other sessions follow what this sign-in found
            // (new groups, or none: they end).
            db::auth::set_identity_sessions_role(tx, identity.id, identity.role())?;
            let Some(role) = identity.role() else {
                return Ok(identity);
            };
            db::auth::insert_session(
                tx,
                &NewSession {
                    token_hash: &token_hash,
                    account_id: None,
                    identity_id: Some(identity.id),
                    role,
                    csrf_token: &csrf_token,
                    created_at,
                    expires_at,
                    refresh_token,
                    recheck_at,
                },
            )?;
            db::audit::insert(
                tx,
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
            )?;
            Ok(identity)
        })
        .await
    }

    pub async fn due_sso_rechecks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueRecheck>> {
        self.read(move |conn| db::auth::due_rechecks(conn, now.as_millisecond(), limit))
            .await
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
        self.write(move |tx| {
            let mut after = before;
            if let Some((groups, group_role)) = &groups {
                db::identities::set_groups(tx, identity.id, groups, *group_role)?;
                after = identity.role_override.or(*group_role);
            }
            db::auth::set_recheck(tx, session_id, &refresh_token, next_recheck_at)?;
            if after != before {
                db::auth::set_identity_sessions_role(tx, identity.id, after)?;
                db::audit::insert(
                    tx,
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
                )?;
            }
            Ok(())
        })
        .await
    }

    pub async fn postpone_sso_recheck(
        &self,
        session_id: i64,
        refresh_token: Vec<u8>,
        retry_at: i64,
    ) -> StoreResult<()> {
        self.write(move |tx| db::auth::set_recheck(tx, session_id, &refresh_token, retry_at))
            .await
    }

    pub async fn end_sso_session(&self, session_id: i64, entry: AuditEntry) -> StoreResult<()> {
        self.write(move |tx| {
            db::auth::delete_session_by_id(tx, session_id)?;
            db::audit::insert(tx, &entry)
        })
        .await
    }

    pub async fn update_identity(
        &self,
        id: i64,
        role_override: Option<Option<Role>>,
        person: Option<Option<i64>>,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<Identity> {
        self.write(move |tx| {
            let identity = db::identities::get(tx, id)?.ok_or_else(|| no_identity(id))?;
            if let Some(role) = role_override
                && role != identity.role_override
            {
                db::identities::set_role_override(tx, id, role)?;
                let after = role.or(identity.group_role);
                db::auth::set_identity_sessions_role(tx, id, after)?;
                db::audit::insert(
                    tx,
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
                )?;
            }
            let linked = identity.person.as_ref().map(|(id, _)| *id);
            if let Some(user_id) = person
                && user_id != linked
            {
                db::identities::link(tx, id, user_id)?;
                let (kind, user) = match user_id {
                    Some(user_id) => ("identity_linked", Some(user_id)),
                    None => ("identity_unlinked", linked),
                };
                db::audit::insert(
                    tx,
                    &audit(
                        now,
                        kind,
                        &actor,
                        user,
                        None,
                        Some(json!({ "identity_id": id, "subject": identity.subject,
                                         "email": identity.email, "by": "admin" })),
                    ),
                )?;
            }
            db::identities::get(tx, id)?.ok_or_else(|| no_identity(id))
        })
        .await
    }

    pub async fn set_person_email(
        &self,
        user_id: i64,
        email: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            if let Some(email) = &email
                && db::identities::user_with_email(tx, email)?.is_some_and(|id| id != user_id)
            {
                return Err(StoreError::Conflict(format!(
                    "another person has the e-mail {email:?}"
                )));
            }
            db::identities::set_user_email(tx, user_id, email.as_deref())?;
            db::audit::insert(
                tx,
                &audit(
                    now,
                    "person_email_changed",
                    &actor,
                    Some(user_id),
                    None,
                    Some(json!({ "email": email })),
                ),
            )
        })
        .await
    }

    pub async fn delete_identity(&self, id: i64, actor: String, now: Timestamp) -> StoreResult<()> {
        self.write(move |tx| {
            let identity = db::identities::get(tx, id)?.ok_or_else(|| no_identity(id))?;
            db::identities::delete(tx, id)?;
            db::audit::insert(
                tx,
                &audit(
                    now,
                    "identity_deleted",
                    &actor,
                    identity.person.as_ref().map(|(id, _)| *id),
                    None,
                    Some(json!({ "identity_id": id, "subject": identity.subject,
                                     "email": identity.email })),
                ),
            )
        })
        .await
    }
}
