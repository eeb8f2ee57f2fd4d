//! Usage totals and where they come from. The engine asks a [`UsageSource`]
//! for totals since an instant; the server answers from a [`UsageIndex`] held
//! in memory (prefix sums: a lookup costs two binary searches however long the
//! history), the proxy from its last [`UsageSnapshot`] plus its own ledger.

use std::ops::{Add, AddAssign, Index, IndexMut};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::ModelFamily;
use crate::rules::TokenKind;
use crate::share::{ShareWindow, WindowShare};
use crate::wire::TokenUsage;

/// Prompts, credits and tokens added up over some events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub prompts: u64,
    pub credits: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Totals {
    pub fn tokens(&self, kind: TokenKind) -> u64 {
        match kind {
            TokenKind::Input => self.input_tokens,
            TokenKind::Output => self.output_tokens,
            TokenKind::CacheCreation => self.cache_creation_input_tokens,
            TokenKind::CacheRead => self.cache_read_input_tokens,
            TokenKind::Total => self
                .input_tokens
                .saturating_add(self.output_tokens)
                .saturating_add(self.cache_creation_input_tokens)
                .saturating_add(self.cache_read_input_tokens),
        }
    }

    /// `self - earlier` for cumulative values, never below zero.
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            prompts: self.prompts.saturating_sub(earlier.prompts),
            credits: self.credits.saturating_sub(earlier.credits),
            input_tokens: self.input_tokens.saturating_sub(earlier.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(earlier.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .saturating_sub(earlier.cache_creation_input_tokens),
            cache_read_input_tokens: self
                .cache_read_input_tokens
                .saturating_sub(earlier.cache_read_input_tokens),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Totals::default()
    }

    /// The four token counters, as the API reports them.
    pub fn token_usage(&self) -> TokenUsage {
        TokenUsage::new(
            self.input_tokens,
            self.output_tokens,
            self.cache_creation_input_tokens,
            self.cache_read_input_tokens,
        )
    }
}

/// A request's tokens, with no prompt or credit.
impl From<TokenUsage> for Totals {
    fn from(usage: TokenUsage) -> Self {
        Totals {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            ..Totals::default()
        }
    }
}

impl Add for Totals {
    type Output = Totals;

    fn add(mut self, other: Totals) -> Totals {
        self += other;
        self
    }
}

impl AddAssign for Totals {
    fn add_assign(&mut self, other: Totals) {
        self.prompts = self.prompts.saturating_add(other.prompts);
        self.credits = self.credits.saturating_add(other.credits);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .saturating_add(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .saturating_add(other.cache_read_input_tokens);
    }
}

/// One value per model family, serialized as `{"opus":…,"sonnet":…,"haiku":…,"other":…}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerFamily<T> {
    pub opus: T,
    pub sonnet: T,
    pub haiku: T,
    pub other: T,
}

impl<T> Index<ModelFamily> for PerFamily<T> {
    type Output = T;

    fn index(&self, family: ModelFamily) -> &T {
        match family {
            ModelFamily::Opus => &self.opus,
            ModelFamily::Sonnet => &self.sonnet,
            ModelFamily::Haiku => &self.haiku,
            ModelFamily::Other => &self.other,
        }
    }
}

impl<T> IndexMut<ModelFamily> for PerFamily<T> {
    fn index_mut(&mut self, family: ModelFamily) -> &mut T {
        match family {
            ModelFamily::Opus => &mut self.opus,
            ModelFamily::Sonnet => &mut self.sonnet,
            ModelFamily::Haiku => &mut self.haiku,
            ModelFamily::Other => &mut self.other,
        }
    }
}

impl PerFamily<Totals> {
    pub fn sum(&self) -> Totals {
        self.opus + self.sonnet + self.haiku + self.other
    }

    /// One family's totals, or all of them added when `family` is `None`.
    pub fn select(&self, family: Option<ModelFamily>) -> Totals {
        family.map_or_else(|| self.sum(), |f| self[f])
    }
}

/// Anything that can tell how much was used since an instant.
pub trait UsageSource {
    /// Totals of the usage at or after `since`, of one family or of all.
    fn totals_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Totals;

    /// The time of the oldest usage at or after `since`, when known: it tells
    /// when a sliding window starts to free up.
    fn oldest_since(&self, _family: Option<ModelFamily>, _since: Timestamp) -> Option<Timestamp> {
        None
    }

    /// The person's share of one of the subscription's windows, when the
    /// server has estimated it.
    fn window_share(&self, _window: ShareWindow) -> Option<WindowShare> {
        None
    }
}

/// A source with the person's shares of the subscription's windows.
#[derive(Debug, Clone, Copy)]
pub struct WithShares<'a, S>(pub S, pub &'a [WindowShare]);

impl<S: UsageSource> UsageSource for WithShares<'_, S> {
    fn totals_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Totals {
        self.0.totals_since(family, since)
    }

    fn oldest_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Option<Timestamp> {
        self.0.oldest_since(family, since)
    }

    fn window_share(&self, window: ShareWindow) -> Option<WindowShare> {
        crate::share::find(self.1, window).or_else(|| self.0.window_share(window))
    }
}

/// Two sources added together (a snapshot and the events after it, say).
#[derive(Debug, Clone, Copy)]
pub struct Layered<A, B>(pub A, pub B);

impl<A: UsageSource, B: UsageSource> UsageSource for Layered<A, B> {
    fn totals_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Totals {
        self.0.totals_since(family, since) + self.1.totals_since(family, since)
    }

    fn oldest_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Option<Timestamp> {
        match (
            self.0.oldest_since(family, since),
            self.1.oldest_since(family, since),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn window_share(&self, window: ShareWindow) -> Option<WindowShare> {
        self.0
            .window_share(window)
            .or_else(|| self.1.window_share(window))
    }
}

/// Usage that is happening now and not yet recorded (prompts allowed but
/// not yet counted): it falls in every window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved(pub PerFamily<Totals>);

impl UsageSource for Reserved {
    fn totals_since(&self, family: Option<ModelFamily>, _since: Timestamp) -> Totals {
        self.0.select(family)
    }
}

/// No source at all counts nothing.
impl<S: UsageSource> UsageSource for Option<S> {
    fn totals_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Totals {
        self.as_ref()
            .map(|s| s.totals_since(family, since))
            .unwrap_or_default()
    }

    fn oldest_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Option<Timestamp> {
        self.as_ref().and_then(|s| s.oldest_since(family, since))
    }

    fn window_share(&self, window: ShareWindow) -> Option<WindowShare> {
        self.as_ref().and_then(|s| s.window_share(window))
    }
}

impl<S: UsageSource + ?Sized> UsageSource for &S {
    fn totals_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Totals {
        (**self).totals_since(family, since)
    }

    fn oldest_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Option<Timestamp> {
        (**self).oldest_since(family, since)
    }

    fn window_share(&self, window: ShareWindow) -> Option<WindowShare> {
        (**self).window_share(window)
    }
}

const MINUTE_MS: i64 = 60_000;

fn minute_floor(at: Timestamp) -> i64 {
    at.as_millisecond().div_euclid(MINUTE_MS) * MINUTE_MS
}

/// Usage of one family in minute buckets with running totals.
#[derive(Debug, Clone, Default)]
struct Series {
    /// Running total of everything pruned from the front.
    base: Totals,
    /// Bucket start (ms since the epoch, whole minutes), ascending.
    minutes: Vec<i64>,
    /// `running[i]` = `base` + all buckets up to and including `i`.
    running: Vec<Totals>,
}

impl Series {
    fn last(&self) -> Totals {
        self.running.last().copied().unwrap_or(self.base)
    }

    fn before(&self, position: usize) -> Totals {
        if position == 0 {
            self.base
        } else {
            self.running[position - 1]
        }
    }

    fn add(&mut self, minute: i64, totals: Totals) {
        let position = self.minutes.partition_point(|&m| m < minute);
        if self.minutes.get(position) == Some(&minute) {
            // Same bucket: it and every later running total grow.
            self.running[position..]
                .iter_mut()
                .for_each(|r| *r += totals);
            return;
        }
        let running = self.before(position) + totals;
        self.minutes.insert(position, minute);
        self.running.insert(position, running);
        self.running[position + 1..]
            .iter_mut()
            .for_each(|r| *r += totals);
    }

    fn since(&self, minute: i64) -> Totals {
        let position = self.minutes.partition_point(|&m| m < minute);
        self.last().since(&self.before(position))
    }

    fn oldest_since(&self, minute: i64) -> Option<i64> {
        let position = self.minutes.partition_point(|&m| m < minute);
        self.minutes.get(position).copied()
    }

    fn prune_before(&mut self, minute: i64) {
        let position = self.minutes.partition_point(|&m| m < minute);
        if position > 0 {
            self.base = self.running[position - 1];
            self.minutes.drain(..position);
            self.running.drain(..position);
        }
    }
}

/// An in-memory index of usage by family and minute.
///
/// Appending in time order is O(1); an event older than the newest (an
/// offline device replaying) is inserted in place. Lookups round `since` down
/// to the whole minute, which can only count a little more, never less.
#[derive(Debug, Clone, Default)]
pub struct UsageIndex {
    series: PerFamily<Series>,
}

impl UsageIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, at: Timestamp, family: ModelFamily, totals: Totals) {
        if !totals.is_zero() {
            self.series[family].add(minute_floor(at), totals);
        }
    }

    /// Forgets buckets older than `cutoff`; lookups before it are no longer exact.
    pub fn prune_before(&mut self, cutoff: Timestamp) {
        let minute = minute_floor(cutoff);
        for family in ModelFamily::ALL {
            self.series[family].prune_before(minute);
        }
    }

    /// The number of minute buckets held, for memory accounting.
    pub fn bucket_count(&self) -> usize {
        ModelFamily::ALL
            .iter()
            .map(|&f| self.series[f].minutes.len())
            .sum()
    }

    pub fn per_family_since(&self, since: Timestamp) -> PerFamily<Totals> {
        let minute = minute_floor(since);
        let mut totals = PerFamily::<Totals>::default();
        for family in ModelFamily::ALL {
            totals[family] = self.series[family].since(minute);
        }
        totals
    }
}

impl UsageSource for UsageIndex {
    fn totals_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Totals {
        let minute = minute_floor(since);
        match family {
            Some(f) => self.series[f].since(minute),
            None => ModelFamily::ALL
                .iter()
                .map(|&f| self.series[f].since(minute))
                .fold(Totals::default(), Add::add),
        }
    }

    fn oldest_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Option<Timestamp> {
        let minute = minute_floor(since);
        let families: &[ModelFamily] = match &family {
            Some(f) => std::slice::from_ref(f),
            None => &ModelFamily::ALL,
        };
        families
            .iter()
            .filter_map(|&f| self.series[f].oldest_since(minute))
            .min()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
    }
}

/// Totals since one window start, by family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotWindow {
    pub since: Timestamp,
    pub usage: PerFamily<Totals>,
}

/// What the server knew of a user's usage at `as_of`, for every window start
/// the user's rules need. The proxy decides offline from it plus its own
/// events recorded after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSnapshot {
    pub as_of: Timestamp,
    pub windows: Vec<SnapshotWindow>,
    /// The person's estimated shares of the subscription's windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<WindowShare>,
}

impl UsageSnapshot {
    pub fn capture(
        source: &impl UsageSourceByFamily,
        starts: impl IntoIterator<Item = Timestamp>,
        as_of: Timestamp,
    ) -> Self {
        let mut starts: Vec<Timestamp> = starts.into_iter().collect();
        starts.sort();
        starts.dedup();
        Self {
            as_of,
            windows: starts
                .into_iter()
                .map(|since| SnapshotWindow {
                    since,
                    usage: source.per_family_since(since),
                })
                .collect(),
            shares: Vec::new(),
        }
    }

    /// The window that best covers `since`: the latest start not after it.
    /// A sliding window's start moves on after `as_of`, so the snapshot then
    /// counts a little too much, never too little.
    fn covering(&self, since: Timestamp) -> Option<&SnapshotWindow> {
        self.windows
            .iter()
            .rev()
            .find(|w| w.since <= since)
            .or_else(|| self.windows.first())
    }
}

/// Sources that can give all families at once (cheaper for snapshots).
pub trait UsageSourceByFamily {
    fn per_family_since(&self, since: Timestamp) -> PerFamily<Totals>;
}

impl UsageSourceByFamily for UsageIndex {
    fn per_family_since(&self, since: Timestamp) -> PerFamily<Totals> {
        UsageIndex::per_family_since(self, since)
    }
}

impl UsageSource for UsageSnapshot {
    fn totals_since(&self, family: Option<ModelFamily>, since: Timestamp) -> Totals {
        if since >= self.as_of {
            return Totals::default();
        }
        self.covering(since)
            .map(|w| w.usage.select(family))
            .unwrap_or_default()
    }

    fn window_share(&self, window: ShareWindow) -> Option<WindowShare> {
        crate::share::find(&self.shares, window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::ToSpan;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn prompts(n: u64) -> Totals {
        Totals {
            prompts: n,
            credits: n * 10,
            input_tokens: n * 100,
            ..Totals::default()
        }
    }

    #[test]
    fn index_sums_since_an_instant_by_family() {
        let mut index = UsageIndex::new();
        index.add(at("2026-03-01T10:00:00Z"), ModelFamily::Opus, prompts(1));
        index.add(at("2026-03-01T11:00:00Z"), ModelFamily::Opus, prompts(2));
        index.add(at("2026-03-01T11:00:30Z"), ModelFamily::Haiku, prompts(4));
        index.add(at("2026-03-01T12:00:00Z"), ModelFamily::Opus, prompts(8));

        let since = at("2026-03-01T11:00:00Z");
        assert_eq!(
            index.totals_since(Some(ModelFamily::Opus), since).prompts,
            10
        );
        assert_eq!(
            index.totals_since(Some(ModelFamily::Haiku), since).prompts,
            4
        );
        assert_eq!(index.totals_since(None, since).prompts, 14);
        assert_eq!(index.totals_since(None, since).input_tokens, 1400);
        assert_eq!(
            index.totals_since(None, at("2026-03-01T13:00:00Z")),
            Totals::default()
        );
        assert_eq!(
            index.oldest_since(None, at("2026-03-01T10:30:00Z")),
            Some(at("2026-03-01T11:00:00Z"))
        );
    }

    #[test]
    fn late_events_are_inserted_in_place() {
        let mut index = UsageIndex::new();
        index.add(at("2026-03-01T12:00:00Z"), ModelFamily::Sonnet, prompts(1));
        index.add(at("2026-03-01T09:00:00Z"), ModelFamily::Sonnet, prompts(2));
        index.add(at("2026-03-01T12:00:10Z"), ModelFamily::Sonnet, prompts(4));
        index.add(at("2026-03-01T10:00:00Z"), ModelFamily::Sonnet, prompts(8));
        let family = Some(ModelFamily::Sonnet);
        assert_eq!(
            index
                .totals_since(family, at("2026-03-01T00:00:00Z"))
                .prompts,
            15
        );
        assert_eq!(
            index
                .totals_since(family, at("2026-03-01T09:30:00Z"))
                .prompts,
            13
        );
        assert_eq!(
            index
                .totals_since(family, at("2026-03-01T11:00:00Z"))
                .prompts,
            5
        );
        assert_eq!(
            index.bucket_count(),
            3,
            "12:00:00 and 12:00:10 share a minute"
        );
    }

    #[test]
    fn lookups_round_down_to_the_minute_so_they_never_undercount() {
        let mut index = UsageIndex::new();
        index.add(at("2026-03-01T10:00:50Z"), ModelFamily::Opus, prompts(1));
        assert_eq!(
            index.totals_since(None, at("2026-03-01T10:00:55Z")).prompts,
            1
        );
    }

    #[test]
    fn pruning_keeps_later_sums_exact() {
        let mut index = UsageIndex::new();
        let start = at("2026-03-01T00:00:00Z");
        for hour in 0..48 {
            index.add(start + hour.hours(), ModelFamily::Opus, prompts(1));
        }
        index.prune_before(start + 24.hours());
        assert_eq!(index.bucket_count(), 24);
        assert_eq!(index.totals_since(None, start + 30.hours()).prompts, 18);
        index.add(start + 50.hours(), ModelFamily::Opus, prompts(1));
        assert_eq!(index.totals_since(None, start + 30.hours()).prompts, 19);
    }

    #[test]
    fn snapshot_answers_from_the_covering_window_and_nothing_after_as_of() {
        let mut index = UsageIndex::new();
        index.add(at("2026-03-01T01:00:00Z"), ModelFamily::Opus, prompts(1));
        index.add(at("2026-03-01T05:00:00Z"), ModelFamily::Haiku, prompts(2));
        let day = at("2026-03-01T00:00:00Z");
        let recent = at("2026-03-01T04:00:00Z");
        let snapshot = UsageSnapshot::capture(&index, [recent, day], at("2026-03-01T06:00:00Z"));
        assert_eq!(snapshot.totals_since(None, day).prompts, 3);
        assert_eq!(snapshot.totals_since(None, recent).prompts, 2);
        // A sliding window that moved on is answered by the wider window: too much, never too little.
        assert_eq!(
            snapshot
                .totals_since(None, at("2026-03-01T04:30:00Z"))
                .prompts,
            2
        );
        // After the snapshot was taken it knows nothing.
        assert_eq!(
            snapshot
                .totals_since(None, at("2026-03-02T00:00:00Z"))
                .prompts,
            0
        );

        let round_trip: UsageSnapshot =
            serde_json::from_str(&serde_json::to_string(&snapshot).unwrap()).unwrap();
        assert_eq!(round_trip, snapshot);
    }

    #[test]
    fn layered_sources_add_up() {
        let mut old = UsageIndex::new();
        old.add(at("2026-03-01T01:00:00Z"), ModelFamily::Opus, prompts(1));
        let mut new = UsageIndex::new();
        new.add(at("2026-03-01T02:00:00Z"), ModelFamily::Opus, prompts(2));
        let both = Layered(&old, &new);
        let since = at("2026-03-01T00:00:00Z");
        assert_eq!(both.totals_since(Some(ModelFamily::Opus), since).prompts, 3);
        assert_eq!(
            both.oldest_since(None, since),
            Some(at("2026-03-01T01:00:00Z"))
        );
    }
}
