//! Reading a request body whole, within a limit, without leaving the client
//! writing into a closed connection; and the memory budget all bodies being
//! read share, so many large requests at once wait instead of exhausting
//! the daemon's memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hudsucker::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget counts in KiB: a semaphore holds at most `u32::MAX` permits
/// per acquisition.
const UNIT: usize = 1024;

/// Room in memory for request bodies, shared by all requests.
#[derive(Debug)]
pub struct BodyBudget {
    room: Arc<Semaphore>,
    total_units: usize,
    wait: Duration,
}

/// No room came free within the wait.
#[derive(Debug, PartialEq, Eq)]
pub struct BudgetFull;

impl BodyBudget {
    pub fn new(total_bytes: usize, wait: Duration) -> Self {
        let total_units = total_bytes.div_ceil(UNIT).max(1);
        Self {
            room: Arc::new(Semaphore::new(total_units)),
            total_units,
            wait,
        }
    }

    /// Room left now, in bytes.
    pub fn free_bytes(&self) -> usize {
        self.room.available_permits() * UNIT
    }

    /// Reserves room for a body of `declared` bytes (or of `limit`, the
    /// most it may be, when the client did not say). A body declared over
    /// the limit is not kept, so it needs no room.
    pub async fn reserve(
        &self,
        declared: Option<usize>,
        limit: usize,
    ) -> Result<Option<OwnedSemaphorePermit>, BudgetFull> {
        let size = match declared {
            Some(length) if length > limit => return Ok(None),
            Some(length) => length,
            None => limit,
        };
        let units = size.div_ceil(UNIT).clamp(1, self.total_units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.wait, self.room.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            // The semaphore is never closed; a timeout is a full budget.
            Ok(Err(_)) | Err(_) => Err(BudgetFull),
        }
    }
}

pub enum BodyRead {
    TooLarge,
    Broken(String),
}

/// Past this, an oversized body is no longer read to the end: the
/// connection is closed instead.
const DRAIN_LIMIT: usize = 512 << 20;

/// Reads a request body of at most `limit` bytes. A larger one is read to
/// its end and dropped (up to [`DRAIN_LIMIT`]) so that the client, still
/// sending, receives the refusal instead of a broken pipe.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<usize>,
) -> Result<Bytes, BodyRead> {
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    let mut too_large = declared.is_some_and(|length| length > limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRead::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        too_large |= seen > limit;
        if too_large {
            if seen > DRAIN_LIMIT {
                break;
            }
            kept.clear();
        } else {
            kept.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(BodyRead::TooLarge)
    } else {
        Ok(kept.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    #[tokio::test]
    async fn bodies_wait_for_room_and_get_it_when_one_ends() {
        let budget = Arc::new(BodyBudget::new(4 * MB, Duration::from_secs(2)));
        let first = budget.reserve(Some(3 * MB), 4 * MB).await.unwrap();
        assert!(first.is_some());
        // No length given: room for the largest body it may be.
        assert!(matches!(
            budget.reserve(None, 4 * MB).await,
            Err(BudgetFull)
        ));
        assert!(budget.reserve(Some(MB), 4 * MB).await.unwrap().is_some());
        // Over the limit: refused unread, so it needs no room.
        assert!(matches!(
            budget.reserve(Some(5 * MB), 4 * MB).await,
            Ok(None)
        ));

        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(Some(2 * MB), 4 * MB).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(waiting.await.unwrap().unwrap().is_some());
    }
}
