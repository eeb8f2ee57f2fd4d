//! What happened: usage buckets, event and audit pages, recorded events, utilization history.

use ccgate_quota::wire::SubscriptionUsage;

use super::{Store, StoreResult};
use crate::db::audit::AuditFilter;
use crate::db::events::{EventFilter, StoredEvent, UsageBucket};
use crate::db::utilization::{ObservationPoint, ServedRequest};
use crate::model::AuditEntry;

impl Store {
    /// Usage from `from` until before `until` (ms) in 15-minute buckets per
    /// person and model family, of one person (`user_id`) or everybody.
    pub async fn usage_buckets(
        &self,
        user_id: Option<i64>,
        from: i64,
        until: i64,
    ) -> StoreResult<Vec<UsageBucket>> {
        dispatch!(self, usage_buckets(user_id, from, until))
    }

    /// One page of recorded events, newest first.
    pub async fn events_page(&self, filter: EventFilter) -> StoreResult<Vec<StoredEvent>> {
        dispatch!(self, events_page(filter))
    }

    /// One page of the audit log, newest first.
    pub async fn audit_page(&self, filter: AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        dispatch!(self, audit_page(filter))
    }

    /// Each subscription's newest utilization observation: (subscription id, usage).
    pub async fn latest_utilization(&self) -> StoreResult<Vec<(i64, SubscriptionUsage)>> {
        dispatch!(self, latest_utilization())
    }

    /// Subscription `subscription_id`'s observations from `since` (ms) on, oldest first.
    pub async fn utilization_points(
        &self,
        subscription_id: i64,
        since: i64,
    ) -> StoreResult<Vec<ObservationPoint>> {
        dispatch!(self, utilization_points(subscription_id, since))
    }

    /// Every subscription observed from `since` (ms) on, with its
    /// observations and the requests it served since then, read together
    /// (what the share attribution runs over).
    pub async fn observations_and_requests_since(
        &self,
        since: i64,
    ) -> StoreResult<Vec<(i64, Vec<ObservationPoint>, Vec<ServedRequest>)>> {
        dispatch!(self, observations_and_requests_since(since))
    }

    /// Adds one entry to the audit log on its own: a refused attempt (a
    /// login, a registration), a credential handed out.
    pub async fn record_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        dispatch!(self, record_audit(entry))
    }
}
