//! The check on PostgreSQL, exact across replicas: a person's checks take
//! their row's lock (`SELECT … FOR UPDATE`), so two replicas cannot both
//! give away the last prompt; the usage a check compares is summed in the
//! database (recorded events in each window the policy needs, plus the
//! pending reservations) and decided by `quota::evaluate`, the same engine
//! as on SQLite. Not wired into the server yet (issue 13).

use std::time::Duration;

use ccgate_quota::usage::SnapshotWindow;
use ccgate_quota::window::Window;
use ccgate_quota::{
    CompiledPolicy, Decision, GateKind, GateRequest, ModelFamily, PerFamily, Totals, UsageSnapshot,
    evaluate,
};
use jiff::Timestamp;

use super::{PgDb, PgError};

/// One check: a device's turn (`key`) asking to send `model`.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    pub user_id: i64,
    pub device_id: i64,
    pub key: &'a str,
    pub model: &'a str,
    pub family: ModelFamily,
    pub kind: GateKind,
    pub now: Timestamp,
    /// How long an allowed prompt is held if no event settles it.
    pub hold: Duration,
}

/// Every window start the policy's rules need, and today's.
fn window_starts(policy: &CompiledPolicy, now: Timestamp) -> Vec<i64> {
    let mut starts = vec![Window::Daily.bounds(now, &policy.tz).start];
    starts.extend(
        policy
            .rules()
            .filter_map(|(rule, zone)| rule.spec.window().map(|w| w.bounds(now, zone).start)),
    );
    let mut starts: Vec<i64> = starts.into_iter().map(Timestamp::as_millisecond).collect();
    starts.sort_unstable();
    starts.dedup();
    starts
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl PgDb {
    /// Decides a check and, when a prompt is allowed, reserves it, in one
    /// transaction under the person's row lock. A check repeated for a
    /// turn that holds a reservation gets the same answer without a second
    /// one.
    pub async fn check(
        &self,
        policy: &CompiledPolicy,
        check: &Check<'_>,
    ) -> Result<Decision, PgError> {
        let now = check.now.as_millisecond();
        let request = GateRequest {
            family: check.family,
            kind: check.kind,
            now: check.now,
        };
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
            &[&check.user_id],
        )
        .await?;
        let held = tx
            .query_opt(
                "SELECT credits FROM reservations
                 WHERE device_id = $1 AND key = $2 AND expires_at > $3",
                &[&check.device_id, &check.key, &now],
            )
            .await?;
        if let Some(row) = held {
            tx.commit().await?;
            return Ok(Decision {
                cost: count(row.get(0)),
                denial: None,
            });
        }
        let starts = window_starts(policy, check.now);
        // Pending reservations count in every window: they are dated now.
        let rows = tx
            .query(
                "WITH used AS (
                     SELECT family, at, prompts, credits, input_tokens, output_tokens,
                            cache_creation_input_tokens, cache_read_input_tokens
                     FROM events
                     WHERE user_id = $1 AND family IS NOT NULL AND at >= $3 AND at <= $4
                     UNION ALL
                     SELECT family, $4, prompts, credits, 0, 0, 0, 0
                     FROM reservations WHERE user_id = $1 AND expires_at > $4
                 )
                 SELECT s.since, u.family,
                        SUM(u.prompts)::BIGINT, SUM(u.credits)::BIGINT,
                        SUM(u.input_tokens)::BIGINT, SUM(u.output_tokens)::BIGINT,
                        SUM(u.cache_creation_input_tokens)::BIGINT,
                        SUM(u.cache_read_input_tokens)::BIGINT
                 FROM unnest($2::BIGINT[]) AS s(since)
                 JOIN used u ON u.at >= s.since
                 GROUP BY s.since, u.family",
                &[&check.user_id, &starts, &starts[0], &now],
            )
            .await?;
        let mut windows: Vec<SnapshotWindow> = starts
            .iter()
            .map(|since| SnapshotWindow {
                since: Timestamp::from_millisecond(*since).unwrap_or(Timestamp::MIN),
                usage: PerFamily::<Totals>::default(),
            })
            .collect();
        for row in rows {
            let since: i64 = row.get(0);
            let family: String = row.get(1);
            let Ok(family) = family.parse::<ModelFamily>() else {
                continue;
            };
            if let Some(window) = starts
                .iter()
                .position(|s| *s == since)
                .and_then(|i| windows.get_mut(i))
            {
                window.usage[family] = Totals {
                    prompts: count(row.get(2)),
                    credits: count(row.get(3)),
                    input_tokens: count(row.get(4)),
                    output_tokens: count(row.get(5)),
                    cache_creation_input_tokens: count(row.get(6)),
                    cache_read_input_tokens: count(row.get(7)),
                };
            }
        }
        let snapshot = UsageSnapshot {
            // Just after now, so usage dated now (reservations) is inside.
            as_of: check
                .now
                .checked_add(jiff::SignedDuration::from_millis(1))
                .unwrap_or(check.now),
            windows,
            shares: Vec::new(),
        };
        let decision = evaluate(policy, &snapshot, request);
        if decision.allowed() && check.kind == GateKind::Prompt {
            let expires = now + i64::try_from(check.hold.as_millis()).unwrap_or(i64::MAX / 2);
            tx.execute(
                "INSERT INTO reservations
                     (device_id, key, user_id, family, model, prompts, credits, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8)",
                &[
                    &check.device_id,
                    &check.key,
                    &check.user_id,
                    &check.family.as_str(),
                    &check.model,
                    &i64::try_from(decision.cost).unwrap_or(i64::MAX),
                    &now,
                    &expires,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(decision)
    }
}
