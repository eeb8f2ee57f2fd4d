//! What an alert rule watches, and the small state machine every rule keeps
//! per subject: fire when a value crosses the threshold while armed and out
//! of cooldown; re-arm once it falls [`REARM_POINTS`] below.

use serde::{Deserialize, Serialize};

use crate::model::PlanWindow;

/// Points (percent) a value must fall below its threshold to re-arm.
pub const REARM_POINTS: f64 = 5.0;
pub const DEFAULT_COOLDOWN_SECS: u64 = 4 * 3600;

/// What a rule watches. `subscription_id` / `user_id` narrow it to one
/// subscription or person; absent, it watches all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlertCondition {
    /// A subscription's window at or above `threshold` percent.
    Utilization {
        window: PlanWindow,
        threshold: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subscription_id: Option<i64>,
    },
    /// A window reaching 100 %, and later its reset (cldmon's hit and reset).
    WindowHit {
        window: PlanWindow,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subscription_id: Option<i64>,
    },
    /// A person at or above `threshold` percent of one of their caps.
    LimitShare {
        threshold: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<i64>,
    },
    /// A rise of a subscription's window that no ccgate traffic explains,
    /// of at least `points` percentage points.
    UnattributedUse {
        #[serde(default = "default_unattributed_points")]
        points: f64,
    },
    Kill,
    Tamper,
    QuarantinedEvents,
    /// Anthropic refused the team credential (401/403).
    CredentialRefused,
    /// A held credential is within `days` of its expected expiry.
    CredentialExpiring {
        days: u32,
    },
    /// A device not seen for `hours`.
    DeviceSilent {
        hours: u32,
    },
}

fn default_unattributed_points() -> f64 {
    3.0
}

/// Why a rule does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCondition(pub String);

impl AlertCondition {
    pub fn validate(&self) -> Result<(), InvalidCondition> {
        let percent = |value: f64, name: &str| {
            if value.is_finite() && value > 0.0 && value <= 100.0 {
                Ok(())
            } else {
                Err(InvalidCondition(format!(
                    "{name} must be a percentage above 0 and at most 100"
                )))
            }
        };
        match self {
            Self::Utilization { threshold, .. } | Self::LimitShare { threshold, .. } => {
                percent(*threshold, "threshold")
            }
            Self::UnattributedUse { points } => percent(*points, "points"),
            Self::CredentialExpiring { days } if !(1..=365).contains(days) => Err(
                InvalidCondition("days must be between 1 and 365".to_owned()),
            ),
            Self::DeviceSilent { hours } if !(1..=24 * 90).contains(hours) => Err(
                InvalidCondition("hours must be between 1 and 2160".to_owned()),
            ),
            _ => Ok(()),
        }
    }

    /// Whether it is about a person (a person may subscribe to these).
    pub fn concerns_one_person(&self) -> bool {
        matches!(self, Self::LimitShare { .. } | Self::Kill)
    }
}

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: i64,
    pub name: String,
    pub condition: AlertCondition,
    /// Channel ids; none: the alert is only listed on the Activity page.
    pub channels: Vec<i64>,
    pub cooldown_secs: u64,
    pub enabled: bool,
    /// A person who subscribed to alerts about their own usage.
    pub owner_user_id: Option<i64>,
}

/// A rule's memory of one subject (a subscription's window, a person, a
/// device).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectState {
    pub armed: bool,
    pub last_fired_at: Option<i64>,
    /// For hit and reset: the reset time of the window that was hit (ms).
    pub hit_window_resets_at: Option<i64>,
}

/// A new subject starts armed.
impl Default for SubjectState {
    fn default() -> Self {
        Self {
            armed: true,
            last_fired_at: None,
            hit_window_resets_at: None,
        }
    }
}

impl SubjectState {
    fn cooled_down(&self, now_ms: i64, cooldown_ms: i64) -> bool {
        self.last_fired_at
            .is_none_or(|last| now_ms.saturating_sub(last) >= cooldown_ms)
    }

    /// A value against a threshold (both percent): true when it fires.
    pub fn threshold_step(
        &mut self,
        value: f64,
        threshold: f64,
        now_ms: i64,
        cooldown_ms: i64,
    ) -> bool {
        if value >= threshold {
            if self.armed && self.cooled_down(now_ms, cooldown_ms) {
                self.armed = false;
                self.last_fired_at = Some(now_ms);
                return true;
            }
        } else if value <= threshold - REARM_POINTS {
            self.armed = true;
        }
        false
    }

    /// Something happened (a kill, a tamper report): true when it fires.
    pub fn occurrence_step(&mut self, now_ms: i64, cooldown_ms: i64) -> bool {
        if self.cooled_down(now_ms, cooldown_ms) {
            self.last_fired_at = Some(now_ms);
            return true;
        }
        false
    }

    /// A condition that holds or not (a silent device, a credential near
    /// expiry): fires once when it starts holding, re-arms when it stops.
    pub fn condition_step(&mut self, holds: bool, now_ms: i64) -> bool {
        match (holds, self.armed) {
            (true, true) => {
                self.armed = false;
                self.last_fired_at = Some(now_ms);
                true
            }
            (false, false) => {
                self.armed = true;
                false
            }
            _ => false,
        }
    }

    /// A window's utilization (percent) and reset time (ms): a hit when it
    /// reaches 100 %, a reset once that window has passed.
    pub fn hit_step(
        &mut self,
        value: f64,
        resets_at: Option<i64>,
        now_ms: i64,
    ) -> Option<HitOrReset> {
        match self.hit_window_resets_at {
            None if value >= 100.0 => {
                // The window's end, or an hour from now when it is unknown.
                self.hit_window_resets_at = Some(resets_at.unwrap_or(now_ms + 3_600_000));
                self.last_fired_at = Some(now_ms);
                Some(HitOrReset::Hit)
            }
            Some(hit_until)
                if now_ms >= hit_until || (value < 100.0 && resets_at != Some(hit_until)) =>
            {
                self.hit_window_resets_at = None;
                self.last_fired_at = Some(now_ms);
                Some(HitOrReset::Reset)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitOrReset {
    Hit,
    Reset,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_threshold_fires_once_rearms_five_points_below_and_waits_for_its_cooldown() {
        let mut state = SubjectState::default();
        let cooldown = 4 * HOUR;
        assert!(!state.threshold_step(89.0, 90.0, 0, cooldown));
        assert!(
            state.threshold_step(91.0, 90.0, 1, cooldown),
            "crossing fires"
        );
        assert!(
            !state.threshold_step(95.0, 90.0, 2, cooldown),
            "still above: once"
        );
        assert!(
            !state.threshold_step(87.0, 90.0, 3, cooldown),
            "not 5 below: not re-armed"
        );
        assert!(!state.threshold_step(91.0, 90.0, 4, cooldown));
        assert!(!state.threshold_step(85.0, 90.0, 5, cooldown), "re-armed");
        assert!(
            !state.threshold_step(92.0, 90.0, HOUR, cooldown),
            "armed but within the cooldown"
        );
        assert!(state.threshold_step(92.0, 90.0, 4 * HOUR + 1, cooldown));
    }

    #[test]
    fn a_hit_fires_at_100_and_the_reset_once_its_window_passed() {
        let mut state = SubjectState::default();
        assert_eq!(state.hit_step(99.0, Some(5 * HOUR), 0), None);
        assert_eq!(
            state.hit_step(100.0, Some(5 * HOUR), HOUR),
            Some(HitOrReset::Hit)
        );
        assert_eq!(state.hit_step(100.0, Some(5 * HOUR), 2 * HOUR), None);
        assert_eq!(
            state.hit_step(3.0, Some(10 * HOUR), 5 * HOUR + 1),
            Some(HitOrReset::Reset)
        );
        assert_eq!(state.hit_step(4.0, Some(10 * HOUR), 6 * HOUR), None);
    }

    #[test]
    fn a_standing_condition_fires_when_it_starts_and_again_after_it_stopped() {
        let mut state = SubjectState::default();
        assert!(state.condition_step(true, 0));
        assert!(!state.condition_step(true, 1));
        assert!(!state.condition_step(false, 2));
        assert!(state.condition_step(true, 3));
    }

    #[test]
    fn conditions_read_as_tagged_json_and_bad_ones_are_refused() {
        let rule: AlertCondition =
            serde_json::from_str(r#"{"type":"utilization","window":"five_hour","threshold":90}"#)
                .unwrap();
        assert_eq!(
            rule,
            AlertCondition::Utilization {
                window: PlanWindow::FiveHour,
                threshold: 90.0,
                subscription_id: None
            }
        );
        let too_high = AlertCondition::LimitShare {
            threshold: 150.0,
            user_id: None,
        };
        assert!(too_high.validate().is_err());
        let unknown = r#"{"type":"utilization","window":"five_hour","threshold":90,"x":1}"#;
        assert!(serde_json::from_str::<AlertCondition>(unknown).is_err());
        let missing = r#"{"type":"utilization","window":"five_hour"}"#;
        assert!(serde_json::from_str::<AlertCondition>(missing).is_err());
    }
}
