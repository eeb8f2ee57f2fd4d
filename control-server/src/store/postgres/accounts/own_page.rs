//! On PostgreSQL: what a person's own page reads (their alerts, their
//! blocked requests) and changes (their limit alerts).

use ccgate_quota::Totals;
use jiff::Timestamp;
use tokio_postgres::{IsolationLevel, Row};

use crate::alerts::condition::{AlertCondition, AlertRule, DEFAULT_COOLDOWN_SECS};
use crate::db::alerts::AlertEventRow;
use crate::db::audit::AuditEntry;
use crate::db::corrupt;
use crate::db::events::{EventRow, StoredEvent};
use crate::postgres::PgDb;
use crate::store::StoreResult;
use crate::store::postgres::insert_audit;

/// The event type of a request the gate refused.
const BLOCKED: &str = "blocked";

fn alert_rule(row: &Row) -> StoreResult<AlertRule> {
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
        cooldown_secs: u64::try_from(cooldown_secs).unwrap_or(0),
        enabled: row.try_get(5)?,
        owner_user_id: row.try_get(6)?,
    })
}

fn alert_event(row: &Row) -> StoreResult<AlertEventRow> {
    Ok(AlertEventRow {
        id: row.try_get(0)?,
        rule_id: row.try_get(1)?,
        subject: row.try_get(2)?,
        at: row.try_get(3)?,
        severity: row.try_get(4)?,
        title: row.try_get(5)?,
        message: row.try_get(6)?,
    })
}

/// A stored event as the event log reads it (`seq` first).
fn stored_event(row: &Row) -> StoreResult<StoredEvent> {
    let count = |index: usize| -> StoreResult<u64> {
        Ok(u64::try_from(row.try_get::<_, i64>(index)?).unwrap_or(0))
    };
    let family: Option<String> = row.try_get(8)?;
    Ok(StoredEvent {
        seq: row.try_get(0)?,
        row: EventRow {
            id: row.try_get(1)?,
            user_id: row.try_get(2)?,
            device_id: row.try_get(3)?,
            at: row.try_get(4)?,
            received_at: row.try_get(5)?,
            event_type: row.try_get(6)?,
            model: row.try_get(7)?,
            family: family.map(|f| f.parse()).transpose().map_err(corrupt)?,
            totals: Totals {
                prompts: count(9)?,
                credits: count(10)?,
                input_tokens: count(11)?,
                output_tokens: count(12)?,
                cache_creation_input_tokens: count(13)?,
                cache_read_input_tokens: count(14)?,
            },
            kind: row.try_get(15)?,
            turn_key: row.try_get(16)?,
            session_id: row.try_get(17)?,
            detail: row.try_get(18)?,
            count_reason: row.try_get(19)?,
            estimated: row.try_get(20)?,
            credential: row.try_get(21)?,
        },
    })
}

impl PgDb {
    pub async fn person_alerts(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<(Vec<AlertRule>, Vec<AlertEventRow>)> {
        let mut client = self.connection().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let rules = tx
            .query(
                "SELECT id, name, condition, channels, cooldown_secs, enabled, owner_user_id
                 FROM alert_rules ORDER BY id",
                &[],
            )
            .await?;
        let events = tx
            .query(
                "SELECT e.id, e.rule_id, e.subject, e.at, e.severity, e.title, e.message
                 FROM alert_events e JOIN alert_rules r ON r.id = e.rule_id
                 WHERE r.owner_user_id = $1 ORDER BY e.at DESC, e.id DESC LIMIT $2",
                &[&user_id, &i64::from(limit)],
            )
            .await?;
        tx.commit().await?;
        Ok((
            rules.iter().map(alert_rule).collect::<StoreResult<_>>()?,
            events.iter().map(alert_event).collect::<StoreResult<_>>()?,
        ))
    }

    pub async fn person_recent_blocks(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let client = self.connection().await?;
        let rows = client
            .query(
                "SELECT seq, id, user_id, device_id, at, received_at, type, model, family,
                        prompts, credits, input_tokens, output_tokens,
                        cache_creation_input_tokens, cache_read_input_tokens,
                        kind, turn_key, session_id, detail, count_reason, estimated, credential
                 FROM events WHERE user_id = $1 AND type = $2
                 ORDER BY at DESC, seq DESC LIMIT $3",
                &[&user_id, &BLOCKED, &i64::from(limit)],
            )
            .await?;
        rows.iter().map(stored_event).collect()
    }

    pub async fn set_own_alert_thresholds(
        &self,
        user_id: i64,
        thresholds: Vec<f64>,
        now: Timestamp,
        entry: AuditEntry,
    ) -> StoreResult<()> {
        let at = now.as_millisecond();
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        // One change of a person's alerts at a time, whatever replica makes
        // it: the person's row is the lock (else two could both add a rule).
        tx.execute(
            "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
            &[&user_id],
        )
        .await?;
        let owned = tx
            .query(
                "SELECT id, name, condition, channels, cooldown_secs, enabled, owner_user_id
                 FROM alert_rules WHERE owner_user_id = $1 ORDER BY id",
                &[&user_id],
            )
            .await?;
        // A threshold the person keeps keeps its rule (and so its alert
        // history and state).
        let mut kept = Vec::new();
        for row in &owned {
            let rule = alert_rule(row)?;
            let AlertCondition::LimitShare { threshold, .. } = rule.condition else {
                continue;
            };
            if thresholds.contains(&threshold) && !kept.contains(&threshold) {
                kept.push(threshold);
            } else {
                tx.execute("DELETE FROM alert_rules WHERE id = $1", &[&rule.id])
                    .await?;
            }
        }
        let cooldown_secs = i64::try_from(DEFAULT_COOLDOWN_SECS).map_err(corrupt)?;
        let no_channels = serde_json::Value::Array(Vec::new());
        for threshold in thresholds.iter().filter(|t| !kept.contains(t)) {
            let condition = serde_json::to_value(AlertCondition::LimitShare {
                threshold: *threshold,
                user_id: Some(user_id),
            })
            .map_err(corrupt)?;
            tx.execute(
                "INSERT INTO alert_rules (name, condition, channels, cooldown_secs, enabled,
                     owner_user_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                &[
                    &format!("My usage at {threshold} %"),
                    &condition,
                    &no_channels,
                    &cooldown_secs,
                    &true,
                    &user_id,
                    &at,
                ],
            )
            .await?;
        }
        insert_audit(&*tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }
}
