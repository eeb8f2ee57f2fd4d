//! The server's notion of "now". Production uses the system clock; tests
//! shift it (an install code that expired, a session past its lifetime, an
//! event from two days ago) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

/// The system clock plus an adjustable offset shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    pub fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        let offset = self.offset_ms.load(Ordering::Relaxed);
        if offset == 0 {
            return now;
        }
        now.checked_add(SignedDuration::from_millis(offset))
            .unwrap_or(now)
    }

    pub fn now_ms(&self) -> i64 {
        self.now().as_millisecond()
    }

    /// Moves this clock (and every clone) forward by `by` (backward if negative).
    pub fn advance(&self, by: SignedDuration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}
