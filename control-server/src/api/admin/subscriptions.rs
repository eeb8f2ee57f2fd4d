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

use super::Admin;
use crate::api::extract::Json;
use crate::error::Result;
use crate::model::{PlanWindow, Subscription, SubscriptionOrigin};
use crate::service::shares::WindowShares;
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
    /// Who used its current 5-hour and weekly windows (an estimate).
    pub windows: Vec<WindowView>,
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

impl From<Subscription> for SubscriptionView {
    fn from(row: Subscription) -> Self {
        Self {
            id: row.id,
            name: row.name,
            origin: row.origin,
            account_uuid: row.account_uuid,
            latest: None,
            windows: Vec::new(),
            kind: row.kind,
            credential_hint: row.credential_hint,
            credential_version: row.credential_version,
            users: row.users,
            created_at: Some(row.created_at),
            updated_at: Some(row.updated_at),
        }
    }
}

/// One window's current period, attributed to people.
#[derive(Debug, Serialize)]
pub struct WindowView {
    pub window: PlanWindow,
    pub period_start: Timestamp,
    pub resets_at: Timestamp,
    /// The highest utilization read (a fraction of the window).
    pub observed: f64,
    pub attributed: f64,
    /// Rises that no ccgate request explains: use outside ccgate.
    pub unattributed: f64,
    pub people: Vec<PersonView>,
}

#[derive(Debug, Serialize)]
pub struct PersonView {
    pub user_id: i64,
    pub name: Option<String>,
    /// Their share of the window so far (a fraction of the window).
    pub share: f64,
    pub requests: u64,
}

fn window_view(state: &AppState, shares: WindowShares) -> WindowView {
    let period = shares.period;
    let mut people: Vec<PersonView> = period
        .people
        .iter()
        .map(|person| PersonView {
            user_id: person.person,
            name: state
                .live
                .user(person.person)
                .map(|user| user.lock().row.name.clone()),
            share: person.estimate(),
            requests: person.requests,
        })
        .collect();
    people.sort_by(|a, b| b.share.total_cmp(&a.share));
    WindowView {
        window: shares.window,
        period_start: period.start,
        resets_at: period.resets_at,
        observed: period.observed,
        attributed: period.attributed,
        unattributed: period.unattributed,
        people,
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

fn one(row: Subscription) -> axum::Json<OneSubscription> {
    axum::Json(OneSubscription {
        subscription: row.into(),
    })
}

/// Each subscription's view with its newest observation.
async fn with_latest(state: &AppState, rows: Vec<Subscription>) -> Result<Vec<SubscriptionView>> {
    let mut latest: HashMap<i64, SubscriptionUsage> = state
        .store
        .latest_utilization()
        .await?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            let mut view = SubscriptionView::from(row);
            view.latest = latest.remove(&id);
            view.windows = state
                .shares
                .of(id)
                .map(|shares| {
                    shares
                        .windows
                        .into_iter()
                        .map(|window| window_view(state, window))
                        .collect()
                })
                .unwrap_or_default();
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
