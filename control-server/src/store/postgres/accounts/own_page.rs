//! On PostgreSQL: what a person's own page reads (their alerts, their
//! blocked requests) and changes (their limit alerts).

use jiff::Timestamp;

use crate::alerts::condition::{AlertCondition, AlertRule, DEFAULT_COOLDOWN_SECS};
use crate::db::corrupt;
use crate::db::events::StoredEvent;
use crate::model::{AuditEntry, RaisedAlert};
use crate::postgres::PgDb;
use crate::store::StoreResult;
use crate::store::postgres::alerts::{self, event_row, rule, rule_columns};
use crate::store::postgres::history::{event_columns, stored_event};
use crate::store::postgres::{insert_audit, read_snapshot};

/// The event type of a request the gate refused.
const BLOCKED: &str = "blocked";

impl PgDb {
    pub async fn person_alerts(
        &self,
        user_id: i64,
        limit: u32,
    ) -> StoreResult<(Vec<AlertRule>, Vec<RaisedAlert>)> {
        let mut client = self.connection().await?;
        let tx = read_snapshot(&mut client).await?;
        let rules = alerts::rules(&*tx).await?;
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
            rules,
            events.iter().map(event_row).collect::<StoreResult<_>>()?,
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
                concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE user_id = $1 AND type = $2
                     ORDER BY at DESC, seq DESC LIMIT $3"
                ),
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
                concat!(
                    "SELECT ",
                    rule_columns!(),
                    " FROM alert_rules WHERE owner_user_id = $1 ORDER BY id"
                ),
                &[&user_id],
            )
            .await?;
        // A threshold the person keeps keeps its rule (and so its alert
        // history and state).
        let mut kept = Vec::new();
        for row in &owned {
            let rule = rule(row)?;
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
