//! Subscriptions whose credential the server holds (team-credential mode):
//! enrol, list, rename, rotate, delete. Answers carry the name, kind and
//! last four characters of the credential, never the credential.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use ccgate_quota::CredentialKind;
use ccgate_quota::wire::SubscriptionUsage;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Admin, ts};
use crate::api::extract::Json;
use crate::db;
use crate::db::subscriptions::{SubscriptionOrigin, SubscriptionRow};
use crate::error::Result;
use crate::service::subscriptions::{self as service, Change, Enrolment};
use crate::state::AppState;
use crate::vault::Credential;

#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    pub id: i64,
    pub name: String,
    /// `enrolled` (its credential is held for team-credential mode) or
    /// `seen` (an account personal-login traffic named).
    pub origin: SubscriptionOrigin,
    pub account_uuid: Option<String>,
    /// Anthropic's newest utilization figures for it.
    pub latest: Option<SubscriptionUsage>,
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
            origin: row.origin,
            account_uuid: row.account_uuid,
            latest: None,
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

/// Each subscription's view with its newest observation.
async fn with_latest(
    state: &AppState,
    rows: Vec<SubscriptionRow>,
) -> Result<Vec<SubscriptionView>> {
    let mut latest: HashMap<i64, SubscriptionUsage> = state
        .db
        .read(db::utilization::latest)
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            let mut view = SubscriptionView::from(row);
            view.latest = latest.remove(&id);
            view
        })
        .collect())
}

pub async fn list(State(state): State<AppState>) -> Result<axum::Json<Subscriptions>> {
    let rows = service::list(&state).await?;
    Ok(axum::Json(Subscriptions {
        subscriptions: with_latest(&state, rows).await?,
    }))
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<OneSubscription>> {
    let row = service::get(&state, id).await?;
    let subscription = with_latest(&state, vec![row]).await?.remove(0);
    Ok(axum::Json(OneSubscription { subscription }))
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
