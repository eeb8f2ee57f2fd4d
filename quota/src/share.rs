//! A person's share of the subscription's own windows (Anthropic's 5-hour
//! and weekly limits), as the server estimates it from the utilization
//! headers and everyone's requests. `share` rules compare it with a cap.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One of the subscription's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareWindow {
    FiveHour,
    SevenDay,
}

impl ShareWindow {
    pub const ALL: [ShareWindow; 2] = [Self::FiveHour, Self::SevenDay];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FiveHour => "five_hour",
            Self::SevenDay => "seven_day",
        }
    }

    /// How it reads in a sentence: "the team's 5-hour window".
    pub fn phrase(self) -> &'static str {
        match self {
            Self::FiveHour => "5-hour",
            Self::SevenDay => "weekly",
        }
    }
}

impl fmt::Display for ShareWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a window name that is neither `five_hour` nor `seven_day`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown subscription window {0:?} (expected five_hour or seven_day)")]
pub struct UnknownShareWindow(pub String);

impl std::str::FromStr for ShareWindow {
    type Err = UnknownShareWindow;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim() {
            "five_hour" | "5h" => Ok(Self::FiveHour),
            "seven_day" | "7d" | "weekly" => Ok(Self::SevenDay),
            other => Err(UnknownShareWindow(other.to_owned())),
        }
    }
}

/// How much of one of the subscription's windows a person has used, in
/// hundredths of a percent of the window (4100 = 41 %), and when that
/// window resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowShare {
    pub window: ShareWindow,
    pub used_bp: u32,
    #[serde(default)]
    pub resets_at: Option<Timestamp>,
}

impl WindowShare {
    /// From a fraction of the window (0.41 → 4100), clamped to 0..=100 %.
    pub fn from_fraction(window: ShareWindow, fraction: f64, resets_at: Option<Timestamp>) -> Self {
        let bp = (fraction * 10_000.0).round().clamp(0.0, 10_000.0);
        Self {
            window,
            used_bp: bp as u32,
            resets_at,
        }
    }

    /// Whole percent, rounded.
    pub fn percent(&self) -> u32 {
        (self.used_bp + 50) / 100
    }
}

/// The share figures of `window` in `shares`, if any.
pub fn find(shares: &[WindowShare], window: ShareWindow) -> Option<WindowShare> {
    shares.iter().find(|s| s.window == window).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_become_basis_points_within_the_window() {
        let share = WindowShare::from_fraction(ShareWindow::FiveHour, 0.4149, None);
        assert_eq!((share.used_bp, share.percent()), (4149, 41));
        assert_eq!(
            WindowShare::from_fraction(ShareWindow::SevenDay, 1.7, None).used_bp,
            10_000
        );
        assert_eq!(
            WindowShare::from_fraction(ShareWindow::SevenDay, -0.2, None).used_bp,
            0
        );
        assert_eq!(
            "weekly".parse::<ShareWindow>().unwrap(),
            ShareWindow::SevenDay
        );
    }
}
