//! On SQLite: What happened: usage buckets, event and audit pages, recorded events, utilization history.

use ccgate_quota::wire::SubscriptionUsage;

use crate::db;
use crate::db::Db;
use crate::db::audit::AuditFilter;
use crate::db::events::{EventFilter, StoredEvent, UsageBucket};
use crate::db::utilization::{ObservationPoint, ServedRequest};
use crate::model::AuditEntry;
use crate::store::StoreResult;

impl Db {
    pub async fn usage_buckets(
        &self,
        user_id: Option<i64>,
        from: i64,
        until: i64,
    ) -> StoreResult<Vec<UsageBucket>> {
        self.read(move |conn| db::events::usage_buckets(conn, user_id, from, until))
            .await
    }

    pub async fn events_page(&self, filter: EventFilter) -> StoreResult<Vec<StoredEvent>> {
        self.read(move |conn| db::events::page(conn, &filter)).await
    }

    pub async fn audit_page(&self, filter: AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        self.read(move |conn| db::audit::page(conn, &filter)).await
    }

    pub async fn latest_utilization(&self) -> StoreResult<Vec<(i64, SubscriptionUsage)>> {
        self.read(db::utilization::latest).await
    }

    pub async fn utilization_points(
        &self,
        subscription_id: i64,
        since: i64,
    ) -> StoreResult<Vec<ObservationPoint>> {
        self.read(move |conn| db::utilization::points_since(conn, subscription_id, since))
            .await
    }

    pub async fn observations_and_requests_since(
        &self,
        since: i64,
    ) -> StoreResult<Vec<(i64, Vec<ObservationPoint>, Vec<ServedRequest>)>> {
        self.read(move |conn| {
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

    pub async fn record_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        self.write(move |tx| db::audit::insert(tx, &entry)).await
    }
}
