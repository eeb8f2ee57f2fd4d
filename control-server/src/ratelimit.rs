//! Failure rate limiting per client (logins, install-code registrations):
//! after `max` failures within `window`, requests are refused until the
//! oldest failure leaves the window. An attempt is *reserved* before the
//! work it guards (a password hash, a code lookup), so concurrent attempts
//! cannot all pass the check before any failure is recorded. IPv6 clients
//! are keyed by their /64 (one host usually holds a whole /64).
//!
//! With several replicas on PostgreSQL ([`FailureLimiter::shared`]) each
//! failure is also stored there, and an attempt is refused when the
//! failures every replica stored use up the limit. Attempts reserved at
//! the same moment on different replicas are not seen by each other, so a
//! burst may get up to `max` tries per replica before the first failures
//! are stored; after that the client waits on every replica.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::postgres::PgDb;

/// The address a client is limited by: IPv4 as it is (also when it comes
/// as an IPv4-mapped IPv6 address), IPv6 by its /64.
pub fn client_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<Instant>,
    /// Attempts reserved and not finished yet.
    in_flight: u32,
}

#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<IpAddr, Entry>>,
    shared: Option<Shared>,
}

/// Where the replicas keep their failures, and under what name.
#[derive(Debug)]
struct Shared {
    pg: PgDb,
    scope: &'static str,
}

/// A reserved attempt. [`Attempt::succeeded`] gives it back; dropped
/// otherwise (a failure, an error, a request cancelled half way), it
/// counts as a failure.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a FailureLimiter,
    key: IpAddr,
    succeeded: bool,
}

impl Attempt<'_> {
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut entries = self.limiter.lock();
        let entry = entries.entry(self.key).or_default();
        entry.in_flight = entry.in_flight.saturating_sub(1);
        if !self.succeeded {
            entry.failures.push_back(Instant::now());
            while entry.failures.len() > self.limiter.max as usize {
                entry.failures.pop_front();
            }
            if let (Some(shared), Ok(runtime)) =
                (&self.limiter.shared, tokio::runtime::Handle::try_current())
            {
                let (pg, scope, client) = (shared.pg.clone(), shared.scope, self.key.to_string());
                runtime.spawn(async move {
                    let at = jiff::Timestamp::now().as_millisecond();
                    if let Err(error) = pg.record_failure(scope, &client, at).await {
                        tracing::warn!(%error, scope, "could not store a failed attempt");
                    }
                });
            }
        }
    }
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            entries: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// The same limit over the failures every replica stores in `pg`
    /// under `scope`.
    pub fn shared(mut self, pg: PgDb, scope: &'static str) -> Self {
        self.shared = Some(Shared { pg, scope });
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds until `entry` may try again, if it may not now.
    fn wait(&self, entry: &mut Entry, now: Instant) -> Option<u64> {
        while entry
            .failures
            .front()
            .is_some_and(|&t| now.duration_since(t) >= self.window)
        {
            entry.failures.pop_front();
        }
        let used = entry.failures.len() + entry.in_flight as usize;
        if used < self.max as usize {
            return None;
        }
        let wait = match entry.failures.front() {
            // Taken by attempts still running: they finish in a moment.
            None => Duration::ZERO,
            Some(&oldest) => self.window.saturating_sub(now.duration_since(oldest)),
        };
        Some(wait.as_secs() + 1)
    }

    /// Reserves an attempt for `client`; `Err(seconds to wait)` when its
    /// failures (on every replica) and the attempts it has running here use
    /// up the limit.
    pub async fn begin(&self, client: IpAddr) -> Result<Attempt<'_>, u64> {
        let attempt = self.reserve(client)?;
        let Some(shared) = &self.shared else {
            return Ok(attempt);
        };
        let now = jiff::Timestamp::now().as_millisecond();
        let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let since = now.saturating_sub(window);
        match shared
            .pg
            .failures_since(shared.scope, &attempt.key.to_string(), since)
            .await
        {
            Ok(failures) if failures.count >= i64::from(self.max) => {
                // Refused before any work: not a failure of its own.
                attempt.succeeded();
                let oldest = failures.oldest.unwrap_or(now);
                let wait_ms = (oldest + window - now).max(0);
                Err(u64::try_from(wait_ms / 1000).unwrap_or(0) + 1)
            }
            Ok(_) => Ok(attempt),
            // This replica's own count still holds; the work the attempt
            // guards needs the database too and says so.
            Err(error) => {
                tracing::warn!(%error, scope = shared.scope, "could not read the stored failed attempts");
                Ok(attempt)
            }
        }
    }

    /// Reserves an attempt on this replica's count only.
    fn reserve(&self, client: IpAddr) -> Result<Attempt<'_>, u64> {
        let key = client_key(client);
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.entry(key).or_default();
        if let Some(wait) = self.wait(entry, now) {
            return Err(wait);
        }
        entry.in_flight += 1;
        Ok(Attempt {
            limiter: self,
            key,
            succeeded: false,
        })
    }

    /// `Err(seconds to wait)` when `client` has used up its failures.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        let mut entries = self.lock();
        match entries.get_mut(&client_key(client)) {
            Some(entry) => self.wait(entry, Instant::now()).map_or(Ok(()), Err),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, client: IpAddr) {
        drop(Attempt {
            limiter: self,
            key: client_key(client),
            succeeded: false,
        });
    }

    /// Forgets clients with nothing running and no failure in the window,
    /// here and in the shared store.
    pub fn sweep(&self) {
        if let (Some(shared), Ok(runtime)) = (&self.shared, tokio::runtime::Handle::try_current()) {
            let (pg, scope) = (shared.pg.clone(), shared.scope);
            let window = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
            runtime.spawn(async move {
                let before = jiff::Timestamp::now()
                    .as_millisecond()
                    .saturating_sub(window);
                if let Err(error) = pg.forget_failures_before(scope, before).await {
                    tracing::warn!(%error, scope, "could not forget old failed attempts");
                }
            });
        }
        let now = Instant::now();
        self.lock().retain(|_, entry| {
            entry.in_flight > 0
                || entry
                    .failures
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

    #[test]
    fn attempts_are_reserved_before_they_fail() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limiter.reserve(a).unwrap();
        let second = limiter.reserve(a).unwrap();
        // Two running: a third waits, though nothing has failed yet.
        assert_eq!(limiter.reserve(a).unwrap_err(), 1);
        first.succeeded();
        let third = limiter.reserve(a).unwrap();
        drop(second);
        drop(third);
        // Two failures: locked out for the window.
        assert!(limiter.reserve(a).unwrap_err() > 1);
    }

    #[test]
    fn ipv6_clients_share_the_limit_of_their_64() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        limiter.record_failure(a);
        limiter.record_failure(same_64);
        assert!(limiter.check(a).is_err());
        assert!(limiter.check("2001:db8:1:2::9".parse().unwrap()).is_err());
        assert!(limiter.check(other_64).is_ok());
        // An IPv4 client in an IPv6 socket is the IPv4 client.
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        limiter.record_failure(v4);
        limiter.record_failure(mapped);
        assert!(limiter.check(v4).is_err());
    }
}
