//! Failed attempts (logins, registrations) per client address, shared by
//! the replicas: each records its failures here and counts everyone's
//! before it lets a client try again (`crate::ratelimit`).

use super::{PgDb, PgError};

/// A client's failures in a window: how many, and the oldest (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    pub count: i64,
    pub oldest: Option<i64>,
}

impl PgDb {
    /// The failures of `client` in `scope` at or after `since` (ms).
    pub async fn failures_since(
        &self,
        scope: &str,
        client: &str,
        since: i64,
    ) -> Result<Failures, PgError> {
        let row = self
            .connection()
            .await?
            .query_one(
                "SELECT count(*), min(at) FROM login_failures
                 WHERE scope = $1 AND client = $2 AND at >= $3",
                &[&scope, &client, &since],
            )
            .await?;
        Ok(Failures {
            count: row.get(0),
            oldest: row.get(1),
        })
    }

    pub async fn record_failure(&self, scope: &str, client: &str, at: i64) -> Result<(), PgError> {
        self.connection()
            .await?
            .execute(
                "INSERT INTO login_failures (scope, client, at) VALUES ($1, $2, $3)",
                &[&scope, &client, &at],
            )
            .await?;
        Ok(())
    }

    /// Deletes the failures of `scope` before `before` (ms).
    pub async fn forget_failures_before(&self, scope: &str, before: i64) -> Result<u64, PgError> {
        Ok(self
            .connection()
            .await?
            .execute(
                "DELETE FROM login_failures WHERE scope = $1 AND at < $2",
                &[&scope, &before],
            )
            .await?)
    }
}
