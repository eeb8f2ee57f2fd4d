//! A subscription's utilization history for charts:
//! `GET /api/admin/subscriptions/:id/history?range=3h|6h|24h|7d|30d`.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::ts;
use crate::db::utilization::ObservationPoint;
use crate::error::{Error, Result};
use crate::model::PlanWindow;
use crate::service::subscriptions as service;
use crate::state::AppState;

/// Points a chart gets at most; a longer history keeps the last point of
/// each equal slice of the range.
const MAX_POINTS: usize = 1_000;

/// The chart ranges the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HistoryRange {
    #[serde(rename = "3h")]
    ThreeHours,
    #[serde(rename = "6h")]
    SixHours,
    #[default]
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl HistoryRange {
    fn length(self) -> SignedDuration {
        SignedDuration::from_hours(match self {
            Self::ThreeHours => 3,
            Self::SixHours => 6,
            Self::Day => 24,
            Self::Week => 24 * 7,
            Self::Month => 24 * 30,
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    range: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    pub at: Option<Timestamp>,
    /// Utilization as a fraction (1.0 is the limit), as the headers give it.
    pub five_hour: Option<f64>,
    pub seven_day: Option<f64>,
    pub five_hour_resets_at: Option<Timestamp>,
    pub seven_day_resets_at: Option<Timestamp>,
    pub status: Option<String>,
}

impl From<ObservationPoint> for HistoryPoint {
    fn from(point: ObservationPoint) -> Self {
        Self {
            at: ts(point.at),
            five_hour: point.five_hour,
            seven_day: point.seven_day,
            five_hour_resets_at: point.five_hour_resets_at.and_then(ts),
            seven_day_resets_at: point.seven_day_resets_at.and_then(ts),
            status: point.status,
        }
    }
}

/// A window that reset inside the range, drawn as a marker.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ResetMarker {
    pub window: PlanWindow,
    pub at: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
pub struct History {
    pub subscription_id: i64,
    pub range: HistoryRange,
    pub points: Vec<HistoryPoint>,
    pub resets: Vec<ResetMarker>,
}

fn parse_range(text: Option<&str>) -> Result<HistoryRange> {
    let Some(text) = text else {
        return Ok(HistoryRange::default());
    };
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        Error::bad_request(format!("range {text:?} is not one of 3h, 6h, 24h, 7d, 30d"))
            .with_code("invalid_range")
    })
}

/// Resets that happened between `since` and `now`: every reset time the
/// observations announced that has passed.
fn resets_within(points: &[ObservationPoint], since: i64, now: i64) -> Vec<ResetMarker> {
    let mut seen = BTreeSet::new();
    for point in points {
        for (window, at) in [
            (PlanWindow::FiveHour, point.five_hour_resets_at),
            (PlanWindow::SevenDay, point.seven_day_resets_at),
        ] {
            if let Some(at) = at.filter(|at| (since..=now).contains(at)) {
                seen.insert((window, at));
            }
        }
    }
    seen.into_iter()
        .map(|(window, at)| ResetMarker { window, at: ts(at) })
        .collect()
}

/// At most [`MAX_POINTS`]: the last point of each equal slice of the range.
fn thin_for_chart(points: Vec<ObservationPoint>, since: i64, now: i64) -> Vec<ObservationPoint> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let slice = ((now - since) / MAX_POINTS as i64).max(1);
    let mut kept: Vec<ObservationPoint> = Vec::with_capacity(MAX_POINTS + 1);
    for point in points {
        let same_slice = kept
            .last()
            .is_some_and(|last| (last.at - since) / slice == (point.at - since) / slice);
        if same_slice {
            kept.pop();
        }
        kept.push(point);
    }
    kept
}

pub async fn history(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(query): Query<HistoryQuery>,
) -> Result<axum::Json<History>> {
    let range = parse_range(query.range.as_deref())?;
    // 404 for a subscription that does not exist.
    service::get(&state, id).await?;
    let now = state.now();
    let since = now
        .checked_sub(range.length())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .as_millisecond();
    let now = now.as_millisecond();
    let points = state.store.utilization_points(id, since).await?;
    let resets = resets_within(&points, since, now);
    let points = thin_for_chart(points, since, now)
        .into_iter()
        .map(HistoryPoint::from)
        .collect();
    Ok(axum::Json(History {
        subscription_id: id,
        range,
        points,
        resets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: i64, resets: i64) -> ObservationPoint {
        ObservationPoint {
            at,
            five_hour: Some(0.1),
            five_hour_resets_at: Some(resets),
            seven_day: None,
            seven_day_resets_at: None,
            status: None,
        }
    }

    #[test]
    fn only_resets_that_passed_inside_the_range_are_markers() {
        let points = [point(10, 50), point(60, 120), point(130, 400)];
        let markers = resets_within(&points, 0, 200);
        let at: Vec<_> = markers
            .iter()
            .map(|m| m.at.unwrap().as_millisecond())
            .collect();
        assert_eq!(at, [50, 120]);
    }

    #[test]
    fn a_long_history_is_cut_to_the_chart_size_keeping_the_newest() {
        let points: Vec<_> = (0..5_000).map(|i| point(i, 0)).collect();
        let kept = thin_for_chart(points, 0, 5_000);
        assert!(kept.len() <= MAX_POINTS + 1, "{}", kept.len());
        assert_eq!(kept.last().unwrap().at, 4_999);
    }

    #[test]
    fn ranges_are_the_ones_the_dashboard_offers() {
        assert_eq!(parse_range(Some("7d")).unwrap(), HistoryRange::Week);
        assert_eq!(parse_range(None).unwrap(), HistoryRange::Day);
        assert!(parse_range(Some("2d")).is_err());
    }
}
