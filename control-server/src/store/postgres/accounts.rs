//! On PostgreSQL: Admin accounts, API tokens and login sessions (single sign-on's are in
//! `identities`), and what a person's own page reads and changes.

mod own_page;

use jiff::Timestamp;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};

use super::insert_audit;
use crate::db::auth::{NewApiToken, NewSession, Session};
use crate::db::corrupt;
use crate::model::{Account, ApiToken, AuditEntry, Role};
use crate::postgres::{PgDb, PgError};
use crate::service::audit;
use crate::store::{StoreError, StoreResult};

/// A role as it is stored.
pub(super) fn role(text: &str) -> StoreResult<Role> {
    text.parse().map_err(corrupt)
}

/// `error` as a store error: a unique index refusing the row is the
/// conflict `message` says.
pub(super) fn conflict_if_unique(
    error: tokio_postgres::Error,
    message: impl FnOnce() -> String,
) -> StoreError {
    let error = PgError::from(error);
    if error.is_unique_violation() {
        StoreError::Conflict(message())
    } else {
        error.into()
    }
}

fn account(row: &Row) -> StoreResult<Account> {
    Ok(Account {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        role: role(row.try_get(3)?)?,
        created_at: super::instant(row, 4)?,
    })
}

fn api_token(row: &Row) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: role(row.try_get(2)?)?,
        created_by: row.try_get(3)?,
        created_at: super::instant(row, 4)?,
        last_used_at: super::instant_opt(row, 5)?,
        revoked_at: super::instant_opt(row, 6)?,
        account_id: row.try_get(7)?,
    })
}

fn session(row: &Row) -> StoreResult<Session> {
    Ok(Session {
        id: row.try_get(0)?,
        account_id: row.try_get(1)?,
        username: row.try_get(2)?,
        role: role(row.try_get(3)?)?,
        csrf_token: row.try_get(4)?,
        expires_at: row.try_get(5)?,
        identity_id: row.try_get(6)?,
        identity_name: row.try_get(7)?,
    })
}

/// Opens a login session in the caller's transaction.
pub(super) async fn insert_session(
    client: &impl GenericClient,
    session: &NewSession<'_>,
) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO sessions (token_hash, account_id, identity_id, role, csrf_token,
                                   created_at, expires_at, refresh_token, recheck_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &session.token_hash,
                &session.account_id,
                &session.identity_id,
                &session.role.as_str(),
                &session.csrf_token,
                &session.created_at,
                &session.expires_at,
                &session.refresh_token,
                &session.recheck_at,
            ],
        )
        .await?;
    Ok(())
}

impl PgDb {
    pub async fn admin_accounts(&self) -> StoreResult<Vec<Account>> {
        let client = self.connection().await?;
        let rows = client
            .query(
                "SELECT id, username, password_hash, role, created_at FROM accounts ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(account).collect()
    }

    pub async fn create_admin_account(
        &self,
        username: String,
        password_hash: String,
        role: Role,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<Account> {
        let created_at = now.as_millisecond();
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO accounts (username, password_hash, role, created_at)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&username, &password_hash, &role.as_str(), &created_at],
            )
            .await
            .map_err(|e| {
                conflict_if_unique(e, || {
                    format!("an account named {username:?} already exists")
                })
            })?
            .try_get(0)?;
        insert_audit(&*tx, &entry).await?;
        tx.commit().await?;
        Ok(Account {
            id,
            username,
            password_hash,
            role,
            created_at: now,
        })
    }

    pub async fn delete_admin_account(
        &self,
        id: i64,
        actor: String,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        if tx
            .execute("DELETE FROM accounts WHERE id = $1", &[&id])
            .await?
            == 0
        {
            return Ok(false);
        }
        let tokens = tx
            .execute(
                "UPDATE api_tokens SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL",
                &[&id, &now.as_millisecond()],
            )
            .await?;
        let detail = json!({ "account_id": id, "tokens_revoked": tokens });
        insert_audit(
            &*tx,
            &audit(now, "account_deleted", &actor, None, None, Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let client = self.connection().await?;
        let rows = client
            .query(
                "SELECT id, name, role, created_by, created_at, last_used_at, revoked_at, account_id
                 FROM api_tokens ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(api_token).collect()
    }

    pub async fn create_api_token(
        &self,
        token: NewApiToken<'_>,
        now: Timestamp,
    ) -> StoreResult<ApiToken> {
        let NewApiToken {
            name,
            token_hash,
            role,
            created_by,
            account_id,
        } = token;
        let created_at = now.as_millisecond();
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO api_tokens (name, token_hash, role, created_by, created_at, account_id)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &name,
                    &token_hash,
                    &role.as_str(),
                    &created_by,
                    &created_at,
                    &account_id,
                ],
            )
            .await?
            .try_get(0)?;
        let detail = json!({ "token_id": id, "name": name, "role": role });
        insert_audit(
            &*tx,
            &audit(now, "token_created", created_by, None, None, Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(ApiToken {
            id,
            name: name.to_owned(),
            role,
            created_by: Some(created_by.to_owned()),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            account_id,
        })
    }

    pub async fn revoke_api_token(
        &self,
        id: i64,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<bool> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        // A revoked token keeps when it was revoked, and still counts as found.
        let found = tx
            .execute(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id, &now.as_millisecond()],
            )
            .await?
            > 0;
        if found {
            insert_audit(&*tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    pub async fn login_credentials(
        &self,
        username: Option<String>,
    ) -> StoreResult<(Option<String>, Option<Account>)> {
        let client = self.connection().await?;
        match username {
            None => {
                let hash = client
                    .query_opt(
                        "SELECT value FROM settings WHERE key = $1",
                        &[&"admin_password_hash"],
                    )
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                Ok((hash, None))
            }
            Some(name) => {
                let account = client
                    .query_opt(
                        "SELECT id, username, password_hash, role, created_at
                         FROM accounts WHERE username = $1",
                        &[&name],
                    )
                    .await?
                    .as_ref()
                    .map(account)
                    .transpose()?;
                Ok((account.as_ref().map(|a| a.password_hash.clone()), account))
            }
        }
    }

    pub async fn open_session(
        &self,
        session: NewSession<'_>,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        insert_session(&*tx, &session).await?;
        insert_audit(&*tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn session_by_token_hash(
        &self,
        token_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let client = self.connection().await?;
        let row = client
            .query_opt(
                "SELECT s.id, s.account_id, a.username, s.role, s.csrf_token, s.expires_at,
                        s.identity_id, COALESCE(i.email, i.subject)
                 FROM sessions s LEFT JOIN accounts a ON a.id = s.account_id
                      LEFT JOIN identities i ON i.id = s.identity_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[&token_hash, &now.as_millisecond()],
            )
            .await?;
        row.as_ref().map(session).transpose()
    }

    pub async fn active_api_token_by_hash(
        &self,
        token_hash: String,
    ) -> StoreResult<Option<ApiToken>> {
        let client = self.connection().await?;
        let row = client
            .query_opt(
                "SELECT id, name, role, created_by, created_at, last_used_at, revoked_at, account_id
                 FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                &[&token_hash],
            )
            .await?;
        row.as_ref().map(api_token).transpose()
    }

    pub async fn touch_api_token(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        let client = self.connection().await?;
        client
            .execute(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
                &[&id, &now.as_millisecond()],
            )
            .await?;
        Ok(())
    }

    pub async fn end_session(&self, token_hash: String) -> StoreResult<()> {
        let client = self.connection().await?;
        client
            .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
            .await?;
        Ok(())
    }
}
