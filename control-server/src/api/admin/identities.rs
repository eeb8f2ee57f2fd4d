//! `/identities`: the people who signed in through single sign-on, the
//! role each has (from groups or set by hand) and the person each is.

use axum::extract::{Path, State};
use serde::{Deserialize, Deserializer, Serialize};

use super::Admin;
use crate::error::{Error, Result};
use crate::model::{Identity, Role};
use crate::service::sso;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Person {
    id: i64,
    name: String,
}

#[derive(Debug, Serialize)]
pub struct IdentityView {
    id: i64,
    issuer: String,
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    groups: Vec<String>,
    group_role: Option<Role>,
    role_override: Option<Role>,
    /// What sessions get: the hand-set role, else the groups'.
    role: Option<Role>,
    person: Option<Person>,
    created_at: Option<jiff::Timestamp>,
    last_login_at: Option<jiff::Timestamp>,
}

impl From<Identity> for IdentityView {
    fn from(identity: Identity) -> Self {
        Self {
            role: identity.role(),
            id: identity.id,
            issuer: identity.issuer,
            subject: identity.subject,
            email: identity.email,
            email_verified: identity.email_verified,
            name: identity.name,
            groups: identity.groups,
            group_role: identity.group_role,
            role_override: identity.role_override,
            person: identity.person.map(|(id, name)| Person { id, name }),
            created_at: Some(identity.created_at),
            last_login_at: Some(identity.last_login_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IdentityList {
    identities: Vec<IdentityView>,
}

#[derive(Debug, Serialize)]
pub struct OneIdentity {
    identity: IdentityView,
}

pub async fn list(State(state): State<AppState>) -> Result<axum::Json<IdentityList>> {
    let identities = state.store.identities().await?;
    Ok(axum::Json(IdentityList {
        identities: identities.into_iter().map(IdentityView::from).collect(),
    }))
}

/// A field that may be absent (no change), `null` (clear) or a value.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    role_override: Option<Option<Role>>,
    #[serde(default, deserialize_with = "present")]
    user_id: Option<Option<i64>>,
}

pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    super::super::extract::Json(body): super::super::extract::Json<UpdateBody>,
) -> Result<axum::Json<OneIdentity>> {
    if body.role_override.is_none() && body.user_id.is_none() {
        return Err(Error::bad_request(
            "nothing to change: give role_override and/or user_id",
        ));
    }
    let identity =
        sso::update_identity(&state, &admin.actor, id, body.role_override, body.user_id).await?;
    Ok(axum::Json(OneIdentity {
        identity: identity.into(),
    }))
}

pub async fn remove(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<axum::Json<serde_json::Value>> {
    sso::delete_identity(&state, &admin.actor, id).await?;
    Ok(axum::Json(serde_json::json!({ "ok": true })))
}
