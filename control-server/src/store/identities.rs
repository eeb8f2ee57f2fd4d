//! Single sign-on: identities, the logins under way, sign-ins and session
//! re-checks.

use jiff::Timestamp;

use super::{Store, StoreError, StoreResult};
use crate::db::auth::{DueRecheck, NewSession};
use crate::db::identities::{Claims, PendingLogin};
use crate::model::{AuditEntry, Identity, Role};

/// Who the audit log names for what single sign-on does by itself.
pub(super) const SSO_ACTOR: &str = "sso";

pub(super) fn no_identity(id: i64) -> StoreError {
    StoreError::NotFound(format!("no identity with id {id}"))
}

impl Store {
    /// Every single sign-on identity.
    pub async fn identities(&self) -> StoreResult<Vec<Identity>> {
        dispatch!(self, identities())
    }

    /// One identity, with the person it is linked to.
    pub async fn identity(&self, id: i64) -> StoreResult<Option<Identity>> {
        dispatch!(self, identity(id))
    }

    /// Remembers a login sent to the provider (dropping expired ones, and
    /// the oldest beyond the cap).
    pub async fn remember_pending_login(
        &self,
        login: PendingLogin,
        now: Timestamp,
    ) -> StoreResult<()> {
        dispatch!(self, remember_pending_login(login, now))
    }

    /// Takes the login under way for a state hash: once only, and only
    /// before it expires.
    pub async fn take_pending_login(
        &self,
        state_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<PendingLogin>> {
        dispatch!(self, take_pending_login(state_hash, now))
    }

    /// A verified single sign-on, in one transaction: the identity is
    /// recorded (linked to the unlinked person with its verified e-mail when
    /// `link_by_email`), its other sessions follow its role, and if it has
    /// one, `session` is opened for it (its `identity_id` and `role` are
    /// the identity's, whatever is passed) and the login logged.
    pub async fn record_sso_sign_in(
        &self,
        claims: Claims,
        group_role: Option<Role>,
        link_by_email: bool,
        session: NewSession<'_>,
        client: String,
        now: Timestamp,
    ) -> StoreResult<Identity> {
        dispatch!(
            self,
            record_sso_sign_in(claims, group_role, link_by_email, session, client, now)
        )
    }

    /// Up to `limit` sessions due for a check with the provider at `now`,
    /// the most overdue first.
    pub async fn due_sso_rechecks(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<DueRecheck>> {
        dispatch!(self, due_sso_rechecks(now, limit))
    }

    /// A re-check the provider passed: the session's new refresh token and
    /// next check, and, with new `groups` (and the role they give), the
    /// identity's groups; a changed role reaches its sessions and the log.
    pub async fn record_sso_recheck(
        &self,
        session_id: i64,
        identity: Identity,
        groups: Option<(Vec<String>, Option<Role>)>,
        refresh_token: Vec<u8>,
        next_recheck_at: i64,
        now: Timestamp,
    ) -> StoreResult<()> {
        dispatch!(
            self,
            record_sso_recheck(
                session_id,
                identity,
                groups,
                refresh_token,
                next_recheck_at,
                now
            )
        )
    }

    /// Asks for a session's re-check again at `retry_at` (the provider did
    /// not answer), keeping its refresh token.
    pub async fn postpone_sso_recheck(
        &self,
        session_id: i64,
        refresh_token: Vec<u8>,
        retry_at: i64,
    ) -> StoreResult<()> {
        dispatch!(
            self,
            postpone_sso_recheck(session_id, refresh_token, retry_at)
        )
    }

    /// Ends a session the provider refused and logs `entry` with it.
    pub async fn end_sso_session(&self, session_id: i64, entry: AuditEntry) -> StoreResult<()> {
        dispatch!(self, end_sso_session(session_id, entry))
    }

    /// An admin's change to an identity: its hand-set role (`Some(None)`
    /// clears it; its sessions follow at once) and its person (`Some(None)`
    /// unlinks), each logged if it changes anything; gives it back as now.
    pub async fn update_identity(
        &self,
        id: i64,
        role_override: Option<Option<Role>>,
        person: Option<Option<i64>>,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<Identity> {
        dispatch!(self, update_identity(id, role_override, person, actor, now))
    }

    /// Sets or clears the e-mail a person's identity is matched by, and
    /// logs it; another person with that e-mail is a conflict.
    pub async fn set_person_email(
        &self,
        user_id: i64,
        email: Option<String>,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<()> {
        dispatch!(self, set_person_email(user_id, email, actor, now))
    }

    /// Deletes an identity (its sessions go with it) and logs it; not found
    /// when there is none.
    pub async fn delete_identity(&self, id: i64, actor: String, now: Timestamp) -> StoreResult<()> {
        dispatch!(self, delete_identity(id, actor, now))
    }
}
