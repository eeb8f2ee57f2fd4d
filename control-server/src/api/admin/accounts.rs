//! Named admin/viewer accounts and named, revocable API tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Admin;
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

fn account_json(account: &crate::model::Account) -> Value {
    json!({
        "id": account.id, "username": account.username, "role": account.role,
        "created_at": account.created_at,
    })
}

pub async fn list(State(state): State<AppState>) -> Result<Out> {
    let accounts = state.store.admin_accounts().await?;
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
    let role = body.role;
    let detail = json!({ "username": username, "role": role });
    let entry = audit(
        now,
        "account_created",
        &admin.actor,
        None,
        None,
        Some(detail),
    );
    let account = state
        .store
        .create_admin_account(username, hash, role, now, entry)
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
    let removed = state
        .store
        .delete_admin_account(id, admin.actor.clone(), now)
        .await?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found(format!("no account with id {id}")))
    }
}

fn token_json(token: &crate::model::ApiToken) -> Value {
    json!({
        "id": token.id, "name": token.name, "role": token.role,
        "created_by": token.created_by, "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    })
}

pub async fn list_tokens(State(state): State<AppState>) -> Result<Out> {
    let tokens = state.store.api_tokens().await?;
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
    let role = body.role;
    let token = state
        .store
        .create_api_token(
            db::auth::NewApiToken {
                name: &name,
                token_hash: &hash,
                role,
                created_by: &admin.actor,
                account_id: admin.account_id,
            },
            now,
        )
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
    let now = state.now();
    let detail = json!({ "token_id": id });
    let entry = audit(now, "token_revoked", &admin.actor, None, None, Some(detail));
    if state.store.revoke_api_token(id, now, entry).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::not_found(format!("no token with id {id}")))
    }
}
