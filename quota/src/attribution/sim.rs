//! Synthetic traffic with a known truth, for the accuracy tests.
//!
//! Four people with their own model mix and request sizes work in bursts
//! (each active in a block of time with some probability, one request after
//! another while active) over several window periods. Anthropic's
//! utilization is the true cost of the completed requests (prior weights
//! times an overall scale times a per-family deviation) plus, sometimes, a
//! burst of use outside ccgate. A reading is taken from some requests'
//! headers: at the request's admission, covering the requests completed a
//! random lag before it, rounded to two decimals.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::{CostWeights, Observation, RequestCost, TokenWeights};
use crate::model::ModelFamily;
use crate::usage::{PerFamily, Totals};

/// splitmix64: tiny, deterministic, good enough for test traffic.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    pub(super) fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    pub(super) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// The shape of the traffic.
#[derive(Debug, Clone, Copy)]
pub(super) struct Setup {
    pub name: &'static str,
    pub window_len: SignedDuration,
    pub periods: usize,
    /// People switch between working and not in blocks of this many seconds.
    pub block_seconds: f64,
    pub active_probability: f64,
    /// Mean pause between a reply and the person's next request, seconds.
    pub mean_pause_seconds: f64,
    /// Share of requests whose headers become a reading.
    pub observation_probability: f64,
    /// Share of periods with a burst of use outside ccgate.
    pub burst_probability: f64,
    pub burst_amount: (f64, f64),
    pub burst_seconds: (f64, f64),
    /// Mean utilization the people reach in a period (sets the scale).
    pub target_utilization: f64,
    /// Readings cover the requests completed up to this many seconds before.
    pub max_lag_seconds: f64,
    pub idle_between_periods_seconds: (f64, f64),
}

pub(super) const FIVE_HOURS: Setup = Setup {
    name: "5h",
    window_len: SignedDuration::from_hours(5),
    periods: 6,
    block_seconds: 1200.0,
    active_probability: 0.5,
    mean_pause_seconds: 40.0,
    observation_probability: 0.5,
    burst_probability: 0.5,
    burst_amount: (0.03, 0.08),
    burst_seconds: (300.0, 1800.0),
    target_utilization: 0.6,
    max_lag_seconds: 5.0,
    idle_between_periods_seconds: (0.0, 7200.0),
};

/// The 5-hour traffic with a reading from only one request in twenty.
pub(super) const FIVE_HOURS_SPARSE: Setup = Setup {
    name: "5h sparse",
    observation_probability: 0.05,
    ..FIVE_HOURS
};

pub(super) const SEVEN_DAYS: Setup = Setup {
    name: "7d",
    window_len: SignedDuration::from_hours(7 * 24),
    periods: 3,
    block_seconds: 7200.0,
    active_probability: 0.25,
    mean_pause_seconds: 90.0,
    observation_probability: 0.2,
    burst_probability: 0.5,
    burst_amount: (0.03, 0.08),
    burst_seconds: (1800.0, 7200.0),
    target_utilization: 0.6,
    max_lag_seconds: 5.0,
    idle_between_periods_seconds: (0.0, 86400.0),
};

/// Person ids; the last one sits out the last period.
pub(super) const PEOPLE: [i64; 4] = [101, 102, 103, 104];

struct Profile {
    /// Cumulative probabilities of Opus, Sonnet, Haiku (the rest is Other).
    families: [f64; 3],
    size: f64,
}

const PROFILES: [Profile; 4] = [
    Profile {
        families: [0.85, 1.0, 1.0],
        size: 1.4,
    },
    Profile {
        families: [0.0, 0.9, 1.0],
        size: 1.0,
    },
    Profile {
        families: [0.0, 0.4, 1.0],
        size: 0.6,
    },
    Profile {
        families: [0.3, 0.75, 0.9],
        size: 1.0,
    },
];

/// What really happened in one period.
#[derive(Debug, Clone)]
pub(super) struct TruePeriod {
    pub start: Timestamp,
    pub resets_at: Timestamp,
    pub by_person: BTreeMap<i64, f64>,
    /// Use outside ccgate: (from, to, amount).
    pub burst: Option<(Timestamp, Timestamp, f64)>,
    /// The burst's parts (at, amount).
    pub burst_pieces: Vec<(Timestamp, f64)>,
}

#[derive(Debug, Clone)]
pub(super) struct Scenario {
    pub observations: Vec<Observation>,
    pub requests: Vec<RequestCost>,
    pub true_weights: CostWeights,
    pub periods: Vec<TruePeriod>,
}

struct Simulated {
    admitted: Timestamp,
    request: RequestCost,
}

fn seconds(value: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(value)
}

fn tokens(rng: &mut Rng, size: f64) -> Totals {
    let cache_creation = if rng.chance(0.25) {
        rng.between(2_000.0, 25_000.0) * size
    } else {
        rng.between(0.0, 1_500.0)
    };
    Totals {
        input_tokens: (rng.between(20.0, 2_000.0) * size) as u64,
        output_tokens: (50.0 + rng.exponential(700.0) * size) as u64,
        cache_creation_input_tokens: cache_creation as u64,
        cache_read_input_tokens: (rng.between(8_000.0, 120_000.0) * size) as u64,
        ..Totals::default()
    }
}

fn family(rng: &mut Rng, profile: &Profile) -> ModelFamily {
    let draw = rng.unit();
    let [opus, sonnet, haiku] = profile.families;
    if draw < opus {
        ModelFamily::Opus
    } else if draw < sonnet {
        ModelFamily::Sonnet
    } else if draw < haiku {
        ModelFamily::Haiku
    } else {
        ModelFamily::Other
    }
}

pub(super) fn simulate(setup: &Setup, seed: u64) -> Scenario {
    let mut rng = Rng::new(seed);
    let true_scales = PerFamily {
        opus: rng.between(1.15, 1.45),
        sonnet: 1.0,
        haiku: rng.between(0.65, 0.95),
        other: rng.between(0.9, 1.1),
    };
    // Anthropic's own ratios between token kinds are not quite the list
    // price's: each kind is off by up to ±15 % (the same for all families),
    // which no fitted family factor can absorb exactly.
    let kind_deviation = TokenWeights {
        input: rng.between(0.85, 1.15),
        output: rng.between(0.85, 1.15),
        cache_creation: rng.between(0.85, 1.15),
        cache_read: rng.between(0.85, 1.15),
    };
    let mut prior = CostWeights::prior();
    for family in ModelFamily::ALL {
        let weights = &mut prior.families[family];
        weights.input *= kind_deviation.input;
        weights.output *= kind_deviation.output;
        weights.cache_creation *= kind_deviation.cache_creation;
        weights.cache_read *= kind_deviation.cache_read;
    }
    let window = setup.window_len.as_secs_f64();
    let origin: Timestamp = "2026-03-02T08:00:00Z".parse().unwrap();

    // Requests and bursts, period by period.
    let mut simulated: Vec<Simulated> = Vec::new();
    let mut periods = Vec::new();
    let mut bursts: Vec<(Timestamp, f64)> = Vec::new();
    let mut start = origin;
    for index in 0..setup.periods {
        let resets_at = start + setup.window_len;
        for (person, profile) in PEOPLE.iter().zip(&PROFILES) {
            if *person == PEOPLE[3] && index + 1 == setup.periods {
                continue;
            }
            let mut block = 0.0;
            while block < window {
                let block_end = (block + setup.block_seconds).min(window);
                if rng.chance(setup.active_probability) {
                    let mut at = block + rng.exponential(setup.mean_pause_seconds);
                    while at < block_end {
                        let tokens = tokens(&mut rng, profile.size);
                        let duration = 2.0 + tokens.output_tokens as f64 / 60.0;
                        if at + duration >= window - 1.0 {
                            break;
                        }
                        let admitted = start + seconds(at);
                        simulated.push(Simulated {
                            admitted,
                            request: RequestCost {
                                at: admitted + seconds(duration),
                                person: *person,
                                family: family(&mut rng, profile),
                                tokens,
                            },
                        });
                        at += duration + rng.exponential(setup.mean_pause_seconds);
                    }
                }
                block = block_end;
            }
        }
        let mut burst_pieces = Vec::new();
        let burst = rng.chance(setup.burst_probability).then(|| {
            let amount = rng.between(setup.burst_amount.0, setup.burst_amount.1);
            let from = start + seconds(rng.between(0.1, 0.85) * window);
            let to = from + seconds(rng.between(setup.burst_seconds.0, setup.burst_seconds.1));
            const PIECES: usize = 6;
            for _ in 0..PIECES {
                let at = from + seconds(rng.unit() * to.duration_since(from).as_secs_f64());
                burst_pieces.push((at, amount / PIECES as f64));
            }
            (from, to, amount)
        });
        bursts.extend(&burst_pieces);
        periods.push(TruePeriod {
            start,
            resets_at,
            by_person: BTreeMap::new(),
            burst,
            burst_pieces,
        });
        let idle = rng.between(
            setup.idle_between_periods_seconds.0,
            setup.idle_between_periods_seconds.1,
        );
        start = resets_at + seconds(idle);
    }

    // The scale that makes a period reach the target utilization on average.
    let true_weights_at_unit_scale = prior.scaled(&true_scales);
    let unit_total: f64 = simulated
        .iter()
        .map(|s| true_weights_at_unit_scale.cost(s.request.family, &s.request.tokens))
        .sum();
    let scale = setup.target_utilization * setup.periods as f64 / unit_total.max(f64::MIN_POSITIVE);
    let true_scales = PerFamily {
        opus: true_scales.opus * scale,
        sonnet: true_scales.sonnet * scale,
        haiku: true_scales.haiku * scale,
        other: true_scales.other * scale,
    };
    let true_weights = prior.scaled(&true_scales);

    // The true utilization over time: completed requests plus bursts.
    let mut events: Vec<(Timestamp, f64)> = simulated
        .iter()
        .map(|s| {
            (
                s.request.at,
                true_weights.cost(s.request.family, &s.request.tokens),
            )
        })
        .chain(bursts.iter().copied())
        .collect();
    events.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut cumulative = Vec::with_capacity(events.len() + 1);
    cumulative.push(0.0);
    for (_, cost) in &events {
        cumulative.push(cumulative.last().copied().unwrap_or(0.0) + cost);
    }
    let used_by = |at: Timestamp| cumulative[events.partition_point(|e| e.0 <= at)];

    for s in &simulated {
        let cost = true_weights.cost(s.request.family, &s.request.tokens);
        if let Some(period) = periods
            .iter_mut()
            .find(|p| p.start <= s.request.at && s.request.at < p.resets_at)
        {
            *period.by_person.entry(s.request.person).or_insert(0.0) += cost;
        }
    }

    simulated.sort_by_key(|s| (s.admitted, s.request.person));
    let mut observations = Vec::new();
    for s in &simulated {
        if !rng.chance(setup.observation_probability) {
            continue;
        }
        let at = s.admitted + SignedDuration::from_millis(300);
        let Some(period) = periods.iter().find(|p| p.start <= at && at < p.resets_at) else {
            continue;
        };
        let covered = at - seconds(rng.unit() * setup.max_lag_seconds);
        let used = used_by(covered) - used_by(period.start - SignedDuration::from_nanos(1));
        observations.push(Observation {
            at,
            utilization: (used * 100.0).round() / 100.0,
            resets_at: Some(period.resets_at),
        });
    }

    Scenario {
        observations,
        requests: simulated.into_iter().map(|s| s.request).collect(),
        true_weights,
        periods,
    }
}
