//! Fitting the cost weights from the readings themselves.
//!
//! The price ratios between token kinds stay as in the prior; one factor per
//! family is fitted by non-negative least squares of the observed rises
//! against the prior-priced tokens of the requests completed in them:
//!
//! 1. Each period's anchors (its start at 0, and the middle of every
//!    interval in which the rounded reading ticked up, where the true
//!    utilization crossed a known threshold) cut it into spans whose rise is
//!    free of rounding error. Spans are merged into chunks of about
//!    [`MIN_CHUNK_RISE`] of predicted rise, chosen from the requests only
//!    (never from the readings).
//! 2. A first fit on every chunk, then chunks that rose more than fitted by
//!    over [`TRIM_SIGMAS`] robust standard deviations (and over one quantum)
//!    are left out and the rest refitted, until the set is stable: use outside
//!    ccgate shows as a large positive residual in the chunk it happened in.
//!    Only positive residuals are trimmed: nothing but noise makes a rise
//!    smaller than its requests, while a family whose factor differs from
//!    the others' shows residuals of both signs until it is fitted.
//! 3. Each family's factor is pulled toward the pooled factor (one factor for
//!    all families, fitted on the same chunks) by a ridge: the posterior mode
//!    for a prior belief that a family's factor is within [`PRIOR_SPREAD`] of
//!    the pooled one, given the chunks' residual noise. A family with little
//!    data follows the others; with plenty (or noise-free data) the pull
//!    vanishes.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use super::{
    Anchor, CostWeights, Observation, QUANTUM, RequestCost, group_periods, priced_by_completion,
};
use crate::model::ModelFamily;
use crate::usage::PerFamily;

/// Predicted rise (at the pilot factor) a chunk of spans is merged up to.
pub const MIN_CHUNK_RISE: f64 = 0.02;
/// Chunks with a residual beyond this many robust standard deviations are trimmed.
pub const TRIM_SIGMAS: f64 = 3.0;
/// How far (relative standard deviation) a family's factor is believed to
/// be from the pooled one before seeing data.
pub const PRIOR_SPREAD: f64 = 0.3;
/// Floor on the residual noise the ridge is scaled with (0.01 point).
const MIN_NOISE: f64 = 1e-4;
const MAX_ITERATIONS: usize = 20;
const FAMILIES: usize = ModelFamily::ALL.len();

/// Fitted weights with what they rest on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub weights: CostWeights,
    /// Each family's factor on the prior's weights.
    pub scales: PerFamily<f64>,
    pub diagnostics: FitDiagnostics,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitDiagnostics {
    pub periods: usize,
    /// Intervals between consecutive readings of one period.
    pub intervals: usize,
    /// Intervals in which the reading ticked up (the anchors of the fit).
    pub ticks: usize,
    /// Chunks of intervals the fit works on.
    pub chunks: usize,
    /// Chunks left after trimming the outliers.
    pub chunks_used: usize,
    pub iterations: usize,
    /// The one factor that fits all families together.
    pub pooled_scale: f64,
    /// Root mean square of the residual rise over the chunks used, in utilization.
    pub residual_rms: f64,
    /// Requests of each family in the chunks used.
    pub samples: PerFamily<u64>,
    /// How much each family's factor rests on its own data rather than on
    /// the pull toward the pooled factor: 0 (none) to 1.
    pub evidence: PerFamily<f64>,
    /// Readings that could not be placed in a period.
    pub skipped_observations: usize,
}

/// Predicted (prior-priced, per family) and observed rise of some intervals.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    priced: [f64; FAMILIES],
    counts: [u64; FAMILIES],
    rise: f64,
}

impl Sample {
    fn predicted(&self) -> f64 {
        self.priced.iter().sum()
    }

    fn fitted(&self, scales: &[f64; FAMILIES]) -> f64 {
        self.priced.iter().zip(scales).map(|(x, s)| x * s).sum()
    }

    /// `self − earlier` for cumulative samples.
    fn minus(&self, earlier: &Sample) -> Sample {
        let mut difference = *self;
        for f in 0..FAMILIES {
            difference.priced[f] -= earlier.priced[f];
            difference.counts[f] = difference.counts[f].saturating_sub(earlier.counts[f]);
        }
        difference.rise -= earlier.rise;
        difference
    }

    /// Halfway between two cumulative samples (priced tokens only).
    fn midpoint(&self, later: &Sample) -> Sample {
        let mut middle = *self;
        for f in 0..FAMILIES {
            middle.priced[f] = (self.priced[f] + later.priced[f]) / 2.0;
        }
        middle
    }

    fn add(&mut self, other: &Sample) {
        for f in 0..FAMILIES {
            self.priced[f] += other.priced[f];
            self.counts[f] += other.counts[f];
        }
        self.rise += other.rise;
    }
}

/// Fits one factor per family on `prior`'s weights from the readings of one
/// window (`window_len`: 5 hours or 7 days) and the requests completed in
/// them. With no request in any period the prior is returned unchanged.
/// Cost: sorting, then O((n + m) log m) for n readings and m requests.
pub fn fit_weights(
    window_len: SignedDuration,
    observations: &[Observation],
    requests: &[RequestCost],
    prior: &CostWeights,
) -> Fit {
    let grouped = group_periods(window_len, observations);
    let priced = priced_by_completion(requests, |r| prior.cost(r.family, &r.tokens));

    // Prefix sums per family, so that a span costs two lookups.
    let mut prefix = Vec::with_capacity(priced.len() + 1);
    let mut running = Sample::default();
    prefix.push(running);
    for request in &priced {
        running.priced[request.family.index()] += request.cost;
        running.counts[request.family.index()] += 1;
        prefix.push(running);
    }

    // Each period's spans between consecutive anchors.
    let mut by_period: Vec<Vec<Sample>> = Vec::with_capacity(grouped.periods.len());
    let (mut intervals, mut ticks) = (0, 0);
    for period in &grouped.periods {
        let bounds = period.bounds(&priced);
        let by_point = |k: usize| prefix[bounds.by_point[k]].minus(&prefix[bounds.by_point[0]]);
        let at_anchor = |anchor: &Anchor| match anchor.interval {
            0 => Sample::default(),
            k => by_point(k - 1).midpoint(&by_point(k)),
        };
        let anchors = period.anchors();
        intervals += period.points.len() - 1;
        ticks += anchors.len() - 1;
        let spans = anchors
            .windows(2)
            .map(|pair| {
                let mut span = at_anchor(&pair[1]).minus(&at_anchor(&pair[0]));
                span.counts = by_point(pair[1].interval)
                    .minus(&by_point(pair[0].interval))
                    .counts;
                span.rise = pair[1].level - pair[0].level;
                span
            })
            .collect();
        by_period.push(spans);
    }
    let total_predicted: f64 = by_period.iter().flatten().map(Sample::predicted).sum();
    let total_rise: f64 = by_period.iter().flatten().map(|s| s.rise).sum();

    let mut diagnostics = FitDiagnostics {
        periods: grouped.periods.len(),
        intervals,
        ticks,
        chunks: 0,
        chunks_used: 0,
        iterations: 0,
        pooled_scale: 1.0,
        residual_rms: 0.0,
        samples: PerFamily::default(),
        evidence: PerFamily::default(),
        skipped_observations: grouped.skipped,
    };
    if total_predicted <= 0.0 {
        return Fit {
            weights: *prior,
            scales: PerFamily {
                opus: 1.0,
                sonnet: 1.0,
                haiku: 1.0,
                other: 1.0,
            },
            diagnostics,
        };
    }

    let pilot_scale = total_rise / total_predicted;
    let chunks = merge_into_chunks(&by_period, pilot_scale);
    diagnostics.chunks = chunks.len();

    // Start from least squares on every chunk, then leave out the chunks
    // that rose much more than fitted (use outside ccgate only ever adds) and
    // refit until the set and the factors settle.
    let mut kept = vec![true; chunks.len()];
    let pilot_residuals: Vec<f64> = chunks
        .iter()
        .map(|c| c.rise - pilot_scale * c.predicted())
        .collect();
    let mut solution = solve(&chunks, &kept, robust_sigma(&pilot_residuals));
    for iteration in 1..=MAX_ITERATIONS {
        let residuals: Vec<f64> = chunks
            .iter()
            .map(|c| c.rise - c.fitted(&solution.scales))
            .collect();
        let noise = robust_sigma(&residuals);
        let threshold = (TRIM_SIGMAS * noise).max(QUANTUM);
        let now_kept: Vec<bool> = residuals.iter().map(|&r| r <= threshold).collect();
        let same_chunks = iteration > 1 && now_kept == kept;
        kept = now_kept;
        let next = solve(&chunks, &kept, noise);
        let settled = next
            .scales
            .iter()
            .zip(&solution.scales)
            .all(|(a, b)| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()));
        solution = next;
        diagnostics.iterations = iteration;
        if same_chunks && settled {
            break;
        }
    }

    let used: Vec<&Sample> = chunks
        .iter()
        .zip(&kept)
        .filter_map(|(c, &k)| k.then_some(c))
        .collect();
    diagnostics.chunks_used = used.len();
    diagnostics.pooled_scale = solution.pooled;
    if !used.is_empty() {
        let squares: f64 = used
            .iter()
            .map(|c| (c.rise - c.fitted(&solution.scales)).powi(2))
            .sum();
        diagnostics.residual_rms = (squares / used.len() as f64).sqrt();
    }
    let mut scales = PerFamily::<f64>::default();
    for family in ModelFamily::ALL {
        let f = family.index();
        scales[family] = solution.scales[f];
        diagnostics.samples[family] = used.iter().map(|c| c.counts[f]).sum();
        diagnostics.evidence[family] = solution.evidence[f];
    }
    Fit {
        weights: prior.scaled(&scales),
        scales,
        diagnostics,
    }
}

/// Merges each period's consecutive spans until their predicted rise
/// reaches [`MIN_CHUNK_RISE`]; a period's short remainder joins its last
/// chunk. Chunks with neither requests nor a rise say nothing and are dropped.
fn merge_into_chunks(by_period: &[Vec<Sample>], pilot_scale: f64) -> Vec<Sample> {
    let mut chunks = Vec::new();
    for spans in by_period {
        let first_of_period = chunks.len();
        let mut open: Option<Sample> = None;
        for span in spans {
            let chunk = open.get_or_insert_with(Sample::default);
            chunk.add(span);
            if pilot_scale * chunk.predicted() >= MIN_CHUNK_RISE {
                chunks.push(*chunk);
                open = None;
            }
        }
        if let Some(rest) = open {
            match chunks
                .get_mut(first_of_period..)
                .and_then(<[Sample]>::last_mut)
            {
                Some(last) => last.add(&rest),
                None => chunks.push(rest),
            }
        }
    }
    chunks.retain(|c| c.predicted() > 0.0 || c.rise != 0.0);
    chunks
}

#[derive(Debug, Clone, Copy)]
struct Solution {
    scales: [f64; FAMILIES],
    pooled: f64,
    evidence: [f64; FAMILIES],
}

/// Ridge-regularised non-negative least squares on the kept chunks, with
/// `noise` the standard deviation of a chunk's residual.
fn solve(chunks: &[Sample], kept: &[bool], noise: f64) -> Solution {
    let used = || chunks.iter().zip(kept).filter_map(|(c, &k)| k.then_some(c));

    let (mut cross, mut square) = (0.0, 0.0);
    for chunk in used() {
        cross += chunk.predicted() * chunk.rise;
        square += chunk.predicted().powi(2);
    }
    let pooled = if square > 0.0 {
        (cross / square).max(0.0)
    } else {
        1.0
    };

    let spread = PRIOR_SPREAD * pooled;
    let ridge = if spread > 0.0 {
        (noise.max(MIN_NOISE) / spread).powi(2)
    } else {
        0.0
    };

    let mut normal = [[0.0; FAMILIES]; FAMILIES];
    let mut right = [0.0; FAMILIES];
    for chunk in used() {
        for (i, row) in normal.iter_mut().enumerate() {
            right[i] += chunk.priced[i] * chunk.rise;
            for (cell, x) in row.iter_mut().zip(&chunk.priced) {
                *cell += chunk.priced[i] * x;
            }
        }
    }
    let has_data: Vec<bool> = (0..FAMILIES).map(|i| normal[i][i] > 0.0).collect();
    for i in 0..FAMILIES {
        normal[i][i] += ridge;
        right[i] += ridge * pooled;
        if normal[i][i] == 0.0 {
            // Neither data nor a ridge (no chunk at all): keep the pooled factor.
            normal[i][i] = 1.0;
            right[i] = pooled;
        }
    }
    // The share of a factor's prior variance the data removed: 1 − λ·(A⁻¹)ᵢᵢ.
    // Low for a family with few chunks or one that always comes mixed with
    // another in the same proportion.
    let mut evidence = [0.0; FAMILIES];
    if ridge == 0.0 {
        for (evidence, &has_data) in evidence.iter_mut().zip(&has_data) {
            *evidence = if has_data { 1.0 } else { 0.0 };
        }
    } else {
        for (i, evidence) in evidence.iter_mut().enumerate() {
            let unit = (0..FAMILIES)
                .map(|j| if i == j { 1.0 } else { 0.0 })
                .collect();
            let matrix = normal.iter().map(|row| row.to_vec()).collect();
            if let Some(column) = solve_linear(matrix, unit) {
                *evidence = (1.0 - ridge * column[i]).clamp(0.0, 1.0);
            }
        }
    }
    Solution {
        scales: non_negative_least_squares(&normal, &right),
        pooled,
        evidence,
    }
}

/// Minimises `½ sᵀ A s − bᵀ s` over `s ≥ 0` for a symmetric positive
/// definite `A`, exactly: every set of free variables is tried (16 for four
/// families) and the feasible solution of least objective kept.
fn non_negative_least_squares(
    normal: &[[f64; FAMILIES]; FAMILIES],
    right: &[f64; FAMILIES],
) -> [f64; FAMILIES] {
    let objective = |s: &[f64; FAMILIES]| {
        let mut value = 0.0;
        for i in 0..FAMILIES {
            value -= right[i] * s[i];
            for j in 0..FAMILIES {
                value += 0.5 * s[i] * normal[i][j] * s[j];
            }
        }
        value
    };
    let mut best = ([0.0; FAMILIES], 0.0);
    for free_set in 1u32..(1 << FAMILIES) {
        let free: Vec<usize> = (0..FAMILIES).filter(|i| free_set & (1 << i) != 0).collect();
        let matrix: Vec<Vec<f64>> = free
            .iter()
            .map(|&i| free.iter().map(|&j| normal[i][j]).collect())
            .collect();
        let vector: Vec<f64> = free.iter().map(|&i| right[i]).collect();
        let Some(values) = solve_linear(matrix, vector) else {
            continue;
        };
        if values.iter().any(|&v| v < 0.0) {
            continue;
        }
        let mut candidate = [0.0; FAMILIES];
        for (&i, v) in free.iter().zip(values) {
            candidate[i] = v;
        }
        let value = objective(&candidate);
        if value < best.1 {
            best = (candidate, value);
        }
    }
    best.0
}

/// Gaussian elimination with partial pivoting; `None` when singular.
fn solve_linear(mut matrix: Vec<Vec<f64>>, mut vector: Vec<f64>) -> Option<Vec<f64>> {
    let n = vector.len();
    for column in 0..n {
        let pivot = (column..n)
            .max_by(|&a, &b| matrix[a][column].abs().total_cmp(&matrix[b][column].abs()))?;
        if matrix[pivot][column].abs() < 1e-300 {
            return None;
        }
        matrix.swap(column, pivot);
        vector.swap(column, pivot);
        let (done, rest) = matrix.split_at_mut(column + 1);
        let pivot_row = &done[column];
        for (offset, row) in rest.iter_mut().enumerate() {
            let factor = row[column] / pivot_row[column];
            for (cell, above) in row[column..].iter_mut().zip(&pivot_row[column..]) {
                *cell -= factor * above;
            }
            vector[column + 1 + offset] -= factor * vector[column];
        }
    }
    let mut solution = vec![0.0; n];
    for row in (0..n).rev() {
        let known: f64 = (row + 1..n).map(|k| matrix[row][k] * solution[k]).sum();
        solution[row] = (vector[row] - known) / matrix[row][row];
    }
    Some(solution)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

/// 1.4826 × the median absolute deviation: the standard deviation of normal
/// noise, unmoved by a minority of outliers.
fn robust_sigma(residuals: &[f64]) -> f64 {
    let Some(center) = median(residuals.to_vec()) else {
        return 0.0;
    };
    median(residuals.iter().map(|r| (r - center).abs()).collect()).unwrap_or(0.0) * 1.4826
}
