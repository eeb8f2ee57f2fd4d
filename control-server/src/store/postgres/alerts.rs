//! On PostgreSQL: Alert channels, rules, their state, fired alerts and delivery attempts.

use ccgate_quota::wire::SubscriptionUsage;
use tokio_postgres::{GenericClient, Row};

use super::{history, read_snapshot, subscriptions};
use crate::alerts::condition::{AlertRule, SubjectState};
use crate::db::alerts::{RuleFields, SealedChannel};
use crate::db::{corrupt, enum_from_text};
use crate::model::{AlertChannel, AlertDelivery, AuditEntry, RaisedAlert, Subscription};
use crate::postgres::{PgDb, PgError};
use crate::store::alerts::naming;
use crate::store::{StoreError, StoreResult};

/// An alert rule's columns, in the order [`rule`] reads them.
macro_rules! rule_columns {
    () => {
        "id, name, condition, channels, cooldown_secs, enabled, owner_user_id"
    };
}
pub(super) use rule_columns;

/// Every alert rule, by id.
pub(super) async fn rules(client: &impl GenericClient) -> StoreResult<Vec<AlertRule>> {
    client
        .query(
            concat!("SELECT ", rule_columns!(), " FROM alert_rules ORDER BY id"),
            &[],
        )
        .await?
        .iter()
        .map(rule)
        .collect()
}

impl PgDb {
    pub async fn alert_channels(&self) -> StoreResult<Vec<AlertChannel>> {
        let client = self.connection().await?;
        // As SQLite sorts NOCASE names: case folded, then in byte order.
        client
            .query(
                "SELECT id, name, kind, target, created_at, updated_at FROM alert_channels
                 ORDER BY lower(name) COLLATE \"C\", id",
                &[],
            )
            .await?
            .iter()
            .map(channel_row)
            .collect()
    }

    pub async fn alert_channel(&self, id: i64) -> StoreResult<Option<(AlertChannel, Vec<u8>)>> {
        let client = self.connection().await?;
        client
            .query_opt(
                "SELECT id, name, kind, target, created_at, updated_at, config
                 FROM alert_channels WHERE id = $1",
                &[&id],
            )
            .await?
            .map(|row| Ok((channel_row(&row)?, row.try_get(6)?)))
            .transpose()
    }

    pub async fn create_alert_channel(
        &self,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO alert_channels (name, kind, config, target, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                &[
                    &channel.name,
                    &channel.kind,
                    &channel.sealed,
                    &channel.target,
                    &at,
                ],
            )
            .await
            .map_err(|e| name_taken(e, &channel.name))?
            .try_get(0)?;
        super::insert_audit(&*tx, &naming(audit, "channel_id", id)).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn update_alert_channel(
        &self,
        id: i64,
        channel: SealedChannel,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE alert_channels SET name = $2, kind = $3, config = $4, target = $5,
                     updated_at = $6 WHERE id = $1",
                &[
                    &id,
                    &channel.name,
                    &channel.kind,
                    &channel.sealed,
                    &channel.target,
                    &at,
                ],
            )
            .await
            .map_err(|e| name_taken(e, &channel.name))?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no channel with id {id}")));
        }
        super::insert_audit(&*tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_alert_channel(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        self.delete_recording("DELETE FROM alert_channels WHERE id = $1", id, audit)
            .await
    }

    pub async fn alert_rules(&self) -> StoreResult<Vec<AlertRule>> {
        let client = self.connection().await?;
        rules(&**client).await
    }

    pub async fn create_alert_rule(
        &self,
        fields: RuleFields,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<i64> {
        let (condition, channels, cooldown) = rule_values(&fields)?;
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO alert_rules (name, condition, channels, cooldown_secs, enabled,
                     owner_user_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
                &[
                    &fields.name,
                    &condition,
                    &channels,
                    &cooldown,
                    &fields.enabled,
                    &fields.owner_user_id,
                    &at,
                ],
            )
            .await?
            .try_get(0)?;
        super::insert_audit(&*tx, &naming(audit, "rule_id", id)).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn update_alert_rule(
        &self,
        id: i64,
        fields: RuleFields,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        let (condition, channels, cooldown) = rule_values(&fields)?;
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE alert_rules SET name = $2, condition = $3, channels = $4,
                     cooldown_secs = $5, enabled = $6, owner_user_id = $7, updated_at = $8
                 WHERE id = $1",
                &[
                    &id,
                    &fields.name,
                    &condition,
                    &channels,
                    &cooldown,
                    &fields.enabled,
                    &fields.owner_user_id,
                    &at,
                ],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::NotFound(format!("no alert rule with id {id}")));
        }
        // A changed rule starts afresh for every subject.
        tx.execute("DELETE FROM alert_state WHERE rule_id = $1", &[&id])
            .await?;
        super::insert_audit(&*tx, &audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_alert_rule(&self, id: i64, audit: AuditEntry) -> StoreResult<bool> {
        self.delete_recording("DELETE FROM alert_rules WHERE id = $1", id, audit)
            .await
    }

    pub async fn alert_states(&self) -> StoreResult<Vec<(i64, String, SubjectState)>> {
        let client = self.connection().await?;
        client
            .query(
                "SELECT rule_id, subject, armed, last_fired_at, memo FROM alert_state",
                &[],
            )
            .await?
            .iter()
            .map(|row| {
                let memo: Option<String> = row.try_get(4)?;
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    SubjectState {
                        armed: row.try_get(2)?,
                        last_fired_at: row.try_get(3)?,
                        hit_window_resets_at: memo
                            .map(|memo| {
                                memo.parse::<i64>()
                                    .map_err(|e| corrupt(format!("alert state memo {memo:?}: {e}")))
                            })
                            .transpose()?,
                    },
                ))
            })
            .collect()
    }

    pub async fn save_alert_states(
        &self,
        states: Vec<(i64, String, SubjectState)>,
    ) -> StoreResult<()> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let save = tx
            .prepare_cached(
                "INSERT INTO alert_state (rule_id, subject, armed, last_fired_at, memo)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (rule_id, subject) DO UPDATE SET armed = excluded.armed,
                     last_fired_at = excluded.last_fired_at, memo = excluded.memo",
            )
            .await?;
        for (rule, subject, state) in &states {
            // The memo column is text (SQLite stores the number as text too).
            let memo = state.hit_window_resets_at.map(|at| at.to_string());
            tx.execute(
                &save,
                &[rule, subject, &state.armed, &state.last_fired_at, &memo],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_alert(&self, alert: RaisedAlert) -> StoreResult<i64> {
        let client = self.connection().await?;
        Ok(client
            .query_one(
                "INSERT INTO alert_events (rule_id, subject, at, severity, title, message)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &alert.rule_id,
                    &alert.subject,
                    &alert.at.as_millisecond(),
                    &alert.severity.as_str(),
                    &alert.title,
                    &alert.message,
                ],
            )
            .await?
            .try_get(0)?)
    }

    pub async fn record_alert_delivery(&self, delivery: AlertDelivery) -> StoreResult<()> {
        let attempt = i32::try_from(delivery.attempt).map_err(corrupt)?;
        let client = self.connection().await?;
        client
            .execute(
                "INSERT INTO alert_deliveries (event_id, channel_id, at, attempt, ok, detail)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &delivery.event_id,
                    &delivery.channel_id,
                    &delivery.at.as_millisecond(),
                    &attempt,
                    &delivery.ok,
                    &delivery.detail,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn alert_log(
        &self,
        limit: u32,
    ) -> StoreResult<(Vec<RaisedAlert>, Vec<AlertDelivery>)> {
        let limit = i64::from(limit);
        let mut client = self.connection().await?;
        let tx = read_snapshot(&mut client).await?;
        let events = tx
            .query(
                "SELECT id, rule_id, subject, at, severity, title, message FROM alert_events
                 ORDER BY at DESC, id DESC LIMIT $1",
                &[&limit],
            )
            .await?
            .iter()
            .map(event_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let deliveries = tx
            .query(
                "SELECT id, event_id, channel_id, at, attempt, ok, detail FROM alert_deliveries
                 ORDER BY at DESC, id DESC LIMIT $1",
                &[&limit],
            )
            .await?
            .iter()
            .map(delivery_row)
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await?;
        Ok((events, deliveries))
    }

    pub async fn subscriptions_with_latest_usage(
        &self,
    ) -> StoreResult<(Vec<Subscription>, Vec<(i64, SubscriptionUsage)>)> {
        let mut client = self.connection().await?;
        let tx = read_snapshot(&mut client).await?;
        let subscriptions = subscriptions::list(&*tx).await?;
        let latest = history::latest_utilization(&*tx).await?;
        tx.commit().await?;
        Ok((subscriptions, latest))
    }

    /// Runs `delete` (which takes the id as `$1`), recording `audit` only
    /// when it removed a row; whether it did.
    async fn delete_recording(
        &self,
        delete: &str,
        id: i64,
        audit: AuditEntry,
    ) -> StoreResult<bool> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        let gone = tx.execute(delete, &[&id]).await? > 0;
        if gone {
            super::insert_audit(&*tx, &audit).await?;
        }
        tx.commit().await?;
        Ok(gone)
    }
}

fn channel_row(row: &Row) -> StoreResult<AlertChannel> {
    let kind: String = row.try_get(2)?;
    Ok(AlertChannel {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        kind: enum_from_text(&kind)?,
        target: row.try_get(3)?,
        created_at: super::instant(row, 4)?,
        updated_at: super::instant(row, 5)?,
    })
}

fn name_taken(error: tokio_postgres::Error, name: &str) -> StoreError {
    let error = PgError::from(error);
    if error.is_unique_violation() {
        StoreError::Conflict(format!("a channel named {name:?} already exists"))
    } else {
        error.into()
    }
}

/// A row of [`rule_columns!`].
pub(super) fn rule(row: &Row) -> StoreResult<AlertRule> {
    let id: i64 = row.try_get(0)?;
    let condition: serde_json::Value = row.try_get(2)?;
    let channels: serde_json::Value = row.try_get(3)?;
    let cooldown_secs: i64 = row.try_get(4)?;
    Ok(AlertRule {
        id,
        name: row.try_get(1)?,
        condition: serde_json::from_value(condition)
            .map_err(|e| corrupt(format!("alert rule {id}: {e}")))?,
        channels: serde_json::from_value(channels)
            .map_err(|e| corrupt(format!("alert rule {id} channels: {e}")))?,
        // A negative cooldown is none, as on SQLite.
        cooldown_secs: u64::try_from(cooldown_secs).unwrap_or(0),
        enabled: row.try_get(5)?,
        owner_user_id: row.try_get(6)?,
    })
}

/// A rule's condition and channels as JSON, and its cooldown as stored.
fn rule_values(fields: &RuleFields) -> StoreResult<(serde_json::Value, serde_json::Value, i64)> {
    Ok((
        serde_json::to_value(&fields.condition).map_err(corrupt)?,
        serde_json::to_value(&fields.channels).map_err(corrupt)?,
        i64::try_from(fields.cooldown_secs).map_err(corrupt)?,
    ))
}

/// A row of `id, rule_id, subject, at, severity, title, message` from
/// `alert_events`.
pub(super) fn event_row(row: &Row) -> StoreResult<RaisedAlert> {
    let severity: String = row.try_get(4)?;
    Ok(RaisedAlert {
        id: row.try_get(0)?,
        rule_id: row.try_get(1)?,
        subject: row.try_get(2)?,
        at: super::instant(row, 3)?,
        severity: enum_from_text(&severity)?,
        title: row.try_get(5)?,
        message: row.try_get(6)?,
    })
}

fn delivery_row(row: &Row) -> StoreResult<AlertDelivery> {
    let attempt: i32 = row.try_get(4)?;
    Ok(AlertDelivery {
        id: row.try_get(0)?,
        event_id: row.try_get(1)?,
        channel_id: row.try_get(2)?,
        at: super::instant(row, 3)?,
        attempt: u32::try_from(attempt)
            .map_err(|e| corrupt(format!("alert delivery attempt {attempt}: {e}")))?,
        ok: row.try_get(5)?,
        detail: row.try_get(6)?,
    })
}
