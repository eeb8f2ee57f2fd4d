//! The alert being delivered, independent of any channel.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How urgent an alert is; channels map it to their own priority scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert. `id` identifies it across retries and re-deliveries, so
/// channels with idempotency keys (Matrix's txnId) never post it twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: Uuid,
    pub title: String,
    pub message: String,
    pub subscription: Option<String>,
    pub person: Option<String>,
    /// Share of the window used, 0–100.
    pub pct: Option<f64>,
    /// The quota window, e.g. "5-hour" or "weekly".
    pub window: Option<String>,
    pub severity: Severity,
    pub at: Timestamp,
}

impl Notification {
    /// A notification stamped now with a fresh id.
    pub fn new(severity: Severity, title: impl Into<String>, message: impl Into<String>) -> Self {
        Notification {
            id: Uuid::now_v7(),
            title: title.into(),
            message: message.into(),
            subscription: None,
            person: None,
            pct: None,
            window: None,
            severity,
            at: Timestamp::now(),
        }
    }

    pub fn with_subscription(mut self, subscription: impl Into<String>) -> Self {
        self.subscription = Some(subscription.into());
        self
    }

    pub fn with_person(mut self, person: impl Into<String>) -> Self {
        self.person = Some(person.into());
        self
    }

    pub fn with_usage(mut self, pct: f64, window: impl Into<String>) -> Self {
        self.pct = Some(pct);
        self.window = Some(window.into());
        self
    }

    /// The optional context as "Label: value" lines, in a fixed order, for
    /// channels that only take text.
    pub fn detail_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(s) = &self.subscription {
            lines.push(format!("Subscription: {s}"));
        }
        if let Some(p) = &self.person {
            lines.push(format!("Person: {p}"));
        }
        match (self.pct, &self.window) {
            (Some(pct), Some(w)) => {
                lines.push(format!("Usage: {}% of the {w} window", fmt_pct(pct)))
            }
            (Some(pct), None) => lines.push(format!("Usage: {}%", fmt_pct(pct))),
            (None, Some(w)) => lines.push(format!("Window: {w}")),
            (None, None) => {}
        }
        lines
    }

    /// Message followed by the detail lines: the body for text-only channels.
    pub fn plain_text(&self) -> String {
        let mut text = self.message.clone();
        for line in self.detail_lines() {
            text.push('\n');
            text.push_str(&line);
        }
        text
    }
}

/// "87" for 87.0 and "87.5" for 87.5: one decimal at most, no trailing ".0".
pub fn fmt_pct(pct: f64) -> String {
    let s = format!("{pct:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_formatting() {
        assert_eq!(fmt_pct(87.0), "87");
        assert_eq!(fmt_pct(87.54), "87.5");
        assert_eq!(fmt_pct(100.0), "100");
        assert_eq!(fmt_pct(0.05), "0.1");
    }

    #[test]
    fn detail_lines_in_order() {
        let n = Notification::new(Severity::Warning, "t", "m")
            .with_subscription("team-max")
            .with_person("alice")
            .with_usage(90.0, "5-hour");
        assert_eq!(
            n.detail_lines(),
            [
                "Subscription: team-max",
                "Person: alice",
                "Usage: 90% of the 5-hour window"
            ]
        );
        assert_eq!(
            n.plain_text(),
            "m\nSubscription: team-max\nPerson: alice\nUsage: 90% of the 5-hour window"
        );
    }

    #[test]
    fn json_shape() {
        let n = Notification::new(Severity::Critical, "t", "m");
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["severity"], "critical");
        assert!(v["at"].as_str().unwrap().ends_with('Z'));
        let back: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }
}
