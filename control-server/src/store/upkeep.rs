//! Housekeeping: what the server forgets or thins as time passes.

use super::{Store, StoreResult};

impl Store {
    /// Forgets sessions that expired before `now_ms`: how many.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<usize> {
        dispatch!(self, delete_expired_sessions(now_ms))
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
        dispatch!(
            self,
            thin_utilization(forget_before_ms, thin_before_ms, bucket_ms)
        )
    }
}
