//! Named admin/viewer accounts and named, revocable API tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ts};
use crate::api::extract::Json;
use crate::config::MIN_PASSWORD_LEN;
use crate::db::{self};
use crate::error::{Error, Result};
use crate::model::Role;
use crate::secrets;
use crate::service::admin_auth::{API_TOKEN_PREFIX, BUILTIN_ADMIN};
use crate::service::audit;
use crate::state::AppState;

type Out = axum::Json<Value>;

fn account_json(account: &db::auth::Account) -> Value {
    json!({
        "id": account.id, "username": account.username, "role": account.role,
        "created_at": ts(account.created_at),
    })
}

pub async fn list(State(state): State<AppState>) -> Result<Out> {
    let accounts = state.db.read(db::auth::list_accounts).await?;
    Ok(axum::Json(json!({
        "accounts": accounts.iter().map(account_json).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
pub struct NewAccount {
    username: String,
    password: String,
    role: Role,
}

pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<NewAccount>,
) -> Result<(StatusCode, Out)> {
    let username = body.username.trim().to_owned();
    let valid_name = !username.is_empty()
        && username.len() <= 64
        && username != BUILTIN_ADMIN
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if !valid_name {
        return Err(Error::bad_request(
            "username must be 1 to 64 letters, digits or . _ - @ (and not \"admin\")",
        ));
    }
    if body.password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::bad_request(format!(
            "password must be at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    refuse_member(body.role)?;
    let password = body.password;
    let hash = state.passwords.hash(password).await?;
    let now = state.now();
    let actor = admin.actor.clone();
    let role = body.role;
    let account = state
        .db
        .write(move |tx| {
            let account =
                db::auth::insert_account(tx, &username, &hash, role, now.as_millisecond())?;
            let detail = json!({ "username": username, "role": role });
            db::audit::insert(
                tx,
                &audit(now, "account_created", &actor, None, None, Some(detail)),
            )?;
            Ok(account)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "account": account_json(&account) })),
    ))
}

pub async fn remove(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    let now = state.now();
    let actor = admin.actor.clone();
    let removed = state
        .db
        .write(move |tx| {
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
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found(format!("no account with id {id}")))
    }
}

/// Deleting or revoking one row: the audit entry it leaves, the 404 it gives.
struct Removal {
    action: &'static str,
    detail_key: &'static str,
    what: &'static str,
    /// `(transaction, id, now ms)` → whether a row was removed.
    remove: fn(&rusqlite::Transaction<'_>, i64, i64) -> db::DbResult<bool>,
}

/// Removes one row and logs it in the same transaction; 404 when there is none.
async fn remove_logged(
    state: &AppState,
    actor: &str,
    id: i64,
    removal: Removal,
) -> Result<StatusCode> {
    let now = state.now();
    let actor = actor.to_owned();
    let Removal {
        action,
        detail_key,
        what,
        remove,
    } = removal;
    let removed = state
        .db
        .write(move |tx| {
            let removed = remove(tx, id, now.as_millisecond())?;
            if removed {
                let detail = json!({ detail_key: id });
                db::audit::insert(tx, &audit(now, action, &actor, None, None, Some(detail)))?;
            }
            Ok(removed)
        })
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found(format!("no {what} with id {id}")))
    }
}

fn token_json(token: &db::auth::ApiToken) -> Value {
    json!({
        "id": token.id, "name": token.name, "role": token.role,
        "created_by": token.created_by, "created_at": ts(token.created_at),
        "last_used_at": token.last_used_at.and_then(ts),
        "revoked_at": token.revoked_at.and_then(ts),
    })
}

pub async fn list_tokens(State(state): State<AppState>) -> Result<Out> {
    let tokens = state.db.read(db::auth::list_api_tokens).await?;
    Ok(axum::Json(json!({
        "tokens": tokens.iter().map(token_json).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
pub struct NewToken {
    name: String,
    #[serde(default = "viewer")]
    role: Role,
}

/// Members exist only through single sign-on (their page needs a person
/// linked to an identity).
fn refuse_member(role: Role) -> Result<()> {
    if role == Role::Member {
        return Err(Error::bad_request(
            "role must be admin or viewer (members sign in through single sign-on)",
        ));
    }
    Ok(())
}

fn viewer() -> Role {
    Role::Viewer
}

pub async fn create_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, Out)> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::bad_request("name must be 1 to 100 characters"));
    }
    refuse_member(body.role)?;
    let secret = secrets::new_prefixed_token(API_TOKEN_PREFIX);
    let hash = secrets::hash_token_hex(&secret);
    let now = state.now();
    let actor = admin.actor.clone();
    let role = body.role;
    let account_id = admin.account_id;
    let token = state
        .db
        .write(move |tx| {
            let token = db::auth::insert_api_token(
                tx,
                &db::auth::NewApiToken {
                    name: &name,
                    token_hash: &hash,
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
        .await?;
    let mut value = token_json(&token);
    value["token"] = Value::String(secret);
    Ok((StatusCode::CREATED, axum::Json(value)))
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode> {
    remove_logged(
        &state,
        &admin.actor,
        id,
        Removal {
            action: "token_revoked",
            detail_key: "token_id",
            what: "token",
            remove: |tx, id, now| db::auth::revoke_api_token(tx, id, now),
        },
    )
    .await
}
