//! Who used the subscription. Anthropic reports the whole subscription's
//! utilization of a window (`anthropic-ratelimit-unified-5h-utilization`,
//! `-7d-utilization`, with `-reset`) now and then; ccgate knows every request
//! that went through its devices with its tokens. This module fits what a
//! token costs in utilization ([`fit_weights`]) and shares each observed rise
//! among the people whose requests completed in it ([`attribute`]); a rise
//! the requests cannot explain is reported as unattributed (use outside
//! ccgate). Pure: no I/O, no clock. See `docs/attribution.md`.
//!
//! A window's utilization is read as `Σ weight(family, kind) × tokens` over
//! the requests completed since the window period started, plus use outside
//! ccgate. Weights differ between the 5-hour and the 7-day window: fit and
//! attribute each window on its own observations.

mod fit;
mod split;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use std::ops::Range;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::model::ModelFamily;
use crate::rules::TokenKind;
use crate::usage::{PerFamily, Totals};

pub use fit::{Fit, FitDiagnostics, MIN_CHUNK_RISE, PRIOR_SPREAD, TRIM_SIGMAS, fit_weights};
pub use split::{
    Attribution, HEADER_LAG, MIN_SEGMENT_PREDICTED, PeriodAttribution, PersonShare,
    RELATIVE_MARGIN, UnattributedInterval, attribute,
};

/// The precision Anthropic reports utilization with (two decimals).
pub const QUANTUM: f64 = 0.01;

/// One reading of a window's utilization, from a reply's headers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// When the headers arrived (about when Anthropic admitted the request):
    /// the reading covers the requests completed before it.
    pub at: Timestamp,
    /// The fraction of the window used, 0..1 (more when over the limit).
    pub utilization: f64,
    /// When the window period ends and utilization starts again from 0.
    #[serde(default)]
    pub resets_at: Option<Timestamp>,
}

/// One request that completed through ccgate, with its real token usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCost {
    /// When the request completed.
    pub at: Timestamp,
    pub person: i64,
    pub family: ModelFamily,
    /// Only the four token counters are read.
    pub tokens: Totals,
}

/// What one token of each kind costs, in utilization (fraction of the window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenWeights {
    pub input: f64,
    pub output: f64,
    pub cache_creation: f64,
    pub cache_read: f64,
}

/// The four token counters a request has (not `Total`).
pub const TOKEN_KINDS: [TokenKind; 4] = [
    TokenKind::Input,
    TokenKind::Output,
    TokenKind::CacheCreation,
    TokenKind::CacheRead,
];

impl TokenWeights {
    /// The weight of one kind; `None` for [`TokenKind::Total`], which is no
    /// kind of its own.
    pub fn per_token(&self, kind: TokenKind) -> Option<f64> {
        match kind {
            TokenKind::Input => Some(self.input),
            TokenKind::Output => Some(self.output),
            TokenKind::CacheCreation => Some(self.cache_creation),
            TokenKind::CacheRead => Some(self.cache_read),
            TokenKind::Total => None,
        }
    }

    /// Utilization the tokens cost.
    pub fn cost(&self, tokens: &Totals) -> f64 {
        TOKEN_KINDS
            .iter()
            .map(|&kind| self.per_token(kind).unwrap_or(0.0) * tokens.tokens(kind) as f64)
            .sum()
    }

    /// Every weight times `factor`.
    pub fn scaled(&self, factor: f64) -> TokenWeights {
        TokenWeights {
            input: self.input * factor,
            output: self.output * factor,
            cache_creation: self.cache_creation * factor,
            cache_read: self.cache_read * factor,
        }
    }
}

/// Token weights for every model family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CostWeights {
    pub families: PerFamily<TokenWeights>,
}

impl CostWeights {
    /// The prior's placeholder scale: 1 % of the window per dollar at list
    /// price. Only its ratios matter once [`fit_weights`] has seen any data.
    pub const PRIOR_UTILIZATION_PER_DOLLAR: f64 = 0.01;

    /// Anthropic's list prices in dollars per token (per million: Opus
    /// 15/75/18.75/1.50, Sonnet 3/15/3.75/0.30, Haiku 1/5/1.25/0.10 for input,
    /// output, cache write, cache read); unknown families are priced as Sonnet.
    pub fn list_prices(family: ModelFamily) -> TokenWeights {
        let per_million = match family {
            ModelFamily::Opus => [15.0, 75.0, 18.75, 1.5],
            ModelFamily::Sonnet | ModelFamily::Other => [3.0, 15.0, 3.75, 0.30],
            ModelFamily::Haiku => [1.0, 5.0, 1.25, 0.10],
        };
        TokenWeights {
            input: per_million[0] / 1e6,
            output: per_million[1] / 1e6,
            cache_creation: per_million[2] / 1e6,
            cache_read: per_million[3] / 1e6,
        }
    }

    /// List-price ratios times one placeholder scale
    /// ([`Self::PRIOR_UTILIZATION_PER_DOLLAR`]).
    pub fn prior() -> Self {
        let mut families = PerFamily::<TokenWeights>::default();
        for family in ModelFamily::ALL {
            families[family] = Self::list_prices(family).scaled(Self::PRIOR_UTILIZATION_PER_DOLLAR);
        }
        Self { families }
    }

    pub fn family(&self, family: ModelFamily) -> &TokenWeights {
        &self.families[family]
    }

    /// Utilization a request of `family` with these tokens costs.
    pub fn cost(&self, family: ModelFamily, tokens: &Totals) -> f64 {
        self.families[family].cost(tokens)
    }

    /// Each family's weights times its factor.
    pub fn scaled(&self, factors: &PerFamily<f64>) -> Self {
        let mut families = self.families;
        for family in ModelFamily::ALL {
            families[family] = families[family].scaled(factors[family]);
        }
        Self { families }
    }
}

/// A request reduced to what the algorithms need, sorted by completion.
#[derive(Debug, Clone, Copy)]
struct Priced {
    at: Timestamp,
    person: i64,
    family: ModelFamily,
    cost: f64,
}

/// Prices every request and sorts them by completion. The order is total
/// over what is used, so the result does not depend on the input order.
fn priced_by_completion(
    requests: &[RequestCost],
    price: impl Fn(&RequestCost) -> f64,
) -> Vec<Priced> {
    let mut priced: Vec<Priced> = requests
        .iter()
        .map(|request| Priced {
            at: request.at,
            person: request.person,
            family: request.family,
            cost: price(request).max(0.0),
        })
        .filter(|request| request.cost.is_finite())
        .collect();
    priced.sort_by(|a, b| {
        (a.at, a.person, a.family)
            .cmp(&(b.at, b.person, b.family))
            .then(a.cost.total_cmp(&b.cost))
    });
    priced
}

/// One reading inside a window period: its time and the utilization level,
/// which is the highest reading so far (a fall without a reset is noise).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    at: Timestamp,
    level: f64,
}

/// One window period (the readings that share a reset), with the implicit
/// reading of 0 at its start as `points[0]`. Interval `k` goes from
/// `points[k - 1]` to `points[k]`.
#[derive(Debug, Clone, PartialEq)]
struct Period {
    start: Timestamp,
    resets_at: Timestamp,
    points: Vec<Point>,
}

/// Where a period's requests fall among its readings (indices into the
/// requests sorted by completion).
#[derive(Debug, Clone)]
struct Bounds {
    /// `by_point[k]`: the end of the requests completed by `points[k]`;
    /// `by_point[0]` is where the period's requests begin, so interval `k`
    /// holds `by_point[k - 1]..by_point[k]`.
    by_point: Vec<usize>,
    /// The end of the requests completed before the reset.
    before_reset: usize,
}

impl Bounds {
    fn interval(&self, k: usize) -> Range<usize> {
        self.by_point[k - 1]..self.by_point[k]
    }

    /// The requests completed after the last reading, before the reset.
    fn pending(&self) -> Range<usize> {
        let last = self.by_point[self.by_point.len() - 1];
        last..self.before_reset.max(last)
    }
}

/// A place where the true utilization is known better than one reading
/// tells: the period start (exactly 0), and every interval in which the
/// rounded reading ticked up. A reading of `a` then `b` means the true
/// utilization crossed the rounding thresholds `a + q/2 … b − q/2` in
/// between; the anchor puts their middle, `(a + b) / 2`, at the middle of the
/// interval's predicted cost. Rises between anchors carry no rounding error
/// of their own, only the position of the crossing within its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Anchor {
    /// 0 for the period start, else the interval it lies in.
    interval: usize,
    level: f64,
}

impl Period {
    fn bounds(&self, requests: &[Priced]) -> Bounds {
        let first = requests.partition_point(|r| r.at < self.start);
        let before_reset = requests
            .partition_point(|r| r.at < self.resets_at)
            .max(first);
        let mut by_point = Vec::with_capacity(self.points.len());
        by_point.push(first);
        for point in &self.points[1..] {
            let end = requests.partition_point(|r| r.at <= point.at);
            let previous = by_point[by_point.len() - 1];
            by_point.push(end.clamp(previous, before_reset.max(previous)));
        }
        Bounds {
            by_point,
            before_reset,
        }
    }

    /// The end of the period's requests completed by `at`, clamped to `bounds`.
    fn completed_by(requests: &[Priced], bounds: &Bounds, at: Timestamp) -> usize {
        requests
            .partition_point(|r| r.at <= at)
            .clamp(bounds.by_point[0], bounds.before_reset)
    }

    fn anchors(&self) -> Vec<Anchor> {
        let mut anchors = vec![Anchor {
            interval: 0,
            level: 0.0,
        }];
        for k in 1..self.points.len() {
            let (before, after) = (self.points[k - 1].level, self.points[k].level);
            if after > before {
                anchors.push(Anchor {
                    interval: k,
                    level: (before + after) / 2.0,
                });
            }
        }
        anchors
    }
}

/// Observations grouped into window periods, oldest first.
#[derive(Debug, Clone, PartialEq)]
struct Periods {
    periods: Vec<Period>,
    /// Readings that were not a number, or had no reset and none to inherit.
    skipped: usize,
}

/// Groups readings into periods. Readings whose `resets_at` differ by less
/// than half a window are one period (a new period can only begin after the
/// old one reset, so its reset is at least a window later); the period starts
/// a window before its reset, and never before the previous period's reset.
/// A reading without a reset takes the one of the reading before it, if that
/// period has not ended yet.
fn group_periods(window_len: SignedDuration, observations: &[Observation]) -> Periods {
    let mut readings: Vec<Observation> = observations
        .iter()
        .filter(|o| o.utilization.is_finite())
        .copied()
        .collect();
    let mut skipped = observations.len() - readings.len();
    readings.sort_by(|a, b| {
        a.at.cmp(&b.at)
            .then(a.utilization.total_cmp(&b.utilization))
            .then(a.resets_at.cmp(&b.resets_at))
    });

    let mut last_reset: Option<Timestamp> = None;
    let mut placed: Vec<(Timestamp, Timestamp, f64)> = Vec::with_capacity(readings.len());
    for reading in &readings {
        let resets_at = match reading.resets_at {
            Some(resets_at) => Some(resets_at),
            None => last_reset.filter(|&r| reading.at < r),
        };
        match resets_at {
            Some(resets_at) => {
                last_reset = Some(resets_at);
                placed.push((resets_at, reading.at, reading.utilization.max(0.0)));
            }
            None => skipped += 1,
        }
    }
    placed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2)));

    let half_window = window_len.abs() / 2;
    let mut periods: Vec<Period> = Vec::new();
    let mut index = 0;
    while index < placed.len() {
        let resets_at = placed[index].0;
        let end = index
            + placed[index..]
                .partition_point(|p| p.0.duration_since(resets_at) < half_window)
                .max(1);
        let mut members: Vec<(Timestamp, f64)> =
            placed[index..end].iter().map(|p| (p.1, p.2)).collect();
        members.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));

        let window_start = resets_at
            .saturating_sub(window_len.abs())
            .unwrap_or(Timestamp::MIN);
        let start = periods.last().map_or(window_start, |previous| {
            window_start.max(previous.resets_at)
        });
        let mut points = Vec::with_capacity(members.len() + 1);
        points.push(Point {
            at: start,
            level: 0.0,
        });
        let mut level: f64 = 0.0;
        for (at, utilization) in members {
            level = level.max(utilization);
            points.push(Point {
                at: at.max(start),
                level,
            });
        }
        periods.push(Period {
            start,
            resets_at,
            points,
        });
        index = end;
    }
    Periods { periods, skipped }
}
