//! `/api/me`: a signed-in person's own page — their usage, devices, recent
//! blocks and the alerts they chose. Any session linked to a person may
//! read it (a member sees nothing else); the only change is their own
//! alert thresholds.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admin::{Admin, check_csrf, principal_from, users};
use super::extract::Json;
use crate::alerts::condition::AlertCondition;
use crate::error::{Error, Result};
use crate::service::admin_auth::Principal;
use crate::service::audit;
use crate::state::AppState;

/// Blocks and alerts listed on the page.
const RECENT: u32 = 20;
/// Most thresholds a person may set.
const MAX_THRESHOLDS: usize = 3;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/alerts", put(set_alerts))
        .layer(middleware::from_fn_with_state(state, authenticate))
}

async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response> {
    let principal = principal_from(&state, request.headers()).await?;
    check_csrf(&principal, &request)?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// The person behind a session: only a single sign-on identity is linked
/// to one.
async fn person_of(state: &AppState, principal: &Principal) -> Result<i64> {
    let not_linked = || {
        Error::not_found(
            "your sign-in is not linked to a ccgate person yet; ask an admin to link it",
        )
        .with_code("not_linked")
    };
    let identity_id = principal.identity_id.ok_or_else(not_linked)?;
    let identity = state.store.identity(identity_id).await?;
    identity
        .and_then(|identity| identity.person.map(|(id, _)| id))
        .ok_or_else(not_linked)
}

#[derive(Debug, Serialize)]
pub struct Block {
    at: Option<jiff::Timestamp>,
    model: Option<String>,
    reason: Option<String>,
    message: String,
}

#[derive(Debug, Serialize)]
pub struct RecentAlert {
    at: Option<jiff::Timestamp>,
    severity: ccgate_alerts::Severity,
    title: String,
    message: String,
}

#[derive(Debug, Serialize)]
pub struct MyAlerts {
    thresholds: Vec<f64>,
    recent: Vec<RecentAlert>,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    user: Value,
    blocks: Vec<Block>,
    alerts: MyAlerts,
}

async fn my_alerts(state: &AppState, user_id: i64) -> Result<MyAlerts> {
    let (rules, events) = state.store.person_alerts(user_id, RECENT).await?;
    let mut thresholds: Vec<f64> = rules
        .into_iter()
        .filter(|rule| rule.owner_user_id == Some(user_id))
        .filter_map(|rule| match rule.condition {
            AlertCondition::LimitShare { threshold, .. } => Some(threshold),
            _ => None,
        })
        .collect();
    thresholds.sort_by(f64::total_cmp);
    Ok(MyAlerts {
        thresholds,
        recent: events
            .into_iter()
            .map(|event| RecentAlert {
                at: Some(event.at),
                severity: event.severity,
                title: event.title,
                message: event.message,
            })
            .collect(),
    })
}

/// `GET /api/me`.
async fn overview(
    State(state): State<AppState>,
    Admin(principal): Admin,
) -> Result<axum::Json<Overview>> {
    let user_id = person_of(&state, &principal).await?;
    let user = state
        .live
        .user(user_id)
        .ok_or_else(|| Error::not_found("your person was deleted").with_code("not_linked"))?;
    let active = users::last_active(&state, vec![user_id]).await?;
    let user = users::user_view(&state, &user, active.into_iter().next().flatten());
    let user = users::with_identity(&state, user).await?;
    let blocked = state.store.person_recent_blocks(user_id, RECENT).await?;
    let blocks = blocked
        .into_iter()
        .map(|event| {
            let detail = event.row.detail.unwrap_or_default();
            let text = |key: &str| detail.get(key).and_then(Value::as_str).map(str::to_owned);
            Block {
                at: Some(event.row.at),
                model: event.row.model,
                reason: text("reason"),
                message: text("message").unwrap_or_default(),
            }
        })
        .collect();
    Ok(axum::Json(Overview {
        user,
        blocks,
        alerts: my_alerts(&state, user_id).await?,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsBody {
    thresholds: Vec<f64>,
}

/// `PUT /api/me/alerts`: "tell me when I reach N % of one of my limits".
async fn set_alerts(
    State(state): State<AppState>,
    Admin(principal): Admin,
    Json(body): Json<AlertsBody>,
) -> Result<axum::Json<MyAlerts>> {
    let user_id = person_of(&state, &principal).await?;
    let mut thresholds = body.thresholds;
    if thresholds.len() > MAX_THRESHOLDS
        || thresholds
            .iter()
            .any(|t| !t.is_finite() || *t < 1.0 || *t > 100.0)
    {
        return Err(Error::bad_request(format!(
            "thresholds: at most {MAX_THRESHOLDS} percentages from 1 to 100"
        )));
    }
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    let now = state.now();
    let entry = audit(
        now,
        "own_alerts_changed",
        &principal.actor,
        Some(user_id),
        None,
        Some(serde_json::json!({ "thresholds": thresholds })),
    );
    state
        .store
        .set_own_alert_thresholds(user_id, thresholds, now, entry)
        .await?;
    state.alerts.changed();
    Ok(axum::Json(my_alerts(&state, user_id).await?))
}
