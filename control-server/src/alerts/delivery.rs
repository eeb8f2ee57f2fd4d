//! Delivering an alert to a channel: its sealed settings opened, the
//! service's request sent with retries and backoff, every attempt logged
//! (the Activity page lists them, failures included).

use ccgate_alerts::{AttemptReport, ChannelConfig, Notification};

use crate::error::{Error, Result};
use crate::hub::LiveEvent;
use crate::model::AlertDelivery;
use crate::state::AppState;

/// A channel's settings, opened.
pub async fn open_channel(state: &AppState, channel_id: i64) -> Result<(String, ChannelConfig)> {
    let (row, sealed) = state
        .store
        .alert_channel(channel_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no alert channel with id {channel_id}")))?;
    let unreadable = |why: String| {
        tracing::error!(channel = %row.name, "alert channel settings unreadable: {why}");
        Error::internal()
    };
    let bytes = state
        .vault
        .open_channel(&sealed)
        .map_err(|_| unreadable("they do not open with this server key".to_owned()))?;
    let config = serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
    Ok((row.name, config))
}

/// Records one attempt and tells the dashboards.
fn log_attempt(state: &AppState, event_id: Option<i64>, channel_id: i64, report: &AttemptReport) {
    let row = AlertDelivery {
        id: 0,
        event_id,
        channel_id: Some(channel_id),
        at: state.now(),
        attempt: report.attempt,
        ok: report.outcome.is_ok(),
        detail: report.to_string(),
    };
    state.hub.publish(|| LiveEvent::AlertDelivery {
        alert_id: event_id,
        channel_id,
        attempt: report.attempt,
        ok: row.ok,
        detail: row.detail.clone(),
        timestamp: state.now(),
    });
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(error) = store.record_alert_delivery(row).await {
            tracing::warn!(%error, "alert delivery not logged");
        }
    });
}

/// Delivers in the background, with the configured retries.
pub fn spawn(state: &AppState, event_id: Option<i64>, channel_id: i64, notification: Notification) {
    let state = state.clone();
    tokio::spawn(async move {
        let (name, config) = match open_channel(&state, channel_id).await {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(channel_id, ?error, "alert not delivered");
                return;
            }
        };
        let result = state
            .alerts
            .deliverer
            .deliver_with_retry(
                &config,
                &notification,
                &state.config.alert_retry,
                |report| log_attempt(&state, event_id, channel_id, &report),
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(channel = %name, %error, "alert delivery failed for good");
        }
    });
}

/// One attempt now, for the channel's Test button: its outcome.
pub async fn test(state: &AppState, channel_id: i64) -> Result<AttemptReport> {
    let (name, config) = open_channel(state, channel_id).await?;
    let notification = Notification::new(
        ccgate_alerts::Severity::Info,
        "Test alert from ccgate",
        format!("This is a test of the channel {name}. Alerts will arrive like this."),
    );
    let once = ccgate_alerts::RetryPolicy {
        attempts: 1,
        ..state.config.alert_retry
    };
    let mut last = None;
    let _ = state
        .alerts
        .deliverer
        .deliver_with_retry(&config, &notification, &once, |report| {
            log_attempt(state, None, channel_id, &report);
            last = Some(report);
        })
        .await;
    last.ok_or_else(Error::internal)
}
