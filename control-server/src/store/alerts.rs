//! Alert channels, rules, their state, fired alerts and delivery attempts.

use ccgate_quota::wire::SubscriptionUsage;

use super::{Store, StoreResult};
use crate::alerts::condition::{AlertRule, SubjectState};
use crate::db;
use crate::db::alerts::{AlertEventRow, ChannelRow, DeliveryRow, RuleFields, SealedChannel};
use crate::db::audit::AuditEntry;
use crate::db::subscriptions::SubscriptionRow;

/// `entry` with `id` added to its detail under `key` (a creation's audit
/// names what it created, whose id the insert gives).
fn naming(mut entry: AuditEntry, key: &str, id: i64) -> AuditEntry {
    match &mut entry.detail {
        Some(serde_json::Value::Object(detail)) => {
            detail.insert(key.to_owned(), id.into());
        }
        detail => *detail = Some(serde_json::json!({ key: id })),
    }
    entry
}

impl Store {
    /// Every alert channel, without its sealed settings.
    pub async fn alert_channels(&self) -> StoreResult<Vec<ChannelRow>> {
        self.db.read(db::alerts::channels).await
    }

    /// One alert channel with its sealed settings, if it exists.
    pub async fn alert_channel(&self, id: i64) -> StoreResult<Option<(ChannelRow, Vec<u8>)>> {
        self.db
            .read(move |conn| db::alerts::channel(conn, id))
            .await
    }

    /// Adds an alert channel at `at` (ms) and records `audit`, the new
    /// channel's id added to its detail as `channel_id`; the new id.
    pub async fn create_alert_channel(
        &self,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        self.db
            .write(move |tx| {
                let id = db::alerts::insert_channel(tx, &channel, at)?;
                db::audit::insert(tx, &naming(audit, "channel_id", id))?;
                Ok(id)
            })
            .await
    }

    /// Replaces alert channel `id`'s name and sealed settings at `at` (ms) and records `audit`.
    pub async fn update_alert_channel(
        &self,
        id: i64,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        self.db
            .write(move |tx| {
                db::alerts::update_channel(tx, id, &channel, at)?;
                db::audit::insert(tx, &audit)
            })
            .await
    }

    /// Deletes alert channel `id`, recording `audit` only when there was one; whether there was.
    pub async fn delete_alert_channel(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        self.db
            .write(move |tx| {
                let gone = db::alerts::delete_channel(tx, id)?;
                if gone {
                    db::audit::insert(tx, &audit)?;
                }
                Ok(gone)
            })
            .await
    }

    /// Every alert rule, enabled or not, by id.
    pub async fn alert_rules(&self) -> StoreResult<Vec<AlertRule>> {
        self.db.read(db::alerts::rules).await
    }

    /// Adds an alert rule at `at` (ms) and records `audit`, the new rule's
    /// id added to its detail as `rule_id`; the new id.
    pub async fn create_alert_rule(
        &self,
        fields: RuleFields,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        self.db
            .write(move |tx| {
                let id = db::alerts::insert_rule(tx, &fields, at)?;
                db::audit::insert(tx, &naming(audit, "rule_id", id))?;
                Ok(id)
            })
            .await
    }

    /// Replaces alert rule `id` at `at` (ms), forgetting its per-subject
    /// states (it starts afresh), and records `audit`.
    pub async fn update_alert_rule(
        &self,
        id: i64,
        fields: RuleFields,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        self.db
            .write(move |tx| {
                db::alerts::update_rule(tx, id, &fields, at)?;
                db::audit::insert(tx, &audit)
            })
            .await
    }

    /// Deletes alert rule `id`, recording `audit` only when there was one; whether there was.
    pub async fn delete_alert_rule(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        self.db
            .write(move |tx| {
                let gone = db::alerts::delete_rule(tx, id)?;
                if gone {
                    db::audit::insert(tx, &audit)?;
                }
                Ok(gone)
            })
            .await
    }

    /// Every saved (rule id, subject, state), for the engine starting up.
    pub async fn alert_states(&self) -> StoreResult<Vec<(i64, String, SubjectState)>> {
        self.db.read(db::alerts::states).await
    }

    /// Saves the engine's changed (rule id, subject, state)s, in order, in one transaction.
    pub async fn save_alert_states(
        &self,
        states: Vec<(i64, String, SubjectState)>,
    ) -> StoreResult<()> {
        self.db
            .write(move |tx| {
                for (rule, subject, state) in &states {
                    db::alerts::save_state(tx, *rule, subject, state)?;
                }
                Ok(())
            })
            .await
    }

    /// Records a fired alert (its `id` is ignored); the id it was given.
    pub async fn record_alert(&self, alert: AlertEventRow) -> StoreResult<i64> {
        self.db
            .write(move |tx| db::alerts::insert_event(tx, &alert))
            .await
    }

    /// Records one delivery attempt (its `id` is ignored).
    pub async fn record_alert_delivery(&self, delivery: DeliveryRow) -> StoreResult<()> {
        self.db
            .write(move |tx| db::alerts::insert_delivery(tx, &delivery))
            .await
    }

    /// The newest `limit` fired alerts and the newest `limit` delivery attempts, read together.
    pub async fn alert_log(
        &self,
        limit: u32,
    ) -> StoreResult<(Vec<AlertEventRow>, Vec<DeliveryRow>)> {
        self.db
            .read(move |conn| {
                Ok((
                    db::alerts::recent_events(conn, limit)?,
                    db::alerts::recent_deliveries(conn, limit)?,
                ))
            })
            .await
    }

    /// Every subscription and each one's newest observation, read together
    /// (the engine's window checks name the subscriptions they find).
    pub async fn subscriptions_with_latest_usage(
        &self,
    ) -> StoreResult<(Vec<SubscriptionRow>, Vec<(i64, SubscriptionUsage)>)> {
        self.db
            .read(|conn| {
                Ok((
                    db::subscriptions::list(conn)?,
                    db::utilization::latest(conn)?,
                ))
            })
            .await
    }
}
