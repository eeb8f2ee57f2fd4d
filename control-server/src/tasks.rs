//! Periodic housekeeping: lapse reservations, write device sightings,
//! prune the usage index past the longest window, drop expired sessions
//! and stale rate-limit entries, thin the utilization history.

use std::time::Duration;

use jiff::SignedDuration;
use tokio::task::JoinHandle;

use crate::service::gate;
use crate::state::AppState;

const TICK: Duration = Duration::from_secs(1);
const EXPIRE_EVERY: u64 = 5;
const HOURLY: u64 = 3600;
const MINUTELY: u64 = 60;

pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        let mut ticks: u64 = 0;
        let flush_every = state.config.last_seen_flush_interval.as_secs().max(1);
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = crate::state::stopped(&mut shutdown) => break,
            }
            ticks += 1;
            if ticks.is_multiple_of(EXPIRE_EVERY) {
                // The database counts first, so this replica's copy of a
                // reservation never goes before the prompt it becomes.
                if let Some(shared) = state.store.shared_database()
                    && state.leadership.is_leading()
                {
                    gate::count_lapsed_shared(&state, shared).await;
                }
                gate::expire_reservations(&state);
            }
            if ticks.is_multiple_of(flush_every) {
                flush_sightings(&state).await;
            }
            if ticks.is_multiple_of(MINUTELY) {
                state.login_limiter.sweep();
                state.register_limiter.sweep();
            }
            if ticks.is_multiple_of(HOURLY) {
                prune(&state).await;
            }
        }
        flush_sightings(&state).await;
    })
}

/// Writes `last_seen_at` of every device seen since the last flush, in one transaction.
pub async fn flush_sightings(state: &AppState) {
    let seen = state.live.devices.unflushed_sightings();
    if seen.is_empty() {
        return;
    }
    if let Err(error) = state.store.record_sightings(seen).await {
        tracing::warn!(%error, "could not record device sightings");
    }
}

async fn prune(state: &AppState) {
    let now = state.now();
    let keep = SignedDuration::from_hours(24 * i64::from(state.config.history_days));
    if let Ok(cutoff) = now.checked_sub(keep) {
        for user in state.live.all_users() {
            user.lock().usage.prune_before(cutoff);
        }
    }
    let now_ms = now.as_millisecond();
    if let Err(error) = state.store.delete_expired_sessions(now_ms).await {
        tracing::warn!(%error, "could not delete expired sessions");
    }
    keep_utilization_history(state, now_ms).await;
}

/// Thins subscription utilization older than a day to one point per five
/// minutes, and forgets it past the retention setting.
pub async fn keep_utilization_history(state: &AppState, now_ms: i64) {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    const BUCKET_MS: i64 = 5 * 60 * 1000;
    let retention_ms = i64::from(state.live.settings().utilization_retention_days) * DAY_MS;
    let result = state
        .store
        .thin_utilization(now_ms - retention_ms, now_ms - DAY_MS, BUCKET_MS)
        .await;
    match result {
        Ok((pruned, thinned)) if pruned + thinned > 0 => {
            tracing::info!(pruned, thinned, "utilization history kept to its retention");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not thin the utilization history"),
    }
}
