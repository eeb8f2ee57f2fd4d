//! Who used each subscription's windows: the attribution of
//! `ccgate_quota::attribution` run over the stored observations and the
//! requests each subscription served, kept in memory ([`ShareBook`]) for the
//! API, and handed to each person's state as the shares `share` rules and
//! the proxies' offline decisions read. Rises nobody's requests explain are
//! published as unattributed use (the alert engine listens).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use ccgate_quota::attribution::{
    CostWeights, Observation, PeriodAttribution, RequestCost, attribute, fit_weights,
};
use ccgate_quota::{ShareWindow, WindowShare};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::db::utilization::{ObservationPoint, ServedRequest};
use crate::hub::LiveEvent;
use crate::model::PlanWindow;
use crate::state::AppState;

/// Observations arriving together are attributed once.
const SETTLE: Duration = Duration::from_millis(500);
/// Attribution runs at least this often (windows reset without traffic).
const EVERY: Duration = Duration::from_secs(60);
/// History read for the weekly window (its period plus a margin).
const LOOKBACK: SignedDuration = SignedDuration::from_hours(24 * 7 + 6);

/// One window of one subscription: the current period, attributed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowShares {
    pub window: PlanWindow,
    pub period: PeriodAttribution,
}

/// What the API shows for a subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubscriptionShares {
    pub windows: Vec<WindowShares>,
}

/// The latest attribution of every subscription, in memory.
#[derive(Debug, Default)]
pub struct ShareBook {
    by_subscription: RwLock<HashMap<i64, SubscriptionShares>>,
    /// The end of the last unattributed interval reported, per subscription
    /// and window, so each is reported once.
    reported: RwLock<HashMap<(i64, PlanWindow), Timestamp>>,
}

impl ShareBook {
    pub fn of(&self, subscription_id: i64) -> Option<SubscriptionShares> {
        self.by_subscription
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&subscription_id)
            .cloned()
    }
}

fn share_window(window: PlanWindow) -> ShareWindow {
    match window {
        PlanWindow::FiveHour => ShareWindow::FiveHour,
        PlanWindow::SevenDay => ShareWindow::SevenDay,
    }
}

fn observations(points: &[ObservationPoint], window: PlanWindow) -> Vec<Observation> {
    points
        .iter()
        .filter_map(|point| {
            let (utilization, resets_at) = match window {
                PlanWindow::FiveHour => (point.five_hour?, point.five_hour_resets_at),
                PlanWindow::SevenDay => (point.seven_day?, point.seven_day_resets_at),
            };
            Some(Observation {
                at: Timestamp::from_millisecond(point.at).ok()?,
                utilization,
                resets_at: resets_at.and_then(|ms| Timestamp::from_millisecond(ms).ok()),
            })
        })
        .collect()
}

fn costs(requests: &[ServedRequest]) -> Vec<RequestCost> {
    requests
        .iter()
        .filter_map(|request| {
            Some(RequestCost {
                at: Timestamp::from_millisecond(request.at).ok()?,
                person: request.user_id,
                family: request.family,
                tokens: request.totals,
            })
        })
        .collect()
}

/// The current period of `window`, fitted and attributed.
pub fn current_period(
    window: PlanWindow,
    points: &[ObservationPoint],
    requests: &[RequestCost],
    now: Timestamp,
) -> Option<PeriodAttribution> {
    let observed = observations(points, window);
    if observed.is_empty() {
        return None;
    }
    let fit = fit_weights(window.length(), &observed, requests, &CostWeights::prior());
    attribute(window.length(), &observed, requests, &fit.weights)
        .current(now)
        .cloned()
}

/// Attributes every subscription observed lately, updates the book and
/// each person's shares, and reports new unattributed use.
pub async fn refresh(state: &AppState) {
    let now = state.now();
    let since = now
        .checked_sub(LOOKBACK)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .as_millisecond();
    let loaded = state.store.observations_and_requests_since(since).await;
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::warn!(%error, "subscription shares not refreshed");
            return;
        }
    };
    // The heavy part runs off the async workers.
    let computed = tokio::task::spawn_blocking(move || {
        loaded
            .into_iter()
            .map(|(id, points, requests)| {
                let requests = costs(&requests);
                let windows = [PlanWindow::FiveHour, PlanWindow::SevenDay]
                    .into_iter()
                    .filter_map(|window| {
                        current_period(window, &points, &requests, now)
                            .map(|period| WindowShares { window, period })
                    })
                    .collect();
                (id, SubscriptionShares { windows })
            })
            .collect::<HashMap<_, _>>()
    })
    .await;
    let Ok(computed) = computed else {
        tracing::error!("subscription attribution failed");
        return;
    };
    give_people_their_shares(state, &computed);
    report_unattributed(state, &computed);
    let changed = {
        let mut book = state
            .shares
            .by_subscription
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let changed = *book != computed;
        *book = computed;
        changed
    };
    // Dashboards showing who used the windows fetch them again.
    if changed {
        state
            .hub
            .publish(|| LiveEvent::SharesUpdated { timestamp: now });
    }
}

fn give_people_their_shares(state: &AppState, computed: &HashMap<i64, SubscriptionShares>) {
    let mut by_person: HashMap<i64, Vec<WindowShare>> = HashMap::new();
    for shares in computed.values() {
        for window in &shares.windows {
            for person in &window.period.people {
                by_person
                    .entry(person.person)
                    .or_default()
                    .push(WindowShare::from_fraction(
                        share_window(window.window),
                        person.estimate(),
                        Some(window.period.resets_at),
                    ));
            }
        }
    }
    for user in state.live.all_users() {
        let shares = by_person.remove(&user.id).unwrap_or_default();
        let changed = {
            let mut guard = user.lock();
            let percents = |s: &[WindowShare]| {
                s.iter()
                    .map(|w| (w.window, w.percent()))
                    .collect::<Vec<_>>()
            };
            let changed = percents(&guard.shares) != percents(&shares);
            guard.shares = shares;
            changed
        };
        // Devices decide offline from the shares too: a whole percent moved.
        if changed {
            user.notify();
        }
    }
}

fn report_unattributed(state: &AppState, computed: &HashMap<i64, SubscriptionShares>) {
    let mut reported = state
        .shares
        .reported
        .write()
        .unwrap_or_else(|p| p.into_inner());
    for (subscription_id, shares) in computed {
        for window in &shares.windows {
            let key = (*subscription_id, window.window);
            let seen_until = reported.get(&key).copied();
            let new: Vec<_> = window
                .period
                .unattributed_intervals
                .iter()
                .filter(|interval| seen_until.is_none_or(|seen| interval.end > seen))
                .collect();
            let Some(last) = new.iter().map(|interval| interval.end).max() else {
                continue;
            };
            reported.insert(key, last);
            // Every replica keeps the book; the one that leads announces.
            if !state.leadership.is_leading() {
                continue;
            }
            let amount: f64 = new.iter().map(|interval| interval.amount).sum();
            state.hub.publish(|| LiveEvent::UnattributedUse {
                subscription_id: *subscription_id,
                window: window.window,
                amount,
                timestamp: last,
            });
        }
    }
}

/// Keeps the book fresh until shutdown.
pub async fn run(state: AppState) {
    let mut events = state.hub.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            event = events.recv() => match event {
                Ok(published) if matches!(published.event, LiveEvent::Utilization { .. }) => {
                    tokio::time::sleep(SETTLE).await;
                    // What arrived meanwhile is covered by this refresh.
                    events = events.resubscribe();
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = crate::state::stopped(&mut shutdown) => break,
        }
        refresh(&state).await;
    }
}

#[cfg(test)]
mod tests {
    use ccgate_quota::{ModelFamily, Totals};

    use super::*;

    #[test]
    fn a_jump_with_no_request_behind_it_is_unattributed() {
        let now: Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let start = now - SignedDuration::from_mins(30);
        let resets = (now + SignedDuration::from_hours(3)).as_millisecond();
        let (mut points, mut requests, mut used) = (Vec::new(), Vec::new(), 0.0_f64);
        for n in 1..=20_i64 {
            used += 0.02;
            if n == 11 {
                used += 0.10;
            }
            let at = start + SignedDuration::from_mins(n);
            requests.push(RequestCost {
                at,
                person: 1,
                family: ModelFamily::Sonnet,
                tokens: Totals {
                    output_tokens: 30_000,
                    ..Totals::default()
                },
            });
            points.push(ObservationPoint {
                at: (at + SignedDuration::from_secs(30)).as_millisecond(),
                five_hour: Some((used * 100.0).round() / 100.0),
                five_hour_resets_at: Some(resets),
                seven_day: None,
                seven_day_resets_at: None,
                status: None,
            });
        }
        let period = current_period(PlanWindow::FiveHour, &points, &requests, now).unwrap();
        assert!((0.05..0.15).contains(&period.unattributed), "{period:#?}");
    }
}
