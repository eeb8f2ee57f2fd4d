//! Sharing each observed rise among the requests completed in it.
//!
//! Per window period, with `L` the utilization level (highest reading so far,
//! 0 at the period start) and `C` the predicted cost of the period's requests
//! completed so far:
//!
//! 1. Unattributed use: a stretch of readings `j → k` whose rise exceeds the
//!    cost of the requests completed in it by more than one quantum (two
//!    rounded readings are off by less than that together) plus
//!    [`RELATIVE_MARGIN`] of that cost is found in one pass: a CUSUM on
//!    `L − (1 + margin) × C`, the stretch going from its last minimum to its
//!    peak. Requests completed within [`HEADER_LAG`] before a reading may or
//!    may not be in it, so the test gives them the benefit of the doubt.
//! 2. Accounting is between anchors (see `Anchor`: the period start, and the
//!    middle of each interval in which the reading ticked up, where the true
//!    utilization is known to half a quantum's precision, better than any
//!    one reading). An excess stretch runs from the anchor before it where
//!    the unexplained use `level − cost` was lowest to the first anchor after
//!    it; its requests are charged their predicted cost and the rest of its
//!    rise is unattributed.
//! 3. Between those stretches, spans between anchors are merged into
//!    segments of at least [`MIN_SEGMENT_PREDICTED`] of predicted cost (from
//!    the requests only) and each segment's rise is shared among its requests
//!    in proportion to their cost; a request in the interval of a segment's
//!    end anchor gets half its share from either side. A segment with a rise
//!    and no request is unattributed. Sharing observed rises, rather than
//!    charging each request its predicted cost, keeps an error of the weights
//!    from moving use between people who worked at different times.
//! 4. Requests completed after the last reading (and before the reset) are
//!    `pending`: charged their predicted cost, not yet observed.

use std::collections::BTreeMap;
use std::ops::Range;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::{
    CostWeights, Observation, Period, Priced, QUANTUM, RequestCost, group_periods,
    priced_by_completion,
};

/// Relative tolerance on the predicted rise before a rise counts as
/// unattributed: covers the error of fitted weights (a few percent) and of
/// requests whose tokens Anthropic counts a little differently.
pub const RELATIVE_MARGIN: f64 = 0.15;
/// Requests completed this long before a reading may not be in it yet (the
/// reading is about when Anthropic admitted the request; device clocks differ).
pub const HEADER_LAG: SignedDuration = SignedDuration::from_secs(10);
/// Predicted cost a segment of spans is merged up to before its observed
/// rise is shared.
pub const MIN_SEGMENT_PREDICTED: f64 = 0.03;
/// Floating-point slack on the one-quantum tolerance (0.35 − 0.34 > 0.01).
const SLACK: f64 = 1e-9;

/// Use the requests cannot explain, for alerts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UnattributedInterval {
    /// A reading before the use (or the period start).
    pub start: Timestamp,
    /// A reading after it.
    pub end: Timestamp,
    /// Utilization not explained by ccgate's requests.
    pub amount: f64,
}

/// One person's use of a window period, in fractions of the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PersonShare {
    pub person: i64,
    /// Their share of the observed rises.
    pub attributed: f64,
    /// Predicted cost of their requests completed after the last reading.
    pub pending: f64,
    /// Requests counted (observed and pending).
    pub requests: u64,
}

impl PersonShare {
    /// Attributed plus pending: the best estimate of their use now.
    pub fn estimate(&self) -> f64 {
        self.attributed + self.pending
    }
}

/// One window period (between two resets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodAttribution {
    pub start: Timestamp,
    pub resets_at: Timestamp,
    pub observations: usize,
    pub last_observed_at: Timestamp,
    /// The highest utilization read: `attributed + unattributed`.
    pub observed: f64,
    pub attributed: f64,
    pub unattributed: f64,
    /// Predicted cost of the requests completed after the last reading.
    pub pending: f64,
    /// Everyone with a request in the period, by person id.
    pub people: Vec<PersonShare>,
    /// Where the unattributed use was seen; their amounts add up to `unattributed`.
    pub unattributed_intervals: Vec<UnattributedInterval>,
}

impl PeriodAttribution {
    pub fn person(&self, person: i64) -> Option<&PersonShare> {
        self.people
            .binary_search_by_key(&person, |share| share.person)
            .ok()
            .map(|index| &self.people[index])
    }

    /// Whether `at` falls in the period.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.resets_at
    }
}

/// The attribution of every period the readings cover, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribution {
    pub periods: Vec<PeriodAttribution>,
    /// Readings that were not a number, or had no reset and none to inherit.
    pub skipped_observations: usize,
}

impl Attribution {
    /// The period containing `now`, if any reading of it was given.
    pub fn current(&self, now: Timestamp) -> Option<&PeriodAttribution> {
        self.periods
            .iter()
            .rev()
            .find(|period| period.contains(now))
    }
}

/// Shares the observed utilization of one window (`window_len`: 5 hours or
/// 7 days) among the people whose requests completed in it, priced with
/// `weights` (from [`super::fit_weights`] on the same window: the test for
/// unattributed use compares rises with predicted costs, so it needs the
/// fitted scale). Input in any order. Cost: sorting the n readings and m
/// requests, O((n + m) log(n + m)), then O(n log m + m).
pub fn attribute(
    window_len: SignedDuration,
    observations: &[Observation],
    requests: &[RequestCost],
    weights: &CostWeights,
) -> Attribution {
    let grouped = group_periods(window_len, observations);
    let priced = priced_by_completion(requests, |r| weights.cost(r.family, &r.tokens));
    let mut prefix = Vec::with_capacity(priced.len() + 1);
    let mut running = 0.0;
    prefix.push(running);
    for request in &priced {
        running += request.cost;
        prefix.push(running);
    }
    let requests = Requests {
        priced: &priced,
        prefix: &prefix,
    };
    Attribution {
        periods: grouped
            .periods
            .iter()
            .map(|period| attribute_period(period, &requests))
            .collect(),
        skipped_observations: grouped.skipped,
    }
}

struct Requests<'a> {
    priced: &'a [Priced],
    /// `prefix[i]` = the cost of `priced[..i]`.
    prefix: &'a [f64],
}

/// One end of a span of a period: an anchor, or the last reading.
#[derive(Debug, Clone)]
struct Mark {
    level: f64,
    /// Predicted cost of the period's requests up to here.
    cost: f64,
    /// The requests of the interval the mark lies in, half on each side.
    halved: Range<usize>,
    /// Where the requests wholly after the mark begin.
    whole_after: usize,
    /// Where the requests wholly before the mark end.
    whole_before: usize,
    /// When a span starting here may have begun, and one ending here ended.
    from: Timestamp,
    until: Timestamp,
}

#[derive(Debug, Clone, Copy)]
enum Charge {
    /// A share of an observed rise: this factor times the request's cost.
    Observed(f64),
    /// Completed after the last reading: its predicted cost, pending.
    Pending,
    /// Only counted.
    Count,
}

/// Which requests a span from `first` to `last` charges, with their weight.
fn charged(first: &Mark, last: &Mark) -> [(Range<usize>, f64); 3] {
    [
        (first.halved.clone(), 0.5),
        (
            first.whole_after..last.whole_before.max(first.whole_after),
            1.0,
        ),
        (last.halved.clone(), 0.5),
    ]
}

fn attribute_period(period: &Period, requests: &Requests<'_>) -> PeriodAttribution {
    let points = &period.points;
    let last = points.len() - 1;
    let bounds = period.bounds(requests.priced);
    let base = requests.prefix[bounds.by_point[0]];
    let cost_until = |end: usize| requests.prefix[end] - base;
    let cost_by_point: Vec<f64> = bounds.by_point.iter().map(|&end| cost_until(end)).collect();

    // The anchors, then the last reading, as marks.
    let anchors = period.anchors();
    let mut marks: Vec<Mark> = anchors
        .iter()
        .map(|anchor| match anchor.interval {
            0 => Mark {
                level: 0.0,
                cost: 0.0,
                halved: bounds.by_point[0]..bounds.by_point[0],
                whole_after: bounds.by_point[0],
                whole_before: bounds.by_point[0],
                from: period.start,
                until: period.start,
            },
            k => Mark {
                level: anchor.level,
                cost: (cost_by_point[k - 1] + cost_by_point[k]) / 2.0,
                halved: bounds.interval(k),
                whole_after: bounds.by_point[k],
                whole_before: bounds.by_point[k - 1],
                from: points[k - 1].at,
                until: points[k].at,
            },
        })
        .collect();
    marks.push(Mark {
        level: points[last].level,
        cost: cost_by_point[last],
        halved: bounds.by_point[last]..bounds.by_point[last],
        whole_after: bounds.by_point[last],
        whole_before: bounds.by_point[last],
        from: points[last].at,
        until: points[last].at,
    });
    let end_mark = marks.len() - 1;

    // Excess is found on the readings themselves (two readings differ from
    // the truth by less than one quantum together), then accounted between
    // the anchors around it.
    let surely_by_point: Vec<f64> = points
        .iter()
        .enumerate()
        .map(|(k, point)| match k {
            0 => 0.0,
            _ => {
                let surely = point.at.saturating_sub(HEADER_LAG).unwrap_or(point.at);
                cost_until(Period::completed_by(requests.priced, &bounds, surely))
            }
        })
        .collect();
    let levels: Vec<f64> = points.iter().map(|point| point.level).collect();
    let unexplained = |mark: usize| marks[mark].level - marks[mark].cost;
    let mut stretches: Vec<(usize, usize)> = Vec::new();
    for (first, last) in find_excess(&levels, &cost_by_point, &surely_by_point) {
        // The last anchor at or before the first reading, the first one
        // after the last reading (or the last reading itself).
        let before = anchors.partition_point(|anchor| anchor.interval <= first) - 1;
        let inside = anchors.partition_point(|anchor| anchor.interval <= last);
        // Start where the unexplained use was lowest, the latest such anchor.
        let start = (before..inside)
            .rev()
            .min_by(|&a, &b| unexplained(a).total_cmp(&unexplained(b)))
            .unwrap_or(before);
        match stretches.last_mut() {
            Some(previous) if previous.1 > start => previous.1 = previous.1.max(inside),
            _ => stretches.push((start, inside)),
        }
    }

    let mut segments = Vec::new();
    let mut next = 0;
    for &(first, last) in &stretches {
        segments.extend(segment(next, first, &marks));
        next = last;
    }
    segments.extend(segment(next, end_mark, &marks));

    let mut shares = BTreeMap::<i64, PersonShare>::new();
    let mut charge = |range: Range<usize>, charge: Charge| {
        for request in &requests.priced[range] {
            let share = shares.entry(request.person).or_insert(PersonShare {
                person: request.person,
                attributed: 0.0,
                pending: 0.0,
                requests: 0,
            });
            match charge {
                Charge::Observed(factor) => share.attributed += factor * request.cost,
                Charge::Pending => {
                    share.pending += request.cost;
                    share.requests += 1;
                }
                Charge::Count => share.requests += 1,
            }
        }
    };
    let mut unattributed_intervals = Vec::new();
    let spans = stretches
        .iter()
        .map(|&span| (span, true))
        .chain(segments.iter().map(|&span| (span, false)));
    for ((first, last), excess) in spans {
        let (first, last) = (&marks[first], &marks[last]);
        let rise = last.level - first.level;
        let predicted = last.cost - first.cost;
        let (factor, unattributed) = if excess && rise > predicted {
            (1.0, rise - predicted)
        } else if predicted > 0.0 {
            (rise / predicted, 0.0)
        } else {
            (0.0, rise)
        };
        for (range, weight) in charged(first, last) {
            charge(range, Charge::Observed(weight * factor));
        }
        if unattributed > 0.0 {
            unattributed_intervals.push(UnattributedInterval {
                start: first.from,
                end: last.until,
                amount: unattributed,
            });
        }
    }
    charge(bounds.by_point[0]..bounds.by_point[last], Charge::Count);
    charge(bounds.pending(), Charge::Pending);
    unattributed_intervals.sort_by_key(|interval| interval.start);

    let people: Vec<PersonShare> = shares.into_values().collect();
    PeriodAttribution {
        start: period.start,
        resets_at: period.resets_at,
        observations: last,
        last_observed_at: points[last].at,
        observed: points[last].level,
        attributed: people.iter().fold(0.0, |sum, p| sum + p.attributed),
        unattributed: unattributed_intervals
            .iter()
            .fold(0.0, |sum, i| sum + i.amount),
        pending: people.iter().fold(0.0, |sum, p| sum + p.pending),
        people,
        unattributed_intervals,
    }
}

/// Stretches of readings `(first, last)` over which the rise exceeds the
/// requests' cost by more than one quantum plus the margin, in order and
/// disjoint. One pass: the lowest `level − (1 + margin) × at_least` so far is
/// where a stretch can start, the peak of `level − (1 + margin) × at_most`
/// above it where it ends (`at_most`: the cost completed by a reading,
/// `at_least`: by the reading less the header lag).
fn find_excess(levels: &[f64], at_most: &[f64], at_least: &[f64]) -> Vec<(usize, usize)> {
    let allowance = 1.0 + RELATIVE_MARGIN;
    let mut stretches = Vec::new();
    let mut lowest = (0.0, 0);
    let mut peak: Option<(f64, usize)> = None;
    for (k, &level) in levels.iter().enumerate().skip(1) {
        let excess = level - allowance * at_most[k] - lowest.0;
        if excess > QUANTUM + SLACK && peak.is_none_or(|(highest, _)| excess > highest) {
            peak = Some((excess, k));
        }
        let low = level - allowance * at_least[k];
        if low <= lowest.0 {
            if let Some((_, end)) = peak.take() {
                stretches.push((lowest.1, end));
            }
            lowest = (low, k);
        }
    }
    if let Some((_, end)) = peak {
        stretches.push((lowest.1, end));
    }
    stretches
}

/// Marks `from..=until` cut into segments of at least
/// [`MIN_SEGMENT_PREDICTED`]; a short remainder joins the segment before it.
fn segment(from: usize, until: usize, marks: &[Mark]) -> Vec<(usize, usize)> {
    let mut segments: Vec<(usize, usize)> = Vec::new();
    let mut first = from;
    for k in from + 1..=until {
        if marks[k].cost - marks[first].cost >= MIN_SEGMENT_PREDICTED {
            segments.push((first, k));
            first = k;
        }
    }
    if first < until {
        match segments.last_mut() {
            Some(previous) => previous.1 = until,
            None => segments.push((first, until)),
        }
    }
    segments
}
