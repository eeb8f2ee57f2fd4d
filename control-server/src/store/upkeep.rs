//! Housekeeping: what the server forgets or thins as time passes.

use super::{Store, StoreResult};
use crate::db::{self};

impl Store {
    /// Forgets sessions that expired before `now_ms`: how many.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<usize> {
        self.db
            .write(move |tx| db::auth::delete_expired_sessions(tx, now_ms))
            .await
    }

    /// Forgets utilization points older than `forget_before_ms` and keeps
    /// one per `bucket_ms` of those older than `thin_before_ms`: (forgotten,
    /// thinned).
    pub async fn thin_utilization(
        &self,
        forget_before_ms: i64,
        thin_before_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<(usize, usize)> {
        self.db
            .write(move |tx| {
                let pruned = db::utilization::prune(tx, forget_before_ms)?;
                let thinned = db::utilization::thin(tx, thin_before_ms, bucket_ms)?;
                Ok((pruned, thinned))
            })
            .await
    }
}
