//! Counting windows. Calendar windows (`daily`, `weekly`, `monthly`) start at
//! local midnight in an IANA time zone, so a day is 23 or 25 hours long on DST
//! change days; sliding windows are fixed durations ending now.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// From local midnight today.
    Daily,
    /// From local midnight on the last Monday (ISO weeks).
    Weekly,
    /// From local midnight on the 1st of the month.
    Monthly,
    /// The last 24 hours.
    Sliding24h,
    /// The last 5 hours, like the subscription's own 5-hour limit.
    Rolling5h,
    /// The last 7 × 24 hours.
    Sliding7d,
}

/// Where a window stands at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowBounds {
    /// Usage at or after this instant counts.
    pub start: Timestamp,
    /// When a calendar window starts afresh; `None` for sliding windows, which
    /// free up gradually as old usage leaves them.
    pub resets_at: Option<Timestamp>,
}

impl Window {
    pub const ALL: [Window; 6] = [
        Self::Daily,
        Self::Weekly,
        Self::Monthly,
        Self::Sliding24h,
        Self::Rolling5h,
        Self::Sliding7d,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Sliding24h => "sliding_24h",
            Self::Rolling5h => "rolling_5h",
            Self::Sliding7d => "sliding_7d",
        }
    }

    /// How usage in this window reads in a sentence: "5 prompts today".
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Daily => "today",
            Self::Weekly => "this week",
            Self::Monthly => "this month",
            Self::Sliding24h => "in the last 24 h",
            Self::Rolling5h => "in the last 5 h",
            Self::Sliding7d => "in the last 7 days",
        }
    }

    /// The fixed length of a sliding window.
    pub fn sliding_length(self) -> Option<SignedDuration> {
        match self {
            Self::Sliding24h => Some(SignedDuration::from_hours(24)),
            Self::Rolling5h => Some(SignedDuration::from_hours(5)),
            Self::Sliding7d => Some(SignedDuration::from_hours(7 * 24)),
            Self::Daily | Self::Weekly | Self::Monthly => None,
        }
    }

    pub fn is_calendar(self) -> bool {
        self.sliding_length().is_none()
    }

    /// The window that contains `now`, with calendar boundaries in `tz`.
    pub fn bounds(self, now: Timestamp, tz: &TimeZone) -> WindowBounds {
        if let Some(length) = self.sliding_length() {
            return WindowBounds {
                start: now.checked_sub(length).unwrap_or(Timestamp::MIN),
                resets_at: None,
            };
        }
        let today = now.to_zoned(tz.clone()).date();
        let (first_day, next_first_day) = match self {
            Self::Daily => (Some(today), today.tomorrow().ok()),
            Self::Weekly => {
                let back = i64::from(today.weekday().to_monday_zero_offset());
                let monday = today.checked_sub(back.days()).ok();
                (monday, monday.and_then(|d| d.checked_add(1.week()).ok()))
            }
            Self::Monthly => {
                let first = today.first_of_month();
                (Some(first), first.checked_add(1.month()).ok())
            }
            Self::Sliding24h | Self::Rolling5h | Self::Sliding7d => unreachable!("handled above"),
        };
        WindowBounds {
            // Only the extreme ends of jiff's range fail; counting everything is
            // the conservative answer there.
            start: first_day
                .and_then(|d| start_of_day(d, tz))
                .unwrap_or(Timestamp::MIN),
            resets_at: next_first_day.and_then(|d| start_of_day(d, tz)),
        }
    }
}

/// The first instant of `date` in `tz`: midnight, or the end of a DST gap
/// where midnight does not exist.
pub fn start_of_day(date: Date, tz: &TimeZone) -> Option<Timestamp> {
    let zoned = date.to_zoned(tz.clone()).ok()?;
    zoned.start_of_day().ok().map(|z| z.timestamp())
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown window {0:?} (expected daily, weekly, monthly, sliding_24h, rolling_5h or sliding_7d)"
)]
pub struct UnknownWindow(pub String);

impl FromStr for Window {
    type Err = UnknownWindow;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == name.trim())
            .ok_or_else(|| UnknownWindow(name.to_owned()))
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}
