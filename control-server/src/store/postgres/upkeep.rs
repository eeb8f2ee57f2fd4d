//! On PostgreSQL: Housekeeping: what the server forgets or thins as time passes.

use crate::postgres::PgDb;
use crate::store::StoreResult;

const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";

/// Forgets observations older than `$1`.
const PRUNE: &str = "DELETE FROM utilization_observations WHERE at < $1";

/// Keeps one observation (the latest; of two at the same time, the one
/// stored last) per subscription and `$2` ms among those older than `$1`.
const THIN: &str = "DELETE FROM utilization_observations WHERE at < $1 AND id NOT IN (
         SELECT DISTINCT ON (subscription_id, at / $2) id
         FROM utilization_observations WHERE at < $1
         ORDER BY subscription_id, at / $2, at DESC, id DESC)";

/// A count of rows as the interface gives it.
fn rows(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

impl PgDb {
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<usize> {
        let client = self.connection().await?;
        Ok(rows(
            client.execute(DELETE_EXPIRED_SESSIONS, &[&now_ms]).await?,
        ))
    }

    pub async fn thin_utilization(
        &self,
        forget_before_ms: i64,
        thin_before_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<(usize, usize)> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let pruned = tx.execute(PRUNE, &[&forget_before_ms]).await?;
        let thinned = tx
            .execute(THIN, &[&thin_before_ms, &bucket_ms.max(1)])
            .await?;
        tx.commit().await?;
        Ok((rows(pruned), rows(thinned)))
    }
}
