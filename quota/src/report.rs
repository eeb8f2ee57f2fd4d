//! A user's usage measured against each of their rules: the data behind the
//! block message, `ccgate status` and the dashboard's bars.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::model::{CreditWeights, ModelFamily};
use crate::policy::{CompiledPolicy, UserRef, UserStatus};
use crate::rules::{Limit, Rule, RuleSpec, TokenKind};
use crate::share::ShareWindow;
use crate::usage::{PerFamily, Totals, UsageSource};
use crate::window::Window;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Prompts,
    Credits,
    Tokens(TokenKind),
}

impl Metric {
    /// How much of this metric `totals` hold.
    pub fn of(self, totals: &Totals) -> u64 {
        match self {
            Self::Prompts => totals.prompts,
            Self::Credits => totals.credits,
            Self::Tokens(kind) => totals.tokens(kind),
        }
    }
}

/// What a counting rule counts: its family (`None`: all), window, limit and
/// metric; `None` for time_of_day and share rules.
pub(crate) fn counter(spec: &RuleSpec) -> Option<(Option<ModelFamily>, Window, Limit, Metric)> {
    match spec {
        RuleSpec::PerModel {
            model,
            window,
            limit,
        } => Some((*model, *window, *limit, Metric::Prompts)),
        RuleSpec::Credits { window, limit } => Some((None, *window, *limit, Metric::Credits)),
        RuleSpec::Tokens {
            model,
            window,
            limit,
            kind,
        } => Some((*model, *window, *limit, Metric::Tokens(*kind))),
        RuleSpec::TimeOfDay { .. } | RuleSpec::Share { .. } => None,
    }
}

/// One counting rule with the usage in its current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitUsage {
    pub rule: Rule,
    pub family: Option<ModelFamily>,
    pub window: Window,
    pub metric: Metric,
    pub used: u64,
    /// The rule's value: -1 unlimited, 0 forbidden, else the cap.
    pub limit: i64,
    /// `None` when unlimited.
    pub remaining: Option<u64>,
    pub window_start: Timestamp,
    /// When a calendar window starts afresh.
    pub resets_at: Option<Timestamp>,
    /// When the oldest usage leaves a sliding window, if known.
    pub frees_at: Option<Timestamp>,
}

/// A time-of-day rule and whether it is open now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    pub rule: Rule,
    pub family: Option<ModelFamily>,
    pub time_zone: String,
    pub open_now: bool,
    /// When it next opens (if closed) or closes (if open).
    pub next_change: Option<Timestamp>,
}

/// A `share` rule with the person's estimated share of its window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLimit {
    pub rule: Rule,
    pub window: ShareWindow,
    /// The cap, in percent of the window.
    pub percent: u32,
    /// The share used, in hundredths of a percent; `None` until the server
    /// has an estimate.
    pub used_bp: Option<u32>,
    /// When the subscription's window resets.
    pub resets_at: Option<Timestamp>,
}

impl ShareLimit {
    pub fn exceeded(&self) -> bool {
        self.used_bp.is_some_and(|used| used >= self.percent * 100)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub generated_at: Timestamp,
    pub user: UserRef,
    pub status: UserStatus,
    pub time_zone: String,
    pub credit_weights: CreditWeights,
    /// Everything used since local midnight, by family.
    pub today: PerFamily<Totals>,
    pub limits: Vec<LimitUsage>,
    pub schedules: Vec<ScheduleState>,
    #[serde(default)]
    pub shares: Vec<ShareLimit>,
}

impl UsageReport {
    pub fn build(policy: &CompiledPolicy, usage: &impl UsageSource, now: Timestamp) -> Self {
        let day_start = Window::Daily.bounds(now, &policy.tz).start;
        let mut today = PerFamily::<Totals>::default();
        for family in ModelFamily::ALL {
            today[family] = usage.totals_since(Some(family), day_start);
        }
        let mut limits = Vec::new();
        let mut schedules = Vec::new();
        let mut shares = Vec::new();
        for (rule, zone) in policy.rules() {
            match &rule.spec {
                RuleSpec::TimeOfDay {
                    model, start, end, ..
                } => {
                    let (open_now, next_change) = schedule_state(*start, *end, zone, now);
                    schedules.push(ScheduleState {
                        rule: rule.clone(),
                        family: *model,
                        time_zone: CompiledPolicy::zone_name(zone).to_owned(),
                        open_now,
                        next_change,
                    });
                }
                RuleSpec::Share { window, percent } => {
                    shares.push(share_limit(rule, *window, *percent, usage));
                }
                _ => limits.extend(measure(rule, zone, usage, now)),
            }
        }
        Self {
            generated_at: now,
            user: policy.policy.user.clone(),
            status: policy.policy.status,
            time_zone: policy.policy.time_zone.clone(),
            credit_weights: policy.policy.credit_weights,
            today,
            limits,
            schedules,
            shares,
        }
    }

    /// The per-model prompt limit with the least room for `family`, if any.
    pub fn tightest_prompt_limit(&self, family: ModelFamily) -> Option<&LimitUsage> {
        self.limits
            .iter()
            .filter(|l| l.metric == Metric::Prompts && l.family == Some(family))
            .min_by_key(|l| l.remaining.unwrap_or(u64::MAX))
    }

    /// The peer's `(credit_budget, credit_balance)`: the tightest credit
    /// budget and what is left of it, -1 for each when there is none.
    pub fn credit_figures(&self) -> (i64, i64) {
        match self.tightest_credits() {
            Some(line) => (
                line.limit,
                line.remaining
                    .map_or(-1, |r| i64::try_from(r).unwrap_or(i64::MAX)),
            ),
            None => (-1, -1),
        }
    }

    /// The credit budget with the least room, if any.
    pub fn tightest_credits(&self) -> Option<&LimitUsage> {
        self.limits
            .iter()
            .filter(|l| l.metric == Metric::Credits)
            .min_by_key(|l| l.remaining.unwrap_or(u64::MAX))
    }
}

/// A `share` rule against the person's estimated share of its window.
pub(crate) fn share_limit(
    rule: &Rule,
    window: ShareWindow,
    percent: u32,
    usage: &impl UsageSource,
) -> ShareLimit {
    let share = usage.window_share(window);
    ShareLimit {
        rule: rule.clone(),
        window,
        percent,
        used_bp: share.map(|s| s.used_bp),
        resets_at: share.and_then(|s| s.resets_at),
    }
}

/// Measures a counting rule (every type but time_of_day and share) at `now`.
pub(crate) fn measure(
    rule: &Rule,
    zone: &TimeZone,
    usage: &impl UsageSource,
    now: Timestamp,
) -> Option<LimitUsage> {
    let (family, window, limit, metric) = counter(&rule.spec)?;
    let bounds = window.bounds(now, zone);
    let used = metric.of(&usage.totals_since(family, bounds.start));
    // Usage is kept by the minute, so the oldest minute has left the window
    // one minute after it would have exactly.
    let frees_at = window.sliding_length().and_then(|length| {
        usage.oldest_since(family, bounds.start).and_then(|oldest| {
            oldest
                .checked_add(length + SignedDuration::from_mins(1))
                .ok()
        })
    });
    Some(LimitUsage {
        rule: rule.clone(),
        family,
        window,
        metric,
        used,
        limit: limit.value(),
        remaining: limit.cap().map(|cap| cap.saturating_sub(used)),
        window_start: bounds.start,
        resets_at: bounds.resets_at,
        frees_at,
    })
}

/// Whether a schedule from `start` to `end` (crossing midnight when `end` is
/// earlier) is open at `now`, and when that next changes.
pub fn schedule_state(
    start: Time,
    end: Time,
    zone: &TimeZone,
    now: Timestamp,
) -> (bool, Option<Timestamp>) {
    let local = now.to_zoned(zone.clone()).time();
    let open = if start < end {
        start <= local && local < end
    } else {
        local >= start || local < end
    };
    let next = next_occurrence(if open { end } else { start }, zone, now);
    (open, next)
}

/// The first instant after `now` whose local time is `time` (on a DST gap day,
/// a time that does not exist is moved past the gap).
fn next_occurrence(time: Time, zone: &TimeZone, now: Timestamp) -> Option<Timestamp> {
    let today = now.to_zoned(zone.clone()).date();
    (0..3).find_map(|days| {
        let date = today.checked_add(days.days()).ok()?;
        let at = date.to_datetime(time).to_zoned(zone.clone()).ok()?;
        (at.timestamp() > now).then(|| at.timestamp())
    })
}
