//! What happened: usage buckets, event and audit pages, recorded events, utilization history.

use ccgate_quota::wire::SubscriptionUsage;

use super::{Store, StoreResult};
use crate::db;
use crate::db::audit::{AuditEntry, AuditFilter};
use crate::db::events::{EventFilter, StoredEvent, UsageBucket};
use crate::db::utilization::{ObservationPoint, ServedRequest};

impl Store {
    /// Usage from `from` until before `until` (ms) in 15-minute buckets per
    /// person and model family, of one person (`user_id`) or everybody.
    pub async fn usage_buckets(
        &self,
        user_id: Option<i64>,
        from: i64,
        until: i64,
    ) -> StoreResult<Vec<UsageBucket>> {
        self.db
            .read(move |conn| db::events::usage_buckets(conn, user_id, from, until))
            .await
    }

    /// One page of recorded events, newest first.
    pub async fn events_page(&self, filter: EventFilter) -> StoreResult<Vec<StoredEvent>> {
        self.db
            .read(move |conn| db::events::page(conn, &filter))
            .await
    }

    /// One page of the audit log, newest first.
    pub async fn audit_page(&self, filter: AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        self.db
            .read(move |conn| db::audit::page(conn, &filter))
            .await
    }

    /// Each subscription's newest utilization observation: (subscription id, usage).
    pub async fn latest_utilization(&self) -> StoreResult<Vec<(i64, SubscriptionUsage)>> {
        self.db.read(db::utilization::latest).await
    }

    /// Subscription `subscription_id`'s observations from `since` (ms) on, oldest first.
    pub async fn utilization_points(
        &self,
        subscription_id: i64,
        since: i64,
    ) -> StoreResult<Vec<ObservationPoint>> {
        self.db
            .read(move |conn| db::utilization::points_since(conn, subscription_id, since))
            .await
    }

    /// Every subscription observed from `since` (ms) on, with its
    /// observations and the requests it served since then, read together
    /// (what the share attribution runs over).
    pub async fn observations_and_requests_since(
        &self,
        since: i64,
    ) -> StoreResult<Vec<(i64, Vec<ObservationPoint>, Vec<ServedRequest>)>> {
        self.db
            .read(move |conn| {
                db::utilization::observed_since(conn, since)?
                    .into_iter()
                    .map(|id| {
                        Ok((
                            id,
                            db::utilization::points_since(conn, id, since)?,
                            db::utilization::requests_since(conn, id, since)?,
                        ))
                    })
                    .collect::<db::DbResult<Vec<_>>>()
            })
            .await
    }

    /// Adds one entry to the audit log on its own: a refused attempt (a
    /// login, a registration), a credential handed out.
    pub async fn record_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        self.db.write(move |tx| db::audit::insert(tx, &entry)).await
    }
}
