//! The check on PostgreSQL, exact across replicas: a person's checks take
//! their row's lock (`SELECT … FOR UPDATE`), so two replicas cannot both
//! give away the last prompt; the usage a check compares comes from the
//! database (the recorded usage of each window the policy needs, read from
//! running totals, plus the pending reservations) and is decided by
//! `quota::evaluate`, the same engine as on SQLite. The agent API's checks
//! come here when the store is PostgreSQL (`service::gate::check_shared`).

use std::time::Duration;

use ccgate_quota::share::WindowShare;
use ccgate_quota::usage::SnapshotWindow;
use ccgate_quota::window::Window;
use ccgate_quota::{
    CompiledPolicy, Decision, GateKind, GateRequest, ModelFamily, PerFamily, Totals, UsageSnapshot,
    evaluate,
};
use jiff::Timestamp;

use tokio_postgres::GenericClient;

use super::{PgDb, PgError};

/// What a check decided, and until when its prompt is held if allowed.
#[derive(Debug, Clone)]
pub struct Checked {
    pub decision: Decision,
    /// When the reservation lapses (ms): for a repeated turn, the one it
    /// already holds.
    pub reservation_expires_at: Option<i64>,
}

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
    /// The person's estimated shares of their subscription's windows (for
    /// `share` rules), as this replica's share keeper has them.
    pub shares: Vec<WindowShare>,
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

/// Quarter hours: the buckets of `usage_running` (migration 4).
const BUCKET_MS: i64 = 15 * 60 * 1000;

fn totals_at(row: &tokio_postgres::Row, first: usize) -> Totals {
    Totals {
        prompts: count(row.get(first)),
        credits: count(row.get(first + 1)),
        input_tokens: count(row.get(first + 2)),
        output_tokens: count(row.get(first + 3)),
        cache_creation_input_tokens: count(row.get(first + 4)),
        cache_read_input_tokens: count(row.get(first + 5)),
    }
}

/// The usage recorded at or after each of `starts` (and not after `now`),
/// from the running totals: the total through `now` less the total before
/// each start, each read as the last bucket's running total plus the
/// events of the partial bucket. A few rows per window, however long the
/// history.
pub async fn recorded_usage(
    client: &impl GenericClient,
    user_id: i64,
    starts: &[i64],
    now: i64,
) -> Result<Vec<PerFamily<Totals>>, PgError> {
    let mut points = starts.to_vec();
    points.push(now + 1);
    let families: Vec<&str> = ModelFamily::ALL.map(ModelFamily::as_str).to_vec();
    let rows = client
        .query(
            "SELECT p.t, f.family,
                    COALESCE(r.prompts, 0) + COALESCE(e.prompts, 0),
                    COALESCE(r.credits, 0) + COALESCE(e.credits, 0),
                    COALESCE(r.input_tokens, 0) + COALESCE(e.input_tokens, 0),
                    COALESCE(r.output_tokens, 0) + COALESCE(e.output_tokens, 0),
                    COALESCE(r.cache_creation_input_tokens, 0) + COALESCE(e.cache_creation_input_tokens, 0),
                    COALESCE(r.cache_read_input_tokens, 0) + COALESCE(e.cache_read_input_tokens, 0)
             FROM unnest($2::BIGINT[]) AS p(t)
             CROSS JOIN unnest($3::TEXT[]) AS f(family)
             LEFT JOIN LATERAL (
                 SELECT prompts, credits, input_tokens, output_tokens,
                        cache_creation_input_tokens, cache_read_input_tokens
                 FROM usage_running
                 WHERE user_id = $1 AND family = f.family AND bucket < p.t / $4
                 ORDER BY bucket DESC LIMIT 1) r ON TRUE
             LEFT JOIN LATERAL (
                 SELECT SUM(prompts)::BIGINT AS prompts, SUM(credits)::BIGINT AS credits,
                        SUM(input_tokens)::BIGINT AS input_tokens,
                        SUM(output_tokens)::BIGINT AS output_tokens,
                        SUM(cache_creation_input_tokens)::BIGINT AS cache_creation_input_tokens,
                        SUM(cache_read_input_tokens)::BIGINT AS cache_read_input_tokens
                 FROM events
                 WHERE user_id = $1 AND family = f.family
                   AND at >= (p.t / $4) * $4 AND at < p.t) e ON TRUE",
            &[&user_id, &points, &families, &BUCKET_MS],
        )
        .await?;
    // Running totals before each point, per family.
    let mut before: Vec<PerFamily<Totals>> = vec![PerFamily::default(); points.len()];
    for row in rows {
        let t: i64 = row.get(0);
        let family: String = row.get(1);
        let (Some(index), Ok(family)) = (
            points.iter().position(|p| *p == t),
            family.parse::<ModelFamily>(),
        ) else {
            continue;
        };
        before[index][family] = totals_at(&row, 2);
    }
    let through_now = before.pop().unwrap_or_default();
    Ok(before
        .into_iter()
        .map(|then| {
            let mut usage = PerFamily::<Totals>::default();
            for family in ModelFamily::ALL {
                usage[family] = through_now[family].since(&then[family]);
            }
            usage
        })
        .collect())
}

/// Prompts reserved and not settled, per family.
async fn pending_usage(
    client: &impl GenericClient,
    user_id: i64,
    now: i64,
) -> Result<PerFamily<Totals>, PgError> {
    let rows = client
        .query(
            "SELECT family, SUM(prompts)::BIGINT, SUM(credits)::BIGINT, 0::BIGINT, 0::BIGINT,
                    0::BIGINT, 0::BIGINT
             FROM reservations WHERE user_id = $1 AND expires_at > $2 GROUP BY family",
            &[&user_id, &now],
        )
        .await?;
    let mut pending = PerFamily::<Totals>::default();
    for row in rows {
        let family: String = row.get(0);
        if let Ok(family) = family.parse::<ModelFamily>() {
            pending[family] = totals_at(&row, 1);
        }
    }
    Ok(pending)
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
    ) -> Result<Checked, PgError> {
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
                "SELECT credits, expires_at FROM reservations
                 WHERE device_id = $1 AND key = $2 AND expires_at > $3",
                &[&check.device_id, &check.key, &now],
            )
            .await?;
        if let Some(row) = held {
            tx.commit().await?;
            return Ok(Checked {
                decision: Decision {
                    cost: count(row.get(0)),
                    denial: None,
                },
                reservation_expires_at: Some(row.get(1)),
            });
        }
        let starts = window_starts(policy, check.now);
        let recorded = recorded_usage(&*tx, check.user_id, &starts, now).await?;
        let pending = pending_usage(&*tx, check.user_id, now).await?;
        let windows: Vec<SnapshotWindow> = starts
            .iter()
            .zip(recorded)
            .map(|(since, mut usage)| {
                // Pending reservations count in every window.
                for family in ModelFamily::ALL {
                    usage[family] += pending[family];
                }
                SnapshotWindow {
                    since: Timestamp::from_millisecond(*since).unwrap_or(Timestamp::MIN),
                    usage,
                }
            })
            .collect();
        let snapshot = UsageSnapshot {
            // Just after now, so usage dated now (reservations) is inside.
            as_of: check
                .now
                .checked_add(jiff::SignedDuration::from_millis(1))
                .unwrap_or(check.now),
            windows,
            shares: check.shares.clone(),
        };
        let decision = evaluate(policy, &snapshot, request);
        let mut reservation_expires_at = None;
        if decision.allowed() && check.kind == GateKind::Prompt {
            let expires = now + i64::try_from(check.hold.as_millis()).unwrap_or(i64::MAX / 2);
            reservation_expires_at = Some(expires);
            // Lapsed reservations of the person go in the same statement.
            tx.execute(
                "WITH lapsed AS (DELETE FROM reservations WHERE user_id = $3 AND expires_at <= $7)
                 INSERT INTO reservations
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
        Ok(Checked {
            decision,
            reservation_expires_at,
        })
    }
}
