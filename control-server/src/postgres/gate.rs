//! The check on PostgreSQL, exact across replicas, in one statement (one
//! round trip): `ccgate_check` (migration 10) takes the person's row lock,
//! so two replicas cannot both give away the last prompt, reads the usage
//! of each window the policy needs (from running totals) and the pending
//! reservations, and reserves the prompt when the caps this side sent
//! hold (`quota::prompt_caps`). The answer is then written by
//! `quota::evaluate` from the usage returned, the same engine as on
//! SQLite. The agent and hook APIs' checks come here when the store is
//! PostgreSQL (`service::gate::check_shared`).
//!
//! A hook client's reservation counts as a prompt when it lapses or when
//! its session checks again (the previous prompt was sent): it becomes a
//! `request` event at the time it was allowed, in the same statement as
//! its deletion, so it is counted once whichever replica sees it go.

use std::time::Duration;

use ccgate_quota::share::WindowShare;
use ccgate_quota::usage::SnapshotWindow;
use ccgate_quota::window::Window;
use ccgate_quota::{
    CompiledPolicy, Decision, GateKind, GateRequest, Metric, ModelFamily, PerFamily, TokenKind,
    Totals, UsageCap, UsageSnapshot, evaluate, prompt_caps,
};
use jiff::Timestamp;
use tokio_postgres::types::Json;

use super::{PgDb, PgError};
use crate::model::{Event, EventType};

/// What a check decided, and until when its prompt is held if allowed.
#[derive(Debug, Clone)]
pub struct Checked {
    pub decision: Decision,
    /// When the reservation lapses (ms): for a repeated turn, the one it
    /// already holds.
    pub reservation_expires_at: Option<i64>,
    /// Hook prompts the check counted on the way (lapsed, or the session's
    /// previous one), as stored.
    pub counted: Vec<Event>,
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

/// A hook prompt the database counted, as `ccgate_count_gone` returns it.
#[derive(Debug, serde::Deserialize)]
struct CountedEvent {
    id: String,
    user_id: i64,
    device_id: Option<i64>,
    #[serde(with = "jiff::fmt::serde::timestamp::millisecond::required")]
    at: Timestamp,
    #[serde(with = "jiff::fmt::serde::timestamp::millisecond::required")]
    received_at: Timestamp,
    model: Option<String>,
    family: Option<String>,
    prompts: i64,
    credits: i64,
    turn_key: Option<String>,
    session_id: Option<String>,
    detail: Option<serde_json::Value>,
    count_reason: Option<String>,
}

impl From<CountedEvent> for Event {
    fn from(event: CountedEvent) -> Self {
        Self {
            id: event.id,
            user_id: event.user_id,
            device_id: event.device_id,
            at: event.at,
            received_at: event.received_at,
            event_type: EventType::Request,
            model: event.model,
            family: event.family.and_then(|family| family.parse().ok()),
            totals: Totals {
                prompts: count(event.prompts),
                credits: count(event.credits),
                ..Totals::default()
            },
            kind: Some("prompt".to_owned()),
            turn_key: event.turn_key,
            session_id: event.session_id,
            detail: event.detail,
            count_reason: event.count_reason,
            estimated: false,
            credential: None,
        }
    }
}

fn counted_events(json: Json<Vec<CountedEvent>>) -> Vec<Event> {
    json.0.into_iter().map(Event::from).collect()
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

fn figure(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The figures `ccgate_check` returns per family and start, in order.
const FIGURES: usize = 6;

fn totals_from(figures: &[i64]) -> Totals {
    let at = |index: usize| count(figures.get(index).copied().unwrap_or(0));
    Totals {
        prompts: at(0),
        credits: at(1),
        input_tokens: at(2),
        output_tokens: at(3),
        cache_creation_input_tokens: at(4),
        cache_read_input_tokens: at(5),
    }
}

/// Which of the six figures a metric adds up, as bits (`ccgate_check`).
fn figure_bits(metric: Metric) -> i32 {
    match metric {
        Metric::Prompts => 0b1,
        Metric::Credits => 0b10,
        Metric::Tokens(TokenKind::Input) => 0b100,
        Metric::Tokens(TokenKind::Output) => 0b1000,
        Metric::Tokens(TokenKind::CacheCreation) => 0b1_0000,
        Metric::Tokens(TokenKind::CacheRead) => 0b10_0000,
        Metric::Tokens(TokenKind::Total) => 0b11_1100,
    }
}

/// The caps as `ccgate_check`'s four parallel arrays: start number
/// (1-based), family, figure bits, most.
struct CapArrays {
    window: Vec<i32>,
    family: Vec<Option<&'static str>>,
    bits: Vec<i32>,
    most: Vec<i64>,
}

impl CapArrays {
    fn new(caps: &[UsageCap], starts: &[i64]) -> Result<Self, PgError> {
        let mut arrays = Self {
            window: Vec::with_capacity(caps.len()),
            family: Vec::with_capacity(caps.len()),
            bits: Vec::with_capacity(caps.len()),
            most: Vec::with_capacity(caps.len()),
        };
        for cap in caps {
            let since = cap.since.as_millisecond();
            let index = starts
                .iter()
                .position(|start| *start == since)
                .ok_or(PgError::CapWindow(since))?;
            arrays
                .window
                .push(i32::try_from(index + 1).unwrap_or(i32::MAX));
            arrays.family.push(cap.family.map(ModelFamily::as_str));
            arrays.bits.push(figure_bits(cap.metric));
            arrays.most.push(figure(cap.most));
        }
        Ok(arrays)
    }
}

/// The usage `ccgate_check` read: each start's recorded usage with the
/// pending prompts added, as the engine takes it.
fn snapshot(
    now: Timestamp,
    starts: &[i64],
    usage: &[i64],
    pending: &[i64],
    shares: Vec<WindowShare>,
) -> UsageSnapshot {
    let mut pending_totals = PerFamily::<Totals>::default();
    for (index, family) in ModelFamily::ALL.into_iter().enumerate() {
        pending_totals[family] = Totals {
            prompts: count(pending.get(index * 2).copied().unwrap_or(0)),
            credits: count(pending.get(index * 2 + 1).copied().unwrap_or(0)),
            ..Totals::default()
        };
    }
    let families = ModelFamily::ALL.len();
    let windows = starts
        .iter()
        .enumerate()
        .map(|(start_index, since)| {
            let mut window = PerFamily::<Totals>::default();
            for (index, family) in ModelFamily::ALL.into_iter().enumerate() {
                let first = (start_index * families + index) * FIGURES;
                let figures = usage.get(first..first + FIGURES).unwrap_or(&[]);
                // Pending reservations count in every window.
                window[family] = totals_from(figures);
                window[family] += pending_totals[family];
            }
            SnapshotWindow {
                since: Timestamp::from_millisecond(*since).unwrap_or(Timestamp::MIN),
                usage: window,
            }
        })
        .collect();
    UsageSnapshot {
        // Just after now, so usage dated now (reservations) is inside.
        as_of: now
            .checked_add(jiff::SignedDuration::from_millis(1))
            .unwrap_or(now),
        windows,
        shares,
    }
}

const CHECK: &str = "SELECT counted, held_credits, held_expires, usage, pending, reserved
     FROM ccgate_check($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

impl PgDb {
    /// Decides a check and, when a prompt is allowed, reserves it, in one
    /// statement (`ccgate_check`) under the person's row lock. A check
    /// repeated for a turn that holds a reservation gets the same answer
    /// without a second one.
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
        let starts = window_starts(policy, check.now);
        let caps = prompt_caps(policy, check.family, check.now, &check.shares);
        let cap_arrays = CapArrays::new(&caps.caps, &starts)?;
        let reserve = caps.open && check.kind == GateKind::Prompt;
        let expires = now + i64::try_from(check.hold.as_millis()).unwrap_or(i64::MAX / 2);
        let families = ModelFamily::ALL.map(ModelFamily::as_str);
        // The whole check, waiting for a connection included, has
        // `check_timeout`: past it the answer is a 503, never a
        // prompt let through.
        let started = tokio::time::Instant::now();
        let client = tokio::time::timeout(self.check_timeout, self.connection())
            .await
            .map_err(|_| PgError::Timeout)??;
        let left = self.check_timeout.saturating_sub(started.elapsed());
        let cancel = client.cancel_token();
        let answer = tokio::time::timeout(left, async {
            let statement = client.prepare_cached(CHECK).await?;
            client
                .query_one(
                    &statement,
                    &[
                        &check.user_id,
                        &check.device_id,
                        &check.key,
                        &now,
                        &check.hook,
                        &check.session_id,
                        &check.family.as_str(),
                        &check.model,
                        &&families[..],
                        &starts,
                        &reserve,
                        &figure(caps.cost),
                        &expires,
                        &cap_arrays.window,
                        &cap_arrays.family,
                        &cap_arrays.bits,
                        &cap_arrays.most,
                    ],
                )
                .await
        })
        .await;
        let row = match answer {
            Ok(row) => row?,
            Err(_elapsed) => {
                self.abandon(client, cancel);
                return Err(PgError::Timeout);
            }
        };
        let counted = counted_events(row.try_get(0)?);
        if let (Some(credits), Some(expires_at)) = (
            row.try_get::<_, Option<i64>>(1)?,
            row.try_get::<_, Option<i64>>(2)?,
        ) {
            return Ok(Checked {
                decision: Decision {
                    cost: count(credits),
                    denial: None,
                },
                reservation_expires_at: Some(expires_at),
                counted,
            });
        }
        let usage: Vec<i64> = row.try_get::<_, Option<Vec<i64>>>(3)?.unwrap_or_default();
        let pending: Vec<i64> = row.try_get::<_, Option<Vec<i64>>>(4)?.unwrap_or_default();
        let reserved: bool = row.try_get(5)?;
        let snapshot = snapshot(check.now, &starts, &usage, &pending, check.shares.clone());
        let decision = evaluate(policy, &snapshot, request);
        let wanted = decision.allowed() && check.kind == GateKind::Prompt;
        if wanted != reserved {
            // The caps and the engine disagree (a bug the property test in
            // quota/tests/caps.rs is there to catch): never let a prompt
            // through unheld, never hold one refused.
            self.disagreements
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(
                user_id = check.user_id,
                reserved,
                allowed = decision.allowed(),
                "the check's caps disagree with the engine"
            );
            if reserved {
                client
                    .execute(
                        "DELETE FROM reservations WHERE device_id = $1 AND key = $2",
                        &[&check.device_id, &check.key],
                    )
                    .await?;
            }
            if decision.allowed() {
                return Err(PgError::CapsDisagree);
            }
        }
        Ok(Checked {
            reservation_expires_at: (reserved && wanted).then_some(expires),
            decision,
            counted,
        })
    }

    /// Gives up on a statement still running on `client`: PostgreSQL is
    /// asked to cancel it (it may be waiting for a person's row lock, or
    /// holding it), which rolls it back, and the connection leaves the pool
    /// rather than serve the next check after it.
    fn abandon(&self, client: deadpool_postgres::Object, cancel: tokio_postgres::CancelToken) {
        drop(deadpool_postgres::Object::take(client));
        let tls = self.target.tls();
        tokio::spawn(async move {
            if let Err(error) = cancel.cancel_query(tls).await {
                tracing::warn!(%error, "could not cancel a check that ran out of time");
            }
        });
        tracing::warn!("a check ran out of time; its statement is cancelled");
    }

    /// Counts the hook clients' reservations that lapsed by `now` for
    /// people who did not check again meanwhile (the leading replica's
    /// sweep), one statement per person, under their row lock.
    pub async fn count_lapsed(&self, now: i64) -> Result<Vec<Event>, PgError> {
        let client = self.connection().await?;
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
            let row = client
                .query_one("SELECT ccgate_lapse($1, $2)", &[&user_id, &now])
                .await?;
            counted.extend(counted_events(row.try_get(0)?));
        }
        Ok(counted)
    }
}
