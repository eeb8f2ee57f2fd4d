//! One replica at a time does what must happen once for the whole record
//! (raise alerts, announce unattributed use): the one whose own session
//! holds a PostgreSQL advisory lock. The lock goes with the session, so a
//! replica that stops or loses its connection gives it up and another
//! takes it within [`RETRY`].

use std::time::Duration;

use super::{PgError, Target};
use tokio::sync::watch;

/// The leader's advisory lock ("ccgate" and 2).
const LEADER_LOCK: i64 = 0x6363_6761_7465_0002;
/// How often a follower tries to take the lock, and the leader checks that
/// its session is alive.
pub const RETRY: Duration = Duration::from_secs(5);
const SESSION_NAME: &str = "ccgate leader";

/// Keeps `leading` true while this replica holds the lock, trying to take
/// it every [`RETRY`] otherwise, until `stop` turns true.
pub async fn keep(target: Target, leading: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    loop {
        match hold(&target, &leading, &mut stop).await {
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "lost or could not reach the leader's lock"),
        }
        leading.send_replace(false);
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = crate::state::stopped(&mut stop) => return,
        }
    }
}

/// Takes the lock if it is free and holds it while the session lives (a
/// query each [`RETRY`] shows that it does), or until `stop`.
async fn hold(
    target: &Target,
    leading: &watch::Sender<bool>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), PgError> {
    let (client, connection) = target.connect(SESSION_NAME).await?;
    let mut connection = tokio::spawn(connection);
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
        .await?
        .get(0);
    if !taken {
        return Ok(());
    }
    tracing::info!("this replica leads (alerts are raised here)");
    leading.send_replace(true);
    let mut alive = tokio::time::interval(RETRY);
    loop {
        tokio::select! {
            _ = alive.tick() => {
                tokio::time::timeout(RETRY, client.simple_query("SELECT 1"))
                    .await
                    .map_err(|_| PgError::Timeout)??;
            }
            _ = &mut connection => return Ok(()),
            _ = crate::state::stopped(stop) => return Ok(()),
        }
    }
}
