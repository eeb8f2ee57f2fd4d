//! Properties of `attribute` and `fit_weights` on arbitrary input: readings
//! that jump around, fall, lack a reset or straddle two periods, requests
//! anywhere in time.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;

const FIVE_H: SignedDuration = SignedDuration::from_hours(5);

fn origin() -> Timestamp {
    "2026-03-02T10:00:00Z".parse().unwrap()
}

/// Two periods: 10:00–15:00 and 16:00–21:00.
fn resets(minute: i64) -> Option<Timestamp> {
    match minute {
        0..300 => Some(origin() + SignedDuration::from_hours(5)),
        360..660 => Some(origin() + SignedDuration::from_hours(11)),
        _ => None,
    }
}

fn observation() -> impl Strategy<Value = Observation> {
    (0i64..700, 0u32..=100, prop::bool::weighted(0.9)).prop_map(|(minute, percent, with_reset)| {
        Observation {
            at: origin() + SignedDuration::from_mins(minute),
            utilization: f64::from(percent) / 100.0,
            resets_at: if with_reset { resets(minute) } else { None },
        }
    })
}

fn request() -> impl Strategy<Value = RequestCost> {
    (
        -60i64..720 * 60,
        1i64..5,
        prop::sample::select(ModelFamily::ALL.to_vec()),
        0u64..20_000,
        0u64..5_000,
        0u64..200_000,
    )
        .prop_map(
            |(second, person, family, input, output, cache_read)| RequestCost {
                at: origin() + SignedDuration::from_secs(second),
                person,
                family,
                tokens: Totals {
                    input_tokens: input,
                    output_tokens: output,
                    cache_read_input_tokens: cache_read,
                    ..Totals::default()
                },
            },
        )
}

/// Weights that make a typical request cost about one point.
fn weights() -> CostWeights {
    let mut factors = PerFamily::<f64>::default();
    for family in ModelFamily::ALL {
        factors[family] = 3.0;
    }
    CostWeights::prior().scaled(&factors)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_observed_point_is_attributed_or_unattributed(
        observations in prop::collection::vec(observation(), 1..40),
        requests in prop::collection::vec(request(), 0..120),
    ) {
        let result = attribute(FIVE_H, &observations, &requests, &weights());
        for period in &result.periods {
            let accounted = period.attributed + period.unattributed;
            prop_assert!(
                (accounted - period.observed).abs() < 1e-9,
                "{accounted} of {}", period.observed
            );
            prop_assert!(period.unattributed >= 0.0 && period.pending >= 0.0);
            for share in &period.people {
                prop_assert!(share.attributed >= -1e-12 && share.pending >= 0.0);
                // Nobody is charged in a period they had no request in.
                let had_request = requests.iter().any(|r| {
                    r.person == share.person && period.start <= r.at && r.at < period.resets_at
                });
                prop_assert!(had_request, "person {} in {:?}", share.person, period.start);
            }
            for interval in &period.unattributed_intervals {
                prop_assert!(interval.amount > 0.0 && interval.start <= interval.end);
            }
            prop_assert!(result.current(period.start) == Some(period));
        }
        // Periods never overlap.
        for pair in result.periods.windows(2) {
            prop_assert!(pair[0].resets_at <= pair[1].start);
        }
    }

    #[test]
    fn input_order_never_matters(
        observations in prop::collection::vec(observation(), 1..30),
        requests in prop::collection::vec(request(), 0..80),
    ) {
        let forward = attribute(FIVE_H, &observations, &requests, &weights());
        let (mut observations, mut requests) = (observations, requests);
        observations.reverse();
        requests.reverse();
        prop_assert_eq!(attribute(FIVE_H, &observations, &requests, &weights()), forward);
    }

    #[test]
    fn fitted_weights_are_finite_and_never_negative(
        observations in prop::collection::vec(observation(), 0..40),
        requests in prop::collection::vec(request(), 0..120),
    ) {
        let fit = fit_weights(FIVE_H, &observations, &requests, &CostWeights::prior());
        for family in ModelFamily::ALL {
            let scale = fit.scales[family];
            prop_assert!(scale.is_finite() && scale >= 0.0, "{family}: {scale}");
            let evidence = fit.diagnostics.evidence[family];
            prop_assert!((0.0..=1.0).contains(&evidence));
        }
        prop_assert!(fit.diagnostics.residual_rms.is_finite());
    }
}
