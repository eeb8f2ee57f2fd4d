//! On SQLite: Admin accounts, API tokens and login sessions (single sign-on's are in
//! `identities`), and what a person's own page reads and changes.

use jiff::Timestamp;
use serde_json::json;

use crate::alerts::condition::AlertRule;
use crate::db::Db;
use crate::db::auth::{NewApiToken, NewSession, Session};
use crate::db::events::{EventFilter, StoredEvent};
use crate::db::{self};
use crate::model::{Account, ApiToken, AuditEntry, EventType, RaisedAlert, Role};
use crate::service::audit;
use crate::store::StoreResult;

impl Db {
    pub async fn admin_accounts(&self) -> StoreResult<Vec<Account>> {
        self.read(db::auth::list_accounts).await
    }

    pub async fn create_admin_account(
        &self,
        username: String,
        password_hash: String,
        role: Role,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<Account> {
        self.write(move |tx| {
            let account = db::auth::insert_account(
                tx,
                &username,
                &password_hash,
                role,
                now.as_millisecond(),
            )?;
            db::audit::insert(tx, &entry)?;
            Ok(account)
        })
        .await
    }

    pub async fn delete_admin_account(
        &self,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.write(move |tx| {
            let revoked = db::auth::delete_account(tx, id, now.as_millisecond())?;
            if let Some(tokens) = revoked {
                let detail = json!({ "account_id": id, "tokens_revoked": tokens });
                db::audit::insert(
                    tx,
                    &audit(now, "account_deleted", &actor, None, None, Some(detail)),
                )?;
            }
            Ok(revoked.is_some())
        })
        .await
    }

    pub async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        self.read(db::auth::list_api_tokens).await
    }

    pub async fn create_api_token(
        &self,
        token: NewApiToken<'_>,
        now: Timestamp,
    ) -> StoreResult<ApiToken> {
        let (name, token_hash, actor) = (
            token.name.to_owned(),
            token.token_hash.to_owned(),
            token.created_by.to_owned(),
        );
        let (role, account_id) = (token.role, token.account_id);
        self.write(move |tx| {
            let token = db::auth::insert_api_token(
                tx,
                &NewApiToken {
                    name: &name,
                    token_hash: &token_hash,
                    role,
                    created_by: &actor,
                    account_id,
                },
                now.as_millisecond(),
            )?;
            let detail = json!({ "token_id": token.id, "name": name, "role": role });
            db::audit::insert(
                tx,
                &audit(now, "token_created", &actor, None, None, Some(detail)),
            )?;
            Ok(token)
        })
        .await
    }

    pub async fn revoke_api_token(
        &self,
        id: i64,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<bool> {
        self.write(move |tx| {
            let revoked = db::auth::revoke_api_token(tx, id, now.as_millisecond())?;
            if revoked {
                db::audit::insert(tx, &entry)?;
            }
            Ok(revoked)
        })
        .await
    }

    pub async fn login_credentials(
        &self,
        username: Option<String>,
    ) -> StoreResult<(Option<String>, Option<Account>)> {
        self.read(move |conn| match username {
            None => Ok((db::settings::admin_password_hash(conn)?, None)),
            Some(name) => {
                let account = db::auth::account_by_username(conn, &name)?;
                Ok((account.as_ref().map(|a| a.password_hash.clone()), account))
            }
        })
        .await
    }

    pub async fn open_session(
        &self,
        session: NewSession<'_>,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let (token_hash, csrf_token) =
            (session.token_hash.to_owned(), session.csrf_token.to_owned());
        let NewSession {
            account_id,
            identity_id,
            role,
            created_at,
            expires_at,
            refresh_token,
            recheck_at,
            ..
        } = session;
        self.write(move |tx| {
            db::auth::insert_session(
                tx,
                &NewSession {
                    token_hash: &token_hash,
                    account_id,
                    identity_id,
                    role,
                    csrf_token: &csrf_token,
                    created_at,
                    expires_at,
                    refresh_token,
                    recheck_at,
                },
            )?;
            db::audit::insert(tx, &entry)
        })
        .await
    }

    pub async fn session_by_token_hash(
        &self,
        token_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        self.read(move |conn| db::auth::live_session(conn, &token_hash, now.as_millisecond()))
            .await
    }

    pub async fn active_api_token_by_hash(
        &self,
        token_hash: String,
    ) -> StoreResult<Option<ApiToken>> {
        self.read(move |conn| db::auth::active_api_token(conn, &token_hash))
            .await
    }

    pub async fn touch_api_token(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        self.write(move |tx| db::auth::touch_api_token(tx, id, now.as_millisecond()))
            .await
    }

    pub async fn end_session(&self, token_hash: String) -> StoreResult<()> {
        self.write(move |tx| db::auth::delete_session(tx, &token_hash))
            .await
    }

    pub async fn person_alerts(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<(Vec<AlertRule>, Vec<RaisedAlert>)> {
        self.read(move |conn| {
            Ok((
                db::alerts::rules(conn)?,
                db::alerts::events_of_owner(conn, user_id, limit)?,
            ))
        })
        .await
    }

    pub async fn person_recent_blocks(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let filter = EventFilter {
            user_id: Some(user_id),
            event_type: Some(EventType::Blocked),
            before: None,
            limit,
        };
        self.read(move |conn| db::events::page(conn, &filter)).await
    }

    pub async fn set_own_alert_thresholds(
        &self,
        user_id: i64,
        thresholds: Vec<f64>,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            db::alerts::replace_owned_limit_rules(tx, user_id, &thresholds, now.as_millisecond())?;
            db::audit::insert(tx, &entry)
        })
        .await
    }
}
