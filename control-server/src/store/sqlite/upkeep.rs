//! On SQLite: Housekeeping: what the server forgets or thins as time passes.

use crate::db::Db;
use crate::db::{self};
use crate::store::StoreResult;

impl Db {
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<usize> {
        self.write(move |tx| db::auth::delete_expired_sessions(tx, now_ms))
            .await
    }

    pub async fn thin_utilization(
        &self,
        forget_before_ms: i64,
        thin_before_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<(usize, usize)> {
        self.write(move |tx| {
            let pruned = db::utilization::prune(tx, forget_before_ms)?;
            let thinned = db::utilization::thin(tx, thin_before_ms, bucket_ms)?;
            Ok((pruned, thinned))
        })
        .await
    }
}
