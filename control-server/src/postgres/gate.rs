//! The check on PostgreSQL, exact across replicas: a person's checks take
//! their row's lock (`SELECT … FOR UPDATE`), so two replicas cannot both
//! give away the last prompt; the usage a check compares comes from the
//! database (the recorded usage of each window the policy needs, read from
//! running totals, plus the pending reservations) and is decided by
//! `quota::evaluate`, the same engine as on SQLite. The agent and hook
//! APIs' checks come here when the store is PostgreSQL
//! (`service::gate::check_shared`).
//!
//! A hook client's reservation counts as a prompt when it lapses or when
//! its session checks again (the previous prompt was sent): it becomes a
//! `request` event at the time it was allowed, in the same transaction as
//! its deletion, so it is counted once whichever replica sees it go.

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
use crate::db::events::EventRow;

/// What a check decided, and until when its prompt is held if allowed.
#[derive(Debug, Clone)]
pub struct Checked {
    pub decision: Decision,
    /// When the reservation lapses (ms): for a repeated turn, the one it
    /// already holds.
    pub reservation_expires_at: Option<i64>,
    /// Hook prompts the check counted on the way (lapsed, or the session's
    /// previous one), as stored.
    pub counted: Vec<EventRow>,
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
    /// A hook client's check: its reservation counts if it lapses, and a
    /// held one is counted rather than reused.
    pub hook: bool,
    pub session_id: Option<&'a str>,
}

/// Turns the reservations the statement's `gone` deleted into counted
/// prompts, those that count (hook clients'), and returns the events.
/// `$1` is the time now.
const COUNT_GONE: &str = "
    INSERT INTO events (id, user_id, device_id, at, received_at, type, model, family, prompts,
                        credits, kind, turn_key, session_id, detail, count_reason)
    SELECT gen_random_uuid()::TEXT, user_id, device_id, created_at, $1, 'request', model, family,
           prompts, credits, 'prompt', key, session_id,
           '{\"source\": \"hook\", \"settled\": \"unreported\"}'::JSONB, 'new_prompt'
    FROM gone WHERE counts_on_expiry
    RETURNING id, user_id, device_id, at, received_at, model, family, prompts, credits, turn_key,
              session_id, detail, count_reason";

fn counted_row(row: &tokio_postgres::Row) -> EventRow {
    let family: String = row.get(6);
    EventRow {
        id: row.get(0),
        user_id: row.get(1),
        device_id: row.get(2),
        at: row.get(3),
        received_at: row.get(4),
        event_type: "request".to_owned(),
        model: row.get(5),
        family: family.parse().ok(),
        totals: Totals {
            prompts: count(row.get(7)),
            credits: count(row.get(8)),
            ..Totals::default()
        },
        kind: Some("prompt".to_owned()),
        turn_key: row.get(9),
        session_id: row.get(10),
        detail: row
            .get::<_, Option<tokio_postgres::types::Json<serde_json::Value>>>(11)
            .map(|json| json.0),
        count_reason: row.get(12),
        estimated: false,
        credential: None,
    }
}

/// Deletes the person's lapsed reservations and counts the hook clients'
/// ones; the caller holds the person's row lock.
async fn lapse(
    client: &impl GenericClient,
    user_id: i64,
    now: i64,
) -> Result<Vec<EventRow>, PgError> {
    let statement = format!(
        "WITH gone AS (DELETE FROM reservations WHERE user_id = $2 AND expires_at <= $1 RETURNING *)
         {COUNT_GONE}"
    );
    let rows = client.query(&statement, &[&now, &user_id]).await?;
    Ok(rows.iter().map(counted_row).collect())
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
        let mut counted = lapse(&*tx, check.user_id, now).await?;
        if check.hook {
            // The session's previous prompt was sent: it counts, and this
            // check is decided anew.
            let statement = format!(
                "WITH gone AS (DELETE FROM reservations WHERE device_id = $2 AND key = $3 RETURNING *)
                 {COUNT_GONE}"
            );
            let rows = tx
                .query(&statement, &[&now, &check.device_id, &check.key])
                .await?;
            counted.extend(rows.iter().map(counted_row));
        } else {
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
                    counted,
                });
            }
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
            tx.execute(
                "INSERT INTO reservations
                     (device_id, key, user_id, family, model, prompts, credits, created_at,
                      expires_at, counts_on_expiry, session_id)
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $10)",
                &[
                    &check.device_id,
                    &check.key,
                    &check.user_id,
                    &check.family.as_str(),
                    &check.model,
                    &i64::try_from(decision.cost).unwrap_or(i64::MAX),
                    &now,
                    &expires,
                    &check.hook,
                    &check.session_id,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Checked {
            decision,
            reservation_expires_at,
            counted,
        })
    }

    /// Counts the hook clients' reservations that lapsed by `now` for
    /// people who did not check again meanwhile (the leading replica's
    /// sweep), a transaction per person under their row lock.
    pub async fn count_lapsed(&self, now: i64) -> Result<Vec<EventRow>, PgError> {
        let mut client = self.connection().await?;
        let people: Vec<i64> = client
            .query(
                "SELECT DISTINCT user_id FROM reservations
                 WHERE counts_on_expiry AND expires_at <= $1 ORDER BY user_id",
                &[&now],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut counted = Vec::new();
        for user_id in people {
            let tx = client.transaction().await?;
            tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user_id])
                .await?;
            counted.extend(lapse(&*tx, user_id, now).await?);
            tx.commit().await?;
        }
        Ok(counted)
    }
}
