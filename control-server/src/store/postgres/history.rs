//! On PostgreSQL: What happened: usage buckets, event and audit pages, recorded events, utilization history.

use ccgate_quota::wire::SubscriptionUsage;
use ccgate_quota::{ModelFamily, Totals};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::{column, count, read_snapshot};
use crate::db::audit::AuditFilter;
use crate::db::events::{BUCKET_MS, EventFilter, StoredEvent, UsageBucket};
use crate::db::utilization::{ObservationPoint, ServedRequest};
use crate::db::{corrupt, enum_from_text};
use crate::model::{AuditEntry, Event, EventType};
use crate::postgres::PgDb;
use crate::store::StoreResult;

/// The six counts from column `first` on, in the order of the events table.
pub(super) fn totals_at(row: &Row, first: usize) -> StoreResult<Totals> {
    Ok(Totals {
        prompts: count(row, first)?,
        credits: count(row, first + 1)?,
        input_tokens: count(row, first + 2)?,
        output_tokens: count(row, first + 3)?,
        cache_creation_input_tokens: count(row, first + 4)?,
        cache_read_input_tokens: count(row, first + 5)?,
    })
}

/// A stored model family.
pub(super) fn family(text: &str) -> StoreResult<ModelFamily> {
    text.parse().map_err(corrupt)
}

/// The buckets query: `$1` from, `$2` until, `$3` the person when one is
/// asked for (stated plainly, so the `(user_id, at)` index serves it).
/// Sums of BIGINT are NUMERIC on PostgreSQL, hence the casts back.
macro_rules! usage_buckets_sql {
    ($who:literal) => {
        concat!(
            "SELECT (at / 900000) * 900000 AS bucket, user_id, family,
                    SUM(prompts)::bigint, SUM(credits)::bigint, SUM(input_tokens)::bigint,
                    SUM(output_tokens)::bigint, SUM(cache_creation_input_tokens)::bigint,
                    SUM(cache_read_input_tokens)::bigint
             FROM events
             WHERE ",
            $who,
            " at >= $1 AND at < $2 AND family IS NOT NULL
               AND (prompts > 0 OR credits > 0 OR input_tokens > 0 OR output_tokens > 0
                    OR cache_creation_input_tokens > 0 OR cache_read_input_tokens > 0)
             GROUP BY bucket, user_id, family ORDER BY bucket, user_id, family"
        )
    };
}
const _: () = assert!(
    BUCKET_MS == 900_000,
    "the buckets query spells BUCKET_MS out"
);
const USAGE_BUCKETS_ALL: &str = usage_buckets_sql!("");
const USAGE_BUCKETS_ONE: &str = usage_buckets_sql!("user_id = $3 AND");

/// A stored event's columns, its position (`seq`) first, in the order
/// [`stored_event`] reads them.
macro_rules! event_columns {
    () => {
        "seq, id, user_id, device_id, at, received_at, type, model, family,
         prompts, credits, input_tokens, output_tokens, cache_creation_input_tokens,
         cache_read_input_tokens, kind, turn_key, session_id, detail, count_reason,
         estimated, credential"
    };
}
pub(super) use event_columns;

/// An event page: `$1`, `$2` the position to start before, `$3` how many.
macro_rules! events_page_sql {
    ($filters:literal) => {
        concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE (at, seq) < ($1, $2)",
            $filters,
            " ORDER BY at DESC, seq DESC LIMIT $3"
        )
    };
}
const EVENTS_PAGE: &str = events_page_sql!("");
const EVENTS_PAGE_USER: &str = events_page_sql!(" AND user_id = $4");
const EVENTS_PAGE_TYPE: &str = events_page_sql!(" AND type = $4");
const EVENTS_PAGE_USER_TYPE: &str = events_page_sql!(" AND user_id = $4 AND type = $5");

/// A row of [`event_columns!`].
pub(super) fn stored_event(row: &Row) -> StoreResult<StoredEvent> {
    Ok(StoredEvent {
        seq: column(row, 0)?,
        row: Event {
            id: column(row, 1)?,
            user_id: column(row, 2)?,
            device_id: column(row, 3)?,
            at: super::instant(row, 4)?,
            received_at: super::instant(row, 5)?,
            event_type: enum_from_text(column(row, 6)?)?,
            model: column(row, 7)?,
            family: column::<Option<&str>>(row, 8)?.map(family).transpose()?,
            totals: totals_at(row, 9)?,
            kind: column(row, 15)?,
            turn_key: column(row, 16)?,
            session_id: column(row, 17)?,
            detail: column(row, 18)?,
            count_reason: column(row, 19)?,
            estimated: column(row, 20)?,
            credential: column(row, 21)?,
        },
    })
}

/// Each subscription's newest observation by observation time (the
/// latest stored among those at the same instant), by subscription.
pub(super) async fn latest_utilization(
    client: &impl GenericClient,
) -> StoreResult<Vec<(i64, SubscriptionUsage)>> {
    client
        .query(
            "SELECT DISTINCT ON (subscription_id) subscription_id, data
             FROM utilization_observations
             ORDER BY subscription_id, at DESC, id DESC",
            &[],
        )
        .await?
        .iter()
        .map(|row| {
            let data: serde_json::Value = column(row, 1)?;
            Ok((
                column(row, 0)?,
                serde_json::from_value(data).map_err(corrupt)?,
            ))
        })
        .collect()
}

/// A subscription's observations from `since_ms` on, oldest first.
async fn points_since(
    client: &impl GenericClient,
    subscription_id: i64,
    since_ms: i64,
) -> StoreResult<Vec<ObservationPoint>> {
    client
        .query(
            "SELECT at, five_hour, five_hour_resets_at, seven_day, seven_day_resets_at, status
             FROM utilization_observations WHERE subscription_id = $1 AND at >= $2
             ORDER BY at, id",
            &[&subscription_id, &since_ms],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(ObservationPoint {
                at: column(row, 0)?,
                five_hour: column(row, 1)?,
                five_hour_resets_at: column(row, 2)?,
                seven_day: column(row, 3)?,
                seven_day_resets_at: column(row, 4)?,
                status: column(row, 5)?,
            })
        })
        .collect()
}

/// The requests subscription `subscription_id` served from `since_ms` on,
/// in the order they were stored.
async fn requests_since(
    client: &impl GenericClient,
    subscription_id: i64,
    since_ms: i64,
) -> StoreResult<Vec<ServedRequest>> {
    client
        .query(
            "SELECT at, user_id, family, input_tokens, output_tokens,
                 cache_creation_input_tokens, cache_read_input_tokens
             FROM events WHERE subscription_id = $1 AND at >= $2 AND type = 'request'
             ORDER BY at, seq",
            &[&subscription_id, &since_ms],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(ServedRequest {
                at: column(row, 0)?,
                user_id: column(row, 1)?,
                family: column::<Option<&str>>(row, 2)?
                    .map_or(ModelFamily::Other, ModelFamily::from_model_id),
                totals: Totals {
                    input_tokens: count(row, 3)?,
                    output_tokens: count(row, 4)?,
                    cache_creation_input_tokens: count(row, 5)?,
                    cache_read_input_tokens: count(row, 6)?,
                    ..Totals::default()
                },
            })
        })
        .collect()
}

impl PgDb {
    pub async fn usage_buckets(
        &self,
        user_id: Option<i64>,
        from: i64,
        until: i64,
    ) -> StoreResult<Vec<UsageBucket>> {
        let client = self.connection().await?;
        let rows = match user_id {
            Some(user_id) => {
                client
                    .query(USAGE_BUCKETS_ONE, &[&from, &until, &user_id])
                    .await?
            }
            None => client.query(USAGE_BUCKETS_ALL, &[&from, &until]).await?,
        };
        rows.iter()
            .map(|row| {
                Ok(UsageBucket {
                    start: column(row, 0)?,
                    user_id: column(row, 1)?,
                    family: family(column(row, 2)?)?,
                    totals: totals_at(row, 3)?,
                })
            })
            .collect()
    }

    /// Newest first; the position is the `seq` the row was stored with
    /// (SQLite's rowid), so a cursor means the same on either.
    pub async fn events_page(&self, filter: EventFilter) -> StoreResult<Vec<StoredEvent>> {
        let (before_at, before_seq) = filter.before.unwrap_or((i64::MAX, i64::MAX));
        let limit = i64::from(filter.limit);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&before_at, &before_seq, &limit];
        let type_name = filter.event_type.map(EventType::as_str);
        let sql = match (&filter.user_id, &type_name) {
            (None, None) => EVENTS_PAGE,
            (Some(user_id), None) => {
                params.push(user_id);
                EVENTS_PAGE_USER
            }
            (None, Some(event_type)) => {
                params.push(event_type);
                EVENTS_PAGE_TYPE
            }
            (Some(user_id), Some(event_type)) => {
                params.push(user_id);
                params.push(event_type);
                EVENTS_PAGE_USER_TYPE
            }
        };
        let client = self.connection().await?;
        client
            .query(sql, &params)
            .await?
            .iter()
            .map(stored_event)
            .collect()
    }

    pub async fn audit_page(&self, filter: AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let client = self.connection().await?;
        client
            .query(
                "SELECT id, at, kind, actor, user_id, device_id, detail FROM audit_log
                 WHERE ($1::text IS NULL OR kind = $1) AND ($2::bigint IS NULL OR user_id = $2)
                   AND id < $3
                 ORDER BY id DESC LIMIT $4",
                &[
                    &filter.kind,
                    &filter.user_id,
                    &filter.before.unwrap_or(i64::MAX),
                    &i64::from(filter.limit),
                ],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: column(row, 0)?,
                    at: super::instant(row, 1)?,
                    kind: column(row, 2)?,
                    actor: column(row, 3)?,
                    user_id: column(row, 4)?,
                    device_id: column(row, 5)?,
                    detail: column(row, 6)?,
                })
            })
            .collect()
    }

    pub async fn latest_utilization(&self) -> StoreResult<Vec<(i64, SubscriptionUsage)>> {
        let client = self.connection().await?;
        latest_utilization(&**client).await
    }

    pub async fn utilization_points(
        &self,
        subscription_id: i64,
        since: i64,
    ) -> StoreResult<Vec<ObservationPoint>> {
        let client = self.connection().await?;
        points_since(&**client, subscription_id, since).await
    }

    /// One repeatable-read snapshot, so the observations and the requests
    /// agree.
    pub async fn observations_and_requests_since(
        &self,
        since: i64,
    ) -> StoreResult<Vec<(i64, Vec<ObservationPoint>, Vec<ServedRequest>)>> {
        let mut client = self.connection().await?;
        let tx = read_snapshot(&mut client).await?;
        let ids = tx
            .query(
                "SELECT DISTINCT subscription_id FROM utilization_observations WHERE at >= $1
                 ORDER BY subscription_id",
                &[&since],
            )
            .await?
            .iter()
            .map(|row| column::<i64>(row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        let mut observed = Vec::with_capacity(ids.len());
        for id in ids {
            observed.push((
                id,
                points_since(&*tx, id, since).await?,
                requests_since(&*tx, id, since).await?,
            ));
        }
        tx.commit().await?;
        Ok(observed)
    }

    pub async fn record_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        let client = self.connection().await?;
        super::insert_audit(&**client, &entry).await
    }
}
