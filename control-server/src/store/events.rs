//! Recording what devices observed: events (each stored once, by id), the
//! audit entries that go with them, and the subscription utilization their
//! replies carried.

use std::sync::Arc;

use ccgate_quota::wire::SubscriptionUsage;

use super::{Store, StoreResult};
use crate::writer::PendingRow;

impl Store {
    /// Records `rows` in one transaction: for each, whether it was new.
    pub async fn record_events(&self, rows: Arc<Vec<PendingRow>>) -> StoreResult<Vec<bool>> {
        dispatch!(self, record_events(rows))
    }

    /// Records each of `rows` in a transaction of its own, so one the
    /// database refuses does not take the others with it.
    pub async fn record_events_each(&self, rows: Arc<Vec<PendingRow>>) -> Vec<StoreResult<bool>> {
        dispatch!(self, record_events_each(rows))
    }

    /// Keeps the utilization an older agent reported beside its events, for
    /// the person's subscription; false when they have none.
    pub async fn record_reported_utilization(
        &self,
        user_id: i64,
        device_id: i64,
        usage: SubscriptionUsage,
    ) -> StoreResult<bool> {
        dispatch!(self, record_reported_utilization(user_id, device_id, usage))
    }
}
