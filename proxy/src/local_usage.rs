//! The proxy's own view of its user's usage, for deciding without the
//! server: the last snapshot the server sent plus every event this proxy
//! recorded after the snapshot was taken.

use ccgate_quota::{Layered, PerFamily, Reserved, Totals, UsageIndex, UsageSnapshot, UsageSource};

use jiff::Timestamp;
use uuid::Uuid;

use crate::ledger::{Metered, StoredUsage};

#[derive(Debug, Default)]
pub struct LocalUsage {
    snapshot: Option<UsageSnapshot>,
    /// The last ledger sequence number the snapshot already includes.
    included_seq: i64,
    /// Events after `included_seq`, in order.
    recent: Vec<StoredUsage>,
    /// Events counted here before the ledger gave them a sequence number
    /// (or that it could not store: disk full), until acknowledged.
    unsaved: Vec<(Uuid, Timestamp, Metered)>,
    index: UsageIndex,
}

impl LocalUsage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an event the snapshot does not include yet.
    pub fn add(&mut self, stored: StoredUsage) {
        if stored.seq <= self.included_seq {
            return;
        }
        self.index
            .add(stored.at, stored.metered.family, stored.metered.totals);
        self.recent.push(stored);
    }

    /// The person's shares of the subscription's windows, as last estimated
    /// by the server.
    pub fn window_shares(&self) -> Vec<ccgate_quota::WindowShare> {
        self.snapshot
            .as_ref()
            .map(|snapshot| snapshot.shares.clone())
            .unwrap_or_default()
    }

    /// Takes a newer snapshot that includes every event up to `included_seq`.
    pub fn set_snapshot(&mut self, snapshot: UsageSnapshot, included_seq: i64) {
        if self
            .snapshot
            .as_ref()
            .is_some_and(|old| old.as_of > snapshot.as_of && self.included_seq >= included_seq)
        {
            return;
        }
        self.snapshot = Some(snapshot);
        self.included_seq = self.included_seq.max(included_seq);
        let included = self.included_seq;
        self.recent.retain(|event| event.seq > included);
        self.rebuild_index();
    }

    /// Counts an event before it is in the ledger, so that no decision
    /// sees it neither reserved nor used.
    pub fn add_unsaved(&mut self, id: Uuid, at: Timestamp, metered: Metered) {
        self.index.add(at, metered.family, metered.totals);
        self.unsaved.push((id, at, metered));
    }

    /// The ledger stored event `id` as `seq`: from now on the snapshot that
    /// includes `seq` replaces it. Its usage is already in the index.
    pub fn saved(&mut self, id: Uuid, seq: i64) {
        let Some(position) = self.unsaved.iter().position(|(u, _, _)| *u == id) else {
            return;
        };
        let (_, at, metered) = self.unsaved.remove(position);
        if seq > self.included_seq {
            self.recent.push(StoredUsage { seq, at, metered });
        } else {
            self.rebuild_index();
        }
    }

    /// Drops in-memory events the server acknowledged (the snapshot that
    /// came with the acknowledgement counts them).
    pub fn forget_unsaved(&mut self, ids: &[Uuid]) {
        let before = self.unsaved.len();
        self.unsaved.retain(|(id, _, _)| !ids.contains(id));
        if self.unsaved.len() != before {
            self.rebuild_index();
        }
    }

    fn rebuild_index(&mut self) {
        self.index = UsageIndex::new();
        for event in &self.recent {
            self.index
                .add(event.at, event.metered.family, event.metered.totals);
        }
        for (_, at, metered) in &self.unsaved {
            self.index.add(*at, metered.family, metered.totals);
        }
    }

    pub fn included_seq(&self) -> i64 {
        self.included_seq
    }

    pub fn snapshot(&self) -> Option<&UsageSnapshot> {
        self.snapshot.as_ref()
    }

    /// Everything known: the snapshot, later events and `reserved` prompts.
    pub fn source(&self, reserved: PerFamily<Totals>) -> impl UsageSource + '_ {
        Layered(
            Layered(self.snapshot.as_ref(), &self.index),
            Reserved(reserved),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccgate_quota::ModelFamily;
    use ccgate_quota::usage::SnapshotWindow;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn prompt(seq: i64, when: &str) -> StoredUsage {
        StoredUsage {
            seq,
            at: at(when),
            metered: Metered {
                family: ModelFamily::Opus,
                totals: Totals {
                    prompts: 1,
                    ..Totals::default()
                },
            },
        }
    }

    #[test]
    fn snapshot_plus_later_events_without_double_counting() {
        let day = at("2026-03-01T00:00:00Z");
        let mut local = LocalUsage::new();
        local.add(prompt(1, "2026-03-01T09:00:00Z"));
        local.add(prompt(2, "2026-03-01T10:00:00Z"));
        let opus = Some(ModelFamily::Opus);
        assert_eq!(
            local
                .source(PerFamily::default())
                .totals_since(opus, day)
                .prompts,
            2
        );

        // The server acknowledged event 1 and sent a snapshot counting 5 prompts.
        let mut usage = PerFamily::<Totals>::default();
        usage.opus.prompts = 5;
        let snapshot = UsageSnapshot {
            as_of: at("2026-03-01T10:30:00Z"),
            windows: vec![SnapshotWindow { since: day, usage }],
            shares: Vec::new(),
        };
        local.set_snapshot(snapshot, 1);
        assert_eq!(
            local
                .source(PerFamily::default())
                .totals_since(opus, day)
                .prompts,
            6
        );

        let mut reserved = PerFamily::<Totals>::default();
        reserved.opus.prompts = 1;
        assert_eq!(local.source(reserved).totals_since(opus, day).prompts, 7);
        // Events the snapshot includes are ignored if they arrive late.
        local.add(prompt(1, "2026-03-01T09:00:00Z"));
        assert_eq!(
            local
                .source(PerFamily::default())
                .totals_since(opus, day)
                .prompts,
            6
        );
    }

    #[test]
    fn an_event_is_counted_once_from_before_its_write_to_after_its_acknowledgement() {
        let day = at("2026-03-01T00:00:00Z");
        let opus = Some(ModelFamily::Opus);
        let mut local = LocalUsage::new();
        let event = prompt(7, "2026-03-01T09:00:00Z");
        let id = Uuid::now_v7();
        let count = |local: &LocalUsage| {
            local
                .source(PerFamily::default())
                .totals_since(opus, day)
                .prompts
        };
        local.add_unsaved(id, event.at, event.metered);
        assert_eq!(count(&local), 1, "counted before the ledger write");
        local.saved(id, 7);
        assert_eq!(count(&local), 1, "still once when it has a sequence number");
        let mut usage = PerFamily::<Totals>::default();
        usage.opus.prompts = 1;
        let snapshot = UsageSnapshot {
            as_of: at("2026-03-01T10:00:00Z"),
            windows: vec![SnapshotWindow { since: day, usage }],
            shares: Vec::new(),
        };
        local.set_snapshot(snapshot, 7);
        assert_eq!(
            count(&local),
            1,
            "and once when the server's snapshot includes it"
        );
    }
}
