//! On SQLite: Recording what devices observed: events (each stored once, by id), the
//! audit entries that go with them, and the subscription utilization their
//! replies carried.

use std::sync::Arc;

use ccgate_quota::wire::SubscriptionUsage;

use crate::db::Db;
use crate::db::{self};
use crate::store::StoreResult;
use crate::writer::PendingRow;

/// Stores one row with what goes with it; false when its id was stored before.
fn record(tx: &rusqlite::Transaction<'_>, pending: &PendingRow) -> StoreResult<bool> {
    let row = &pending.row;
    let new = db::events::insert_row(tx, row)?;
    if !new {
        return Ok(false);
    }
    if let Some(entry) = &pending.audit {
        db::audit::insert(tx, entry)?;
    }
    if let (Some(request), Some(device_id)) = (&pending.subscription, row.device_id) {
        let subscription = db::utilization::resolve(
            tx,
            row.user_id,
            &request.claim,
            row.received_at.as_millisecond(),
        )?;
        if let Some(subscription_id) = subscription {
            db::utilization::tag_event(tx, device_id, &row.id, subscription_id)?;
            if let Some(usage) = &request.utilization {
                db::utilization::record(tx, subscription_id, row.user_id, device_id, usage)?;
            }
        }
    }
    Ok(true)
}

impl Db {
    pub async fn record_events(&self, rows: Arc<Vec<PendingRow>>) -> StoreResult<Vec<bool>> {
        self.write(move |tx| rows.iter().map(|row| record(tx, row)).collect())
            .await
    }

    pub async fn record_events_each(&self, rows: Arc<Vec<PendingRow>>) -> Vec<StoreResult<bool>> {
        self.write_each(rows.len(), move |tx, index| record(tx, &rows[index]))
            .await
    }

    pub async fn record_reported_utilization(
        &self,
        user_id: i64,
        device_id: i64,
        usage: SubscriptionUsage,
    ) -> StoreResult<bool> {
        self.write(move |tx| db::utilization::record_for_user(tx, user_id, device_id, &usage))
            .await
    }
}
