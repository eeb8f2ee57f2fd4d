//! Admin accounts, API tokens and login sessions (single sign-on's are in
//! `identities`), and what a person's own page reads and changes.

use jiff::Timestamp;

use super::{Store, StoreResult};
use crate::alerts::condition::AlertRule;
use crate::db::auth::{NewApiToken, NewSession, Session};
use crate::db::events::StoredEvent;
use crate::model::{Account, ApiToken, AuditEntry, RaisedAlert, Role};

impl Store {
    /// Every named admin/viewer account, oldest first.
    pub async fn admin_accounts(&self) -> StoreResult<Vec<Account>> {
        dispatch!(self, admin_accounts())
    }

    /// Creates a named account with its password hash and logs `entry`
    /// with it (a taken username is a conflict).
    pub async fn create_admin_account(
        &self,
        username: String,
        password_hash: String,
        role: Role,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<Account> {
        dispatch!(
            self,
            create_admin_account(username, password_hash, role, now, entry)
        )
    }

    /// Deletes an account (its sessions go with it), revokes the API tokens
    /// it made and logs it; `false` when there is no such account.
    pub async fn delete_admin_account(
        &self,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<bool> {
        dispatch!(self, delete_admin_account(id, actor, now))
    }

    /// Every API token, revoked ones included, oldest first.
    pub async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        dispatch!(self, api_tokens())
    }

    /// Stores a new API token (its hash only) and logs it as made by its
    /// `created_by`.
    pub async fn create_api_token(
        &self,
        token: NewApiToken<'_>,
        now: Timestamp,
    ) -> StoreResult<ApiToken> {
        dispatch!(self, create_api_token(token, now))
    }

    /// Revokes an API token and logs `entry` if it exists; `false` when
    /// there is no such token (revoking a revoked one again is `true`).
    pub async fn revoke_api_token(
        &self,
        id: i64,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<bool> {
        dispatch!(self, revoke_api_token(id, now, entry))
    }

    /// What a password login is checked against: the built-in admin's hash
    /// (`username` `None`), or the named account with its hash.
    pub async fn login_credentials(
        &self,
        username: Option<String>,
    ) -> StoreResult<(Option<String>, Option<Account>)> {
        dispatch!(self, login_credentials(username))
    }

    /// Opens a login session and logs `entry` (the login) with it.
    pub async fn open_session(
        &self,
        session: NewSession<'_>,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        dispatch!(self, open_session(session, entry))
    }

    /// The session whose token hashes to `token_hash`, unless it has expired at `now`.
    pub async fn session_by_token_hash(
        &self,
        token_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        dispatch!(self, session_by_token_hash(token_hash, now))
    }

    /// The API token whose secret hashes to `token_hash`, unless revoked.
    pub async fn active_api_token_by_hash(
        &self,
        token_hash: String,
    ) -> StoreResult<Option<ApiToken>> {
        dispatch!(self, active_api_token_by_hash(token_hash))
    }

    /// Notes that an API token was used at `now`.
    pub async fn touch_api_token(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        dispatch!(self, touch_api_token(id, now))
    }

    /// Ends the session whose token hashes to `token_hash` (a logout); none is fine.
    pub async fn end_session(&self, token_hash: String) -> StoreResult<()> {
        dispatch!(self, end_session(token_hash))
    }

    /// For a person's own page, read together: every alert rule (the page
    /// keeps the person's own) and the newest `limit` alerts of the rules
    /// they own.
    pub async fn person_alerts(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<(Vec<AlertRule>, Vec<RaisedAlert>)> {
        dispatch!(self, person_alerts(user_id, limit))
    }

    /// A person's newest `limit` blocked requests, newest first.
    pub async fn person_recent_blocks(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        dispatch!(self, person_recent_blocks(user_id, limit))
    }

    /// Replaces a person's own limit alerts with one rule per threshold
    /// (kept thresholds keep their rule) and logs `entry` with it.
    pub async fn set_own_alert_thresholds(
        &self,
        user_id: i64,
        thresholds: Vec<f64>,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        dispatch!(
            self,
            set_own_alert_thresholds(user_id, thresholds, now, entry)
        )
    }
}
