//! The subscription's latest utilization as Anthropic's headers report it
//! (one row, replaced only by newer observations).

use ccgate_quota::wire::SubscriptionUsage;
use rusqlite::{Connection, OptionalExtension, params};

use super::{DbResult, corrupt};

/// Stores `usage` unless a newer observation is already stored; true when stored.
pub fn store_if_newer(
    conn: &Connection,
    usage: &SubscriptionUsage,
    user_id: i64,
    device_id: i64,
) -> DbResult<bool> {
    let data = serde_json::to_string(usage).map_err(corrupt)?;
    let changed = conn.execute(
        "INSERT INTO subscription_usage (id, observed_at, user_id, device_id, data)
         VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET observed_at = excluded.observed_at,
             user_id = excluded.user_id, device_id = excluded.device_id, data = excluded.data
         WHERE excluded.observed_at > subscription_usage.observed_at",
        params![usage.observed_at.as_millisecond(), user_id, device_id, data],
    )?;
    Ok(changed > 0)
}

pub fn latest(conn: &Connection) -> DbResult<Option<SubscriptionUsage>> {
    let data: Option<String> = conn
        .query_row(
            "SELECT data FROM subscription_usage WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    data.map(|text| serde_json::from_str(&text).map_err(corrupt))
        .transpose()
}
