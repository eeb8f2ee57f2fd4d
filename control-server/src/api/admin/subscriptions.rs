//! Subscriptions whose credential the server holds (team-credential mode):
//! enrol, list, rename, rotate, delete. Answers carry the name, kind and
//! last four characters of the credential, never the credential.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ccgate_quota::CredentialKind;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Admin, ts};
use crate::api::extract::Json;
use crate::db::subscriptions::SubscriptionRow;
use crate::error::Result;
use crate::service::subscriptions::{self as service, Change, Enrolment};
use crate::state::AppState;
use crate::vault::Credential;

#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    pub id: i64,
    pub name: String,
    pub kind: CredentialKind,
    /// The credential's last four characters.
    pub credential_hint: String,
    /// Grows with every rotation.
    pub credential_version: u64,
    /// How many people use it.
    pub users: u64,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

impl From<SubscriptionRow> for SubscriptionView {
    fn from(row: SubscriptionRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            kind: row.kind,
            credential_hint: row.credential_hint,
            credential_version: row.credential_version,
            users: row.users,
            created_at: ts(row.created_at),
            updated_at: ts(row.updated_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OneSubscription {
    pub subscription: SubscriptionView,
}

#[derive(Debug, Serialize)]
pub struct Subscriptions {
    pub subscriptions: Vec<SubscriptionView>,
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub deleted: bool,
    pub id: i64,
}

fn one(row: SubscriptionRow) -> axum::Json<OneSubscription> {
    axum::Json(OneSubscription {
        subscription: row.into(),
    })
}

pub async fn list(State(state): State<AppState>) -> Result<axum::Json<Subscriptions>> {
    let rows = service::list(&state).await?;
    Ok(axum::Json(Subscriptions {
        subscriptions: rows.into_iter().map(SubscriptionView::from).collect(),
    }))
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<OneSubscription>> {
    Ok(one(service::get(&state, id).await?))
}

#[derive(Debug, Deserialize)]
pub struct NewSubscription {
    name: String,
    credential: Credential,
    /// Detected from the credential's prefix when left out.
    #[serde(default)]
    kind: Option<CredentialKind>,
}

pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Json(body): Json<NewSubscription>,
) -> Result<(StatusCode, axum::Json<OneSubscription>)> {
    let enrolment = Enrolment::new(&body.name, body.credential, body.kind)?;
    let row = service::create(&state, &admin.actor, enrolment).await?;
    Ok((StatusCode::CREATED, one(row)))
}

#[derive(Debug, Deserialize)]
pub struct SubscriptionChange {
    #[serde(default)]
    name: Option<String>,
    /// A new credential: a rotation.
    #[serde(default)]
    credential: Option<Credential>,
    /// The new credential's kind, when its prefix does not tell.
    #[serde(default)]
    kind: Option<CredentialKind>,
}

pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    Json(body): Json<SubscriptionChange>,
) -> Result<axum::Json<OneSubscription>> {
    let change = Change {
        name: body.name,
        credential: body.credential.map(|credential| (credential, body.kind)),
    };
    Ok(one(service::update(&state, &admin.actor, id, change).await?))
}

pub async fn remove(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<axum::Json<Deleted>> {
    service::delete(&state, &admin.actor, id).await?;
    Ok(axum::Json(Deleted { deleted: true, id }))
}
