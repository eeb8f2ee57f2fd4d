//! Exponential backoff with jitter, for reconnecting to the server.

use std::time::Duration;

#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The next delay: doubling up to the maximum, with ±25 % jitter so that
    /// many proxies do not reconnect in step after a server restart.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0; // 0..1
        base.mul_f64(0.75 + jitter * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay().as_millis()).collect();
        for (delay, base) in delays.iter().zip([100, 200, 400, 800, 800, 800]) {
            assert!((base * 3 / 4..=base * 5 / 4).contains(delay), "{delays:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(125));
    }
}
