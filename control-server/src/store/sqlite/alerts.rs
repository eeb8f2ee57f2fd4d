//! On SQLite: Alert channels, rules, their state, fired alerts and delivery attempts.

use ccgate_quota::wire::SubscriptionUsage;

use crate::alerts::condition::{AlertRule, SubjectState};
use crate::db;
use crate::db::Db;
use crate::db::alerts::{RuleFields, SealedChannel};
use crate::model::{AlertChannel, AlertDelivery, AuditEntry, RaisedAlert, Subscription};
use crate::store::StoreResult;
use crate::store::alerts::naming;

impl Db {
    pub async fn alert_channels(&self) -> StoreResult<Vec<AlertChannel>> {
        self.read(db::alerts::channels).await
    }

    pub async fn alert_channel(&self, id: i64) -> StoreResult<Option<(AlertChannel, Vec<u8>)>> {
        self.read(move |conn| db::alerts::channel(conn, id)).await
    }

    pub async fn create_alert_channel(
        &self,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        self.write(move |tx| {
            let id = db::alerts::insert_channel(tx, &channel, at)?;
            db::audit::insert(tx, &naming(audit, "channel_id", id))?;
            Ok(id)
        })
        .await
    }

    pub async fn update_alert_channel(
        &self,
        id: i64,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            db::alerts::update_channel(tx, id, &channel, at)?;
            db::audit::insert(tx, &audit)
        })
        .await
    }

    pub async fn delete_alert_channel(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        self.write(move |tx| {
            let gone = db::alerts::delete_channel(tx, id)?;
            if gone {
                db::audit::insert(tx, &audit)?;
            }
            Ok(gone)
        })
        .await
    }

    pub async fn alert_rules(&self) -> StoreResult<Vec<AlertRule>> {
        self.read(db::alerts::rules).await
    }

    pub async fn create_alert_rule(
        &self,
        fields: RuleFields,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        self.write(move |tx| {
            let id = db::alerts::insert_rule(tx, &fields, at)?;
            db::audit::insert(tx, &naming(audit, "rule_id", id))?;
            Ok(id)
        })
        .await
    }

    pub async fn update_alert_rule(
        &self,
        id: i64,
        fields: RuleFields,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            db::alerts::update_rule(tx, id, &fields, at)?;
            db::audit::insert(tx, &audit)
        })
        .await
    }

    pub async fn delete_alert_rule(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        self.write(move |tx| {
            let gone = db::alerts::delete_rule(tx, id)?;
            if gone {
                db::audit::insert(tx, &audit)?;
            }
            Ok(gone)
        })
        .await
    }

    pub async fn alert_states(&self) -> StoreResult<Vec<(i64, String, SubjectState)>> {
        self.read(db::alerts::states).await
    }

    pub async fn save_alert_states(
        &self,
        states: Vec<(i64, String, SubjectState)>,
    ) -> StoreResult<()> {
        self.write(move |tx| {
            for (rule, subject, state) in &states {
                db::alerts::save_state(tx, *rule, subject, state)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn record_alert(&self, alert: RaisedAlert) -> StoreResult<i64> {
        self.write(move |tx| db::alerts::insert_event(tx, &alert))
            .await
    }

    pub async fn record_alert_delivery(&self, delivery: AlertDelivery) -> StoreResult<()> {
        self.write(move |tx| db::alerts::insert_delivery(tx, &delivery))
            .await
    }

    pub async fn alert_log(
        &self,
        limit: u32,
    ) -> StoreResult<(Vec<RaisedAlert>, Vec<AlertDelivery>)> {
        self.read(move |conn| {
            Ok((
                db::alerts::recent_events(conn, limit)?,
                db::alerts::recent_deliveries(conn, limit)?,
            ))
        })
        .await
    }

    pub async fn subscriptions_with_latest_usage(
        &self,
    ) -> StoreResult<(Vec<Subscription>, Vec<(i64, SubscriptionUsage)>)> {
        self.read(|conn| {
            Ok((
                db::subscriptions::list(conn)?,
                db::utilization::latest(conn)?,
            ))
        })
        .await
    }
}
