//! Alert channels, rules, their state, fired alerts and delivery attempts.

use ccgate_quota::wire::SubscriptionUsage;

use super::{Store, StoreResult};
use crate::alerts::condition::{AlertRule, SubjectState};
use crate::db::alerts::{RuleFields, SealedChannel};
use crate::model::{AlertChannel, AlertDelivery, AuditEntry, RaisedAlert, Subscription};

/// `entry` with `id` added to its detail under `key` (a creation's audit
/// names what it created, whose id the insert gives).
pub(super) fn naming(mut entry: AuditEntry, key: &str, id: i64) -> AuditEntry {
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
    pub async fn alert_channels(&self) -> StoreResult<Vec<AlertChannel>> {
        dispatch!(self, alert_channels())
    }

    /// One alert channel with its sealed settings, if it exists.
    pub async fn alert_channel(&self, id: i64) -> StoreResult<Option<(AlertChannel, Vec<u8>)>> {
        dispatch!(self, alert_channel(id))
    }

    /// Adds an alert channel at `at` (ms) and records `audit`, the new
    /// channel's id added to its detail as `channel_id`; the new id.
    pub async fn create_alert_channel(
        &self,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        dispatch!(self, create_alert_channel(channel, at, audit))
    }

    /// Replaces alert channel `id`'s name and sealed settings at `at` (ms) and records `audit`.
    pub async fn update_alert_channel(
        &self,
        id: i64,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        dispatch!(self, update_alert_channel(id, channel, at, audit))
    }

    /// Deletes alert channel `id`, recording `audit` only when there was one; whether there was.
    pub async fn delete_alert_channel(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        dispatch!(self, delete_alert_channel(id, audit))
    }

    /// Every alert rule, enabled or not, by id.
    pub async fn alert_rules(&self) -> StoreResult<Vec<AlertRule>> {
        dispatch!(self, alert_rules())
    }

    /// Adds an alert rule at `at` (ms) and records `audit`, the new rule's
    /// id added to its detail as `rule_id`; the new id.
    pub async fn create_alert_rule(
        &self,
        fields: RuleFields,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        dispatch!(self, create_alert_rule(fields, at, audit))
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
        dispatch!(self, update_alert_rule(id, fields, at, audit))
    }

    /// Deletes alert rule `id`, recording `audit` only when there was one; whether there was.
    pub async fn delete_alert_rule(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        dispatch!(self, delete_alert_rule(id, audit))
    }

    /// Every saved (rule id, subject, state), for the engine starting up.
    pub async fn alert_states(&self) -> StoreResult<Vec<(i64, String, SubjectState)>> {
        dispatch!(self, alert_states())
    }

    /// Saves the engine's changed (rule id, subject, state)s, in order, in one transaction.
    pub async fn save_alert_states(
        &self,
        states: Vec<(i64, String, SubjectState)>,
    ) -> StoreResult<()> {
        dispatch!(self, save_alert_states(states))
    }

    /// Records a fired alert (its `id` is ignored); the id it was given.
    pub async fn record_alert(&self, alert: RaisedAlert) -> StoreResult<i64> {
        dispatch!(self, record_alert(alert))
    }

    /// Records one delivery attempt (its `id` is ignored).
    pub async fn record_alert_delivery(&self, delivery: AlertDelivery) -> StoreResult<()> {
        dispatch!(self, record_alert_delivery(delivery))
    }

    /// The newest `limit` fired alerts and the newest `limit` delivery attempts, read together.
    pub async fn alert_log(
        &self,
        limit: u32,
    ) -> StoreResult<(Vec<RaisedAlert>, Vec<AlertDelivery>)> {
        dispatch!(self, alert_log(limit))
    }

    /// Every subscription and each one's newest observation, read together
    /// (the engine's window checks name the subscriptions they find).
    pub async fn subscriptions_with_latest_usage(
        &self,
    ) -> StoreResult<(Vec<Subscription>, Vec<(i64, SubscriptionUsage)>)> {
        dispatch!(self, subscriptions_with_latest_usage())
    }
}
