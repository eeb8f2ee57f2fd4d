//! Anthropic's utilization of each subscription over time: every observation
//! of the unified rate-limit headers, which subscription a request used, and
//! the accounts that personal-login traffic names.

use ccgate_quota::wire::SubscriptionUsage;
use ccgate_quota::{ModelFamily, Totals};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{DbResult, corrupt, is_unique_violation};

/// What a request says about the subscription it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionClaim {
    /// The proxy swapped in the team's credential: the person's assigned
    /// subscription (the daemon's own doing, not the client's).
    Team,
    /// A personal login naming this account (`account_uuid`).
    Account(String),
}

/// The subscription a request used, creating a `seen` subscription for an
/// account met for the first time, and remembering it as the person's.
pub fn resolve(
    conn: &Connection,
    user_id: i64,
    claim: &SubscriptionClaim,
    now_ms: i64,
) -> DbResult<Option<i64>> {
    match claim {
        SubscriptionClaim::Team => Ok(conn
            .query_row(
                "SELECT subscription_id FROM users WHERE id = ?1",
                [user_id],
                |row| row.get::<_, Option<i64>>(0),
            )
            .optional()?
            .flatten()),
        SubscriptionClaim::Account(account) => {
            let id = match account_subscription(conn, account)? {
                Some(id) => id,
                // The account is Claude Code's claim: a forged one per
                // request must not grow the table without end.
                None if seen_accounts(conn)? >= MAX_SEEN_ACCOUNTS => return Ok(None),
                None => add_seen_account(conn, account, now_ms)?,
            };
            conn.prepare_cached(
                "UPDATE users SET seen_subscription_id = ?2
                 WHERE id = ?1 AND seen_subscription_id IS NOT ?2",
            )?
            .execute(params![user_id, id])?;
            Ok(Some(id))
        }
    }
}

/// Accounts filed from personal-login traffic at most.
pub const MAX_SEEN_ACCOUNTS: i64 = 50;

fn seen_accounts(conn: &Connection) -> DbResult<i64> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM subscriptions WHERE origin = 'seen'")?
        .query_row([], |row| row.get(0))?)
}

fn account_subscription(conn: &Connection, account: &str) -> DbResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM subscriptions WHERE account_uuid = ?1")?
        .query_row([account], |row| row.get(0))
        .optional()?)
}

/// A subscription for an account seen in traffic: no credential (an empty
/// sealed blob), named after the account until an admin renames it.
fn add_seen_account(conn: &Connection, account: &str, now_ms: i64) -> DbResult<i64> {
    let short: String = account.chars().take(8).collect();
    for name in [format!("Account {short}"), format!("Account {account}")] {
        let inserted = conn.execute(
            "INSERT INTO subscriptions (name, kind, credential, credential_hint, created_at,
                 updated_at, origin, account_uuid)
             VALUES (?1, 'oauth_token', X'', '', ?2, ?2, 'seen', ?3)",
            params![name, now_ms, account],
        );
        match inserted {
            Ok(_) => return Ok(conn.last_insert_rowid()),
            Err(error) if is_unique_violation(&error) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(corrupt(format!(
        "no free subscription name for account {account}"
    )))
}

/// Marks a stored request event with the subscription it used.
pub fn tag_event(
    conn: &Connection,
    device_id: i64,
    event_id: &str,
    subscription_id: i64,
) -> DbResult<()> {
    conn.prepare_cached("UPDATE events SET subscription_id = ?3 WHERE device_id = ?1 AND id = ?2")?
        .execute(params![device_id, event_id, subscription_id])?;
    Ok(())
}

/// Stores one observation of a subscription's utilization.
pub fn record(
    conn: &Connection,
    subscription_id: i64,
    user_id: i64,
    device_id: i64,
    usage: &SubscriptionUsage,
) -> DbResult<()> {
    let data = serde_json::to_string(usage).map_err(corrupt)?;
    let five_hour = usage.five_hour();
    let seven_day = usage.seven_day();
    conn.prepare_cached(
        "INSERT INTO utilization_observations (subscription_id, at, user_id, device_id,
             five_hour, five_hour_resets_at, seven_day, seven_day_resets_at, status, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        subscription_id,
        usage.observed_at.as_millisecond(),
        user_id,
        device_id,
        five_hour.and_then(|w| w.utilization),
        five_hour
            .and_then(|w| w.resets_at)
            .map(|t| t.as_millisecond()),
        seven_day.and_then(|w| w.utilization),
        seven_day
            .and_then(|w| w.resets_at)
            .map(|t| t.as_millisecond()),
        usage.status,
        data,
    ])?;
    Ok(())
}

/// An observation that came without its request (an agent from before
/// issue 11): kept for the person's assigned or last-seen subscription.
pub fn record_for_user(
    conn: &Connection,
    user_id: i64,
    device_id: i64,
    usage: &SubscriptionUsage,
) -> DbResult<bool> {
    let subscription: Option<i64> = conn
        .query_row(
            "SELECT COALESCE(subscription_id, seen_subscription_id) FROM users WHERE id = ?1",
            [user_id],
            |row| row.get(0),
        )
        .optional()?
        .flatten();
    match subscription {
        Some(id) => record(conn, id, user_id, device_id, usage).map(|()| true),
        None => Ok(false),
    }
}

/// Each subscription's newest observation, by observation time.
pub fn latest(conn: &Connection) -> DbResult<Vec<(i64, SubscriptionUsage)>> {
    // SQLite takes the bare columns of an aggregate query from the MAX row.
    let mut statement = conn.prepare_cached(
        "SELECT subscription_id, MAX(at), data FROM utilization_observations
         GROUP BY subscription_id",
    )?;
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(id, data)| Ok((id, serde_json::from_str(&data).map_err(corrupt)?)))
        .collect()
}

/// One point of a history chart (utilization as a fraction, as the headers
/// give it; times in ms).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservationPoint {
    pub at: i64,
    pub five_hour: Option<f64>,
    pub five_hour_resets_at: Option<i64>,
    pub seven_day: Option<f64>,
    pub seven_day_resets_at: Option<i64>,
    pub status: Option<String>,
}

/// A subscription's observations from `since_ms` on, oldest first.
pub fn points_since(
    conn: &Connection,
    subscription_id: i64,
    since_ms: i64,
) -> DbResult<Vec<ObservationPoint>> {
    let mut statement = conn.prepare_cached(
        "SELECT at, five_hour, five_hour_resets_at, seven_day, seven_day_resets_at, status
         FROM utilization_observations WHERE subscription_id = ?1 AND at >= ?2
         ORDER BY at, id",
    )?;
    let points = statement
        .query_map(params![subscription_id, since_ms], |row| {
            Ok(ObservationPoint {
                at: row.get(0)?,
                five_hour: row.get(1)?,
                five_hour_resets_at: row.get(2)?,
                seven_day: row.get(3)?,
                seven_day_resets_at: row.get(4)?,
                status: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(points)
}

/// A request a subscription served, with its real token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedRequest {
    pub at: i64,
    pub user_id: i64,
    pub family: ModelFamily,
    pub totals: Totals,
}

/// The requests subscription `subscription_id` served from `since_ms` on.
pub fn requests_since(
    conn: &Connection,
    subscription_id: i64,
    since_ms: i64,
) -> DbResult<Vec<ServedRequest>> {
    let mut statement = conn.prepare_cached(
        "SELECT at, user_id, family, input_tokens, output_tokens, cache_creation_input_tokens,
             cache_read_input_tokens
         FROM events WHERE subscription_id = ?1 AND at >= ?2 AND type = 'request'",
    )?;
    let count = |n: i64| n.max(0) as u64;
    let rows = statement
        .query_map(params![subscription_id, since_ms], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                [row.get::<_, i64>(3)?, row.get(4)?, row.get(5)?, row.get(6)?],
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .map(
            |(at, user_id, family, [input, output, creation, read])| ServedRequest {
                at,
                user_id,
                family: family
                    .as_deref()
                    .map_or(ModelFamily::Other, ModelFamily::from_model_id),
                totals: Totals {
                    input_tokens: count(input),
                    output_tokens: count(output),
                    cache_creation_input_tokens: count(creation),
                    cache_read_input_tokens: count(read),
                    ..Totals::default()
                },
            },
        )
        .collect())
}

/// Subscriptions with an observation from `since_ms` on.
pub fn observed_since(conn: &Connection, since_ms: i64) -> DbResult<Vec<i64>> {
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT subscription_id FROM utilization_observations WHERE at >= ?1",
    )?;
    let ids = statement
        .query_map([since_ms], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// Keeps one observation (the latest) per subscription and `bucket_ms` among
/// those older than `before_ms`; the number removed.
pub fn thin(conn: &Connection, before_ms: i64, bucket_ms: i64) -> DbResult<usize> {
    Ok(conn.execute(
        "DELETE FROM utilization_observations WHERE at < ?1 AND id NOT IN (
             SELECT id FROM (
                 SELECT id, MAX(at) FROM utilization_observations WHERE at < ?1
                 GROUP BY subscription_id, at / ?2))",
        params![before_ms, bucket_ms.max(1)],
    )?)
}

/// Forgets observations older than `before_ms`; the number removed.
pub fn prune(conn: &Connection, before_ms: i64) -> DbResult<usize> {
    Ok(conn.execute(
        "DELETE FROM utilization_observations WHERE at < ?1",
        [before_ms],
    )?)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::db::Db;

    fn usage(at_ms: i64, five_hour: f64) -> SubscriptionUsage {
        serde_json::from_value(serde_json::json!({
            "observed_at": Timestamp::from_millisecond(at_ms).unwrap(),
            "windows": { "5h": { "utilization": five_hour } },
        }))
        .unwrap()
    }

    fn with_user(f: impl FnOnce(&Connection)) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("ccgate.db")).unwrap();
        db.write_blocking(|conn| {
            conn.execute(
                "INSERT INTO users (id, name, slug, created_at) VALUES (1, 'A', 'a', 0),
                     (2, 'B', 'b', 0)",
                [],
            )?;
            f(conn);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn an_account_seen_twice_is_one_subscription_and_the_persons_own() {
        with_user(|conn| {
            let claim = SubscriptionClaim::Account("9f3c2a71-0000-4000-8000-000000000001".into());
            let first = resolve(conn, 1, &claim, 0).unwrap().unwrap();
            let again = resolve(conn, 2, &claim, 5).unwrap().unwrap();
            assert_eq!(first, again);
            let (name, origin): (String, String) = conn
                .query_row(
                    "SELECT name, origin FROM subscriptions WHERE id = ?1",
                    [first],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .unwrap();
            assert_eq!(
                (name.as_str(), origin.as_str()),
                ("Account 9f3c2a71", "seen")
            );
            let seen: Option<i64> = conn
                .query_row(
                    "SELECT seen_subscription_id FROM users WHERE id = 2",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(seen, Some(first));
            // A team request of a person with no assigned subscription has none.
            assert_eq!(resolve(conn, 1, &SubscriptionClaim::Team, 0).unwrap(), None);
        });
    }

    #[test]
    fn old_history_is_thinned_to_one_point_per_bucket_then_pruned() {
        with_user(|conn| {
            let claim = SubscriptionClaim::Account("acct".into());
            let id = resolve(conn, 1, &claim, 0).unwrap().unwrap();
            // Ten points a second apart in one 5-minute bucket, then a recent one.
            for i in 0..10 {
                record(conn, id, 1, 1, &usage(1_000 * i, i as f64 / 100.0)).unwrap();
            }
            record(conn, id, 1, 1, &usage(10_000_000, 0.5)).unwrap();
            assert_eq!(thin(conn, 1_000_000, 300_000).unwrap(), 9);
            let points = points_since(conn, id, 0).unwrap();
            assert_eq!(points.len(), 2);
            assert_eq!(points[0].five_hour, Some(0.09), "the bucket's newest stays");
            assert_eq!(prune(conn, 5_000_000).unwrap(), 1);
            let latest = latest(conn).unwrap();
            assert_eq!(latest.len(), 1);
            assert_eq!(latest[0].1.five_hour().unwrap().utilization, Some(0.5));
        });
    }
}
