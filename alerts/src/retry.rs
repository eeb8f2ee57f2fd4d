//! Retries with exponential backoff, reporting every attempt.

use std::fmt;
use std::time::{Duration, Instant};

use crate::{ChannelConfig, Delivered, Deliverer, DeliveryError, Notification};

/// How often and how patiently to retry. The defaults span about a minute
/// of backoff (2 + 4 + 8 + 16 s) before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 is treated as 1).
    pub attempts: u32,
    pub first_delay: Duration,
    pub factor: u32,
    /// Cap for the backoff and for a server's Retry-After.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_secs(2),
            factor: 2,
            max_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): the server's
    /// Retry-After when it sent one, else `first_delay * factor^(attempt-1)`;
    /// both capped at `max_delay`.
    pub fn delay_for(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let delay = match retry_after {
            Some(wait) => wait,
            None => {
                let exp = attempt.saturating_sub(1);
                self.factor
                    .checked_pow(exp)
                    .and_then(|m| self.first_delay.checked_mul(m))
                    .unwrap_or(self.max_delay)
            }
        };
        delay.min(self.max_delay)
    }
}

/// Why an attempt failed, as a log line needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFailure {
    pub error: String,
    pub status: Option<u16>,
    pub retryable: bool,
}

/// One attempt of [`Deliverer::deliver_with_retry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// 1-based.
    pub attempt: u32,
    /// The policy's number of attempts.
    pub attempts: u32,
    pub outcome: Result<Delivered, AttemptFailure>,
    /// The wait before the next attempt; `None` when this was the last.
    pub next_delay: Option<Duration>,
    pub elapsed: Duration,
}

impl fmt::Display for AttemptReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt {}/{}: ", self.attempt, self.attempts)?;
        match &self.outcome {
            Ok(d) => write!(f, "delivered (status {})", d.status)?,
            Err(e) => write!(f, "failed: {}", e.error)?,
        }
        match self.next_delay {
            Some(d) => write!(f, "; retrying in {d:?}"),
            None => Ok(()),
        }
    }
}

impl Deliverer {
    /// Delivers with retries: stops at success, at a permanent error, or
    /// after `policy.attempts`; `on_attempt` sees every attempt. Returns the
    /// last attempt's result.
    pub async fn deliver_with_retry(
        &self,
        channel: &ChannelConfig,
        n: &Notification,
        policy: &RetryPolicy,
        mut on_attempt: impl FnMut(AttemptReport),
    ) -> Result<Delivered, DeliveryError> {
        let attempts = policy.attempts.max(1);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = self.deliver(channel, n).await;
            let elapsed = started.elapsed();
            let next_delay = match &result {
                Err(e) if e.is_retryable() && attempt < attempts => {
                    Some(policy.delay_for(attempt, e.retry_after()))
                }
                _ => None,
            };
            on_attempt(AttemptReport {
                attempt,
                attempts,
                outcome: match &result {
                    Ok(d) => Ok(d.clone()),
                    Err(e) => Err(AttemptFailure {
                        error: e.to_string(),
                        status: e.status(),
                        retryable: e.is_retryable(),
                    }),
                },
                next_delay,
                elapsed,
            });
            match next_delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return result,
            }
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=10).map(|a| p.delay_for(a, None).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay_for(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        // Shorter than the backoff: the server knows best.
        assert_eq!(
            p.delay_for(4, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay_for(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_for(u32::MAX, None), p.max_delay);
        let p = RetryPolicy {
            factor: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay_for(1000, None), Duration::from_secs(2));
    }
}
