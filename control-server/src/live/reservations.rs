//! Prompts allowed by a check but not yet settled by an event. They are held
//! as one running sum per family (what checks read) plus a map by key (for
//! settling) and an expiry queue, so a check never walks a list.

use std::collections::{BTreeMap, HashMap};

use ccgate_quota::{ModelFamily, PerFamily, Totals, UsageSource};
use jiff::Timestamp;

/// A reservation is per device and per turn (agent API) or per session (hook API).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ReservationKey {
    pub device_id: i64,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub family: ModelFamily,
    pub model: String,
    pub session_id: Option<String>,
    /// One prompt and its credit cost.
    pub totals: Totals,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Hook clients may never report (Claude killed mid-turn): their lapsed
    /// reservations are counted. A proxy reports every counted prompt from
    /// its durable ledger, so its lapsed reservations are simply dropped.
    pub counts_on_expiry: bool,
    seq: u64,
}

impl Reservation {
    pub fn new(
        family: ModelFamily,
        model: String,
        session_id: Option<String>,
        cost: u64,
        created_at: Timestamp,
        expires_at: Timestamp,
        counts_on_expiry: bool,
    ) -> Self {
        Self {
            family,
            model,
            session_id,
            totals: Totals {
                prompts: 1,
                credits: cost,
                ..Totals::default()
            },
            created_at,
            expires_at,
            counts_on_expiry,
            seq: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Reservations {
    by_key: HashMap<ReservationKey, Reservation>,
    by_expiry: BTreeMap<(i64, u64), ReservationKey>,
    total: PerFamily<Totals>,
    next_seq: u64,
}

impl Reservations {
    pub fn get(&self, key: &ReservationKey) -> Option<&Reservation> {
        self.by_key.get(key)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Holds `reservation` under `key`, replacing any earlier one.
    pub fn insert(&mut self, key: ReservationKey, mut reservation: Reservation) {
        self.remove(&key);
        self.next_seq += 1;
        reservation.seq = self.next_seq;
        self.by_expiry.insert(
            (reservation.expires_at.as_millisecond(), reservation.seq),
            key.clone(),
        );
        self.total[reservation.family] += reservation.totals;
        self.by_key.insert(key, reservation);
    }

    /// Settles or releases a reservation.
    pub fn remove(&mut self, key: &ReservationKey) -> Option<Reservation> {
        let reservation = self.by_key.remove(key)?;
        self.by_expiry
            .remove(&(reservation.expires_at.as_millisecond(), reservation.seq));
        let family = reservation.family;
        self.total[family] = self.total[family].since(&reservation.totals);
        Some(reservation)
    }

    /// Removes and returns every reservation that lapsed at or before `now`.
    pub fn take_expired(&mut self, now: Timestamp) -> Vec<(ReservationKey, Reservation)> {
        let now = now.as_millisecond();
        let mut expired = Vec::new();
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(reservation) = self.remove(&key) {
                expired.push((key, reservation));
            }
        }
        expired
    }

    /// The next lapse, so sweeps can skip users with nothing due.
    pub fn next_expiry(&self) -> Option<i64> {
        self.by_expiry.keys().next().map(|(at, _)| *at)
    }
}

/// Pending prompts count in every window: they are happening now. (One
/// reserved just before midnight still counts for a few minutes after it;
/// that errs on the side of the limit.)
impl UsageSource for Reservations {
    fn totals_since(&self, family: Option<ModelFamily>, _since: Timestamp) -> Totals {
        self.total.select(family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::ToSpan;

    fn key(device_id: i64, key: &str) -> ReservationKey {
        ReservationKey {
            device_id,
            key: key.to_owned(),
        }
    }

    fn reservation(family: ModelFamily, cost: u64, expires_at: Timestamp) -> Reservation {
        Reservation::new(
            family,
            "m".into(),
            None,
            cost,
            expires_at,
            expires_at,
            false,
        )
    }

    #[test]
    fn sums_follow_inserts_settles_and_expiry() {
        let now: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let mut all = Reservations::default();
        all.insert(
            key(1, "a"),
            reservation(ModelFamily::Opus, 10, now + 5.minutes()),
        );
        all.insert(
            key(1, "b"),
            reservation(ModelFamily::Opus, 10, now + 1.minute()),
        );
        all.insert(
            key(2, "a"),
            reservation(ModelFamily::Haiku, 1, now + 9.minutes()),
        );
        assert_eq!(all.totals_since(Some(ModelFamily::Opus), now).prompts, 2);
        assert_eq!(all.totals_since(None, now).credits, 21);

        // Replacing a key does not add a second prompt.
        all.insert(
            key(1, "a"),
            reservation(ModelFamily::Opus, 10, now + 6.minutes()),
        );
        assert_eq!(all.totals_since(None, now).prompts, 3);

        assert!(all.remove(&key(2, "a")).is_some());
        assert!(all.remove(&key(2, "a")).is_none());
        assert_eq!(all.totals_since(None, now).credits, 20);

        let expired = all.take_expired(now + 2.minutes());
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, key(1, "b"));
        assert_eq!(all.totals_since(None, now).prompts, 1);
        assert_eq!(
            all.next_expiry(),
            Some((now + 6.minutes()).as_millisecond())
        );
        assert_eq!(all.take_expired(now + 1.hour()).len(), 1);
        assert!(all.is_empty());
        assert_eq!(all.totals_since(None, now), Totals::default());
    }
}
