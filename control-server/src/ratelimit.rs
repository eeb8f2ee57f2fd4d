//! Failure rate limiting per client address (logins, install-code
//! registrations): after `max` failures within `window`, requests are
//! refused until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when `client` has used up its failures.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = failures.get_mut(&client) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.max as usize {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        let wait = self.window.saturating_sub(now.duration_since(oldest));
        Err(wait.as_secs() + 1)
    }

    pub fn record_failure(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let times = failures.entry(client).or_default();
        times.push_back(Instant::now());
        while times.len() > self.max as usize {
            times.pop_front();
        }
    }

    /// Forgets addresses whose failures have all left the window.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|&t| now.duration_since(t) < self.window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_max_failures() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limiter.check(a).is_ok());
        limiter.record_failure(a);
        limiter.record_failure(a);
        let wait = limiter.check(a).unwrap_err();
        assert!((1..=61).contains(&wait));
        assert!(limiter.check(b).is_ok());
    }
}
