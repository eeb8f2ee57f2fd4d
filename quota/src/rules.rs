//! Limit rules: their typed form, and the flat JSON form that
//! claude-code-limiter uses (`{id, type, model, window, value, schedule_start,
//! schedule_end, schedule_tz}`), which ccgate keeps and extends with `kind`.

use std::fmt;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::model::ModelFamily;
use crate::share::ShareWindow;
use crate::window::Window;

/// A rule's `value`: `-1` unlimited, `0` forbidden, `n > 0` at most `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Forbidden,
    AtMost(u64),
}

impl Limit {
    pub fn from_value(value: i64) -> Result<Self, RuleError> {
        match value {
            -1 => Ok(Self::Unlimited),
            0 => Ok(Self::Forbidden),
            n if n > 0 => Ok(Self::AtMost(n as u64)),
            n => Err(RuleError::BadValue(n)),
        }
    }

    pub fn value(self) -> i64 {
        match self {
            Self::Unlimited => -1,
            Self::Forbidden => 0,
            Self::AtMost(n) => i64::try_from(n).unwrap_or(i64::MAX),
        }
    }

    /// The cap as a number: `None` when unlimited.
    pub fn cap(self) -> Option<u64> {
        match self {
            Self::Unlimited => None,
            Self::Forbidden => Some(0),
            Self::AtMost(n) => Some(n),
        }
    }
}

/// Which token counter a `tokens` rule limits, as the API reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Input,
    Output,
    CacheCreation,
    CacheRead,
    /// All four added up.
    Total,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::CacheCreation => "cache_creation",
            Self::CacheRead => "cache_read",
            Self::Total => "total",
        }
    }

    /// How the counter reads in a sentence.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Input => "input tokens",
            Self::Output => "output tokens",
            Self::CacheCreation => "cache-write tokens",
            Self::CacheRead => "cache-read tokens",
            Self::Total => "tokens",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSpec {
    /// Prompts of one family (or of all models when `model` is `None`).
    PerModel {
        model: Option<ModelFamily>,
        window: Window,
        limit: Limit,
    },
    /// A budget of credits; each prompt costs its family's weight.
    Credits { window: Window, limit: Limit },
    /// Tokens of one kind, of one family or all models.
    Tokens {
        model: Option<ModelFamily>,
        window: Window,
        limit: Limit,
        kind: TokenKind,
    },
    /// Prompts are allowed only between `start` and `end` local time; `end`
    /// before `start` crosses midnight. `tz` overrides the user's zone.
    TimeOfDay {
        model: Option<ModelFamily>,
        start: Time,
        end: Time,
        tz: Option<String>,
    },
    /// At most `percent` of one of the subscription's own windows, by the
    /// server's estimate of each person's share of it.
    Share { window: ShareWindow, percent: u32 },
}

impl RuleSpec {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::PerModel { .. } => "per_model",
            Self::Credits { .. } => "credits",
            Self::Tokens { .. } => "tokens",
            Self::TimeOfDay { .. } => "time_of_day",
            Self::Share { .. } => "share",
        }
    }

    /// The model family the rule is restricted to, if any.
    pub fn model(&self) -> Option<ModelFamily> {
        match self {
            Self::PerModel { model, .. }
            | Self::Tokens { model, .. }
            | Self::TimeOfDay { model, .. } => *model,
            Self::Credits { .. } | Self::Share { .. } => None,
        }
    }

    /// Whether the rule concerns a request of `family`.
    pub fn applies_to(&self, family: ModelFamily) -> bool {
        self.model().is_none_or(|m| m == family)
    }

    pub fn window(&self) -> Option<Window> {
        match self {
            Self::PerModel { window, .. }
            | Self::Credits { window, .. }
            | Self::Tokens { window, .. } => Some(*window),
            Self::TimeOfDay { .. } | Self::Share { .. } => None,
        }
    }
}

/// A rule as stored and sent: the spec plus the server's row id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRule", into = "RawRule")]
pub struct Rule {
    pub id: Option<i64>,
    pub spec: RuleSpec,
}

impl Rule {
    pub fn new(spec: RuleSpec) -> Self {
        Self { id: None, spec }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    #[error("unknown rule type {0:?} (expected per_model, credits, tokens, time_of_day or share)")]
    UnknownType(String),
    #[error("value must be -1 (unlimited), 0 (forbidden) or a positive number, got {0}")]
    BadValue(i64),
    #[error("a {0} rule needs a value")]
    MissingValue(&'static str),
    #[error("a {0} rule needs a window")]
    MissingWindow(&'static str),
    #[error(transparent)]
    Window(#[from] crate::window::UnknownWindow),
    #[error(transparent)]
    Model(#[from] crate::model::UnknownFamily),
    #[error("a tokens rule needs a kind (input, output, cache_creation, cache_read or total)")]
    MissingTokenKind,
    #[error("a credits rule applies to all models; remove model {0:?}")]
    CreditsWithModel(String),
    #[error("a time_of_day rule needs schedule_start and schedule_end as HH:MM")]
    MissingSchedule,
    #[error("{0:?} is not a time of day (expected HH:MM, 00:00 to 23:59)")]
    BadTime(String),
    #[error("schedule_start and schedule_end are both {0}: the allowed period would be empty")]
    EmptySchedule(String),
    #[error("unknown time zone {0:?} (expected an IANA name such as Europe/Berlin)")]
    UnknownTimeZone(String),
    #[error("a share rule's value is a percentage of the window from 1 to 100, got {0}")]
    BadShare(i64),
    #[error(transparent)]
    ShareWindow(#[from] crate::share::UnknownShareWindow),
}

/// The flat JSON shape of a rule (claude-code-limiter's, plus `kind`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RawRule {
    #[serde(default)]
    id: Option<i64>,
    #[serde(rename = "type")]
    kind_of_rule: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<TokenKind>,
    #[serde(default)]
    schedule_start: Option<String>,
    #[serde(default)]
    schedule_end: Option<String>,
    #[serde(default)]
    schedule_tz: Option<String>,
}

fn parse_model(model: Option<String>) -> Result<Option<ModelFamily>, RuleError> {
    match model.as_deref().map(str::trim) {
        None | Some("" | "all" | "*" | "any") => Ok(None),
        Some(name) => Ok(Some(name.parse()?)),
    }
}

/// Parses `HH:MM` (or `HH:MM:SS`).
pub fn parse_time_of_day(text: &str) -> Result<Time, RuleError> {
    let bad = || RuleError::BadTime(text.to_owned());
    let fields: Vec<&str> = text.trim().split(':').collect();
    if !(2..=3).contains(&fields.len()) {
        return Err(bad());
    }
    let mut numbers = [0i8; 3];
    for ((field, number), max) in fields.iter().zip(&mut numbers).zip([23, 59, 59]) {
        if field.is_empty() || field.len() > 2 || !field.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        *number = field.parse().map_err(|_| bad())?;
        if *number > max {
            return Err(bad());
        }
    }
    Time::new(numbers[0], numbers[1], numbers[2], 0).map_err(|_| bad())
}

fn format_time_of_day(time: Time) -> String {
    if time.second() == 0 {
        format!("{:02}:{:02}", time.hour(), time.minute())
    } else {
        format!(
            "{:02}:{:02}:{:02}",
            time.hour(),
            time.minute(),
            time.second()
        )
    }
}

/// Checks that `name` is a time zone jiff knows.
pub fn validate_time_zone(name: &str) -> Result<TimeZone, RuleError> {
    TimeZone::get(name).map_err(|_| RuleError::UnknownTimeZone(name.to_owned()))
}

impl TryFrom<RawRule> for Rule {
    type Error = RuleError;

    fn try_from(raw: RawRule) -> Result<Self, RuleError> {
        let type_name = raw.kind_of_rule.trim();
        let window = |name: &'static str| -> Result<Window, RuleError> {
            raw.window
                .as_deref()
                .ok_or(RuleError::MissingWindow(name))?
                .parse()
                .map_err(RuleError::from)
        };
        let limit = |name: &'static str| -> Result<Limit, RuleError> {
            Limit::from_value(raw.value.ok_or(RuleError::MissingValue(name))?)
        };
        let spec = match type_name {
            "per_model" => RuleSpec::PerModel {
                model: parse_model(raw.model.clone())?,
                window: window("per_model")?,
                limit: limit("per_model")?,
            },
            "credits" => {
                if let Some(model) = parse_model(raw.model.clone())? {
                    return Err(RuleError::CreditsWithModel(model.to_string()));
                }
                RuleSpec::Credits {
                    window: window("credits")?,
                    limit: limit("credits")?,
                }
            }
            "tokens" => RuleSpec::Tokens {
                model: parse_model(raw.model.clone())?,
                window: window("tokens")?,
                limit: limit("tokens")?,
                kind: raw.kind.ok_or(RuleError::MissingTokenKind)?,
            },
            "time_of_day" => {
                let (Some(start), Some(end)) = (&raw.schedule_start, &raw.schedule_end) else {
                    return Err(RuleError::MissingSchedule);
                };
                let (start, end) = (parse_time_of_day(start)?, parse_time_of_day(end)?);
                if start == end {
                    return Err(RuleError::EmptySchedule(format_time_of_day(start)));
                }
                let tz = match raw.schedule_tz.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(name) => {
                        validate_time_zone(name)?;
                        Some(name.to_owned())
                    }
                };
                RuleSpec::TimeOfDay {
                    model: parse_model(raw.model.clone())?,
                    start,
                    end,
                    tz,
                }
            }
            "share" => {
                let value = raw.value.ok_or(RuleError::MissingValue("share"))?;
                let percent = u32::try_from(value)
                    .ok()
                    .filter(|p| (1..=100).contains(p))
                    .ok_or(RuleError::BadShare(value))?;
                let window = raw
                    .window
                    .as_deref()
                    .ok_or(RuleError::MissingWindow("share"))?
                    .parse()?;
                RuleSpec::Share { window, percent }
            }
            other => return Err(RuleError::UnknownType(other.to_owned())),
        };
        Ok(Rule { id: raw.id, spec })
    }
}

impl From<Rule> for RawRule {
    fn from(rule: Rule) -> Self {
        let mut raw = RawRule {
            id: rule.id,
            kind_of_rule: rule.spec.type_name().to_owned(),
            model: rule.spec.model().map(|m| m.to_string()),
            window: rule.spec.window().map(|w| w.to_string()),
            ..RawRule::default()
        };
        match rule.spec {
            RuleSpec::PerModel { limit, .. } | RuleSpec::Credits { limit, .. } => {
                raw.value = Some(limit.value());
            }
            RuleSpec::Tokens { limit, kind, .. } => {
                raw.value = Some(limit.value());
                raw.kind = Some(kind);
            }
            RuleSpec::TimeOfDay { start, end, tz, .. } => {
                raw.schedule_start = Some(format_time_of_day(start));
                raw.schedule_end = Some(format_time_of_day(end));
                raw.schedule_tz = tz;
            }
            RuleSpec::Share { window, percent } => {
                raw.window = Some(window.to_string());
                raw.value = Some(i64::from(percent));
            }
        }
        raw
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let model = |m: Option<ModelFamily>| m.map_or("all models".to_owned(), |m| m.to_string());
        match &self.spec {
            RuleSpec::PerModel {
                model: m,
                window,
                limit,
            } => write!(f, "{} prompts {window}: {}", model(*m), limit.value()),
            RuleSpec::Credits { window, limit } => write!(f, "credits {window}: {}", limit.value()),
            RuleSpec::Tokens {
                model: m,
                window,
                limit,
                kind,
            } => write!(
                f,
                "{} {} {window}: {}",
                model(*m),
                kind.phrase(),
                limit.value()
            ),
            RuleSpec::TimeOfDay {
                model: m,
                start,
                end,
                tz,
            } => write!(
                f,
                "{} allowed {}-{}{}",
                model(*m),
                format_time_of_day(*start),
                format_time_of_day(*end),
                tz.as_deref().map(|t| format!(" {t}")).unwrap_or_default()
            ),
            RuleSpec::Share { window, percent } => write!(
                f,
                "at most {percent} % of the subscription's {} window",
                window.phrase()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<Rule, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn share_rules_read_and_write_as_the_api_shows_them() {
        let text = json!({"type": "share", "window": "five_hour", "value": 40});
        let rule = parse(text).unwrap();
        assert_eq!(
            rule.spec,
            RuleSpec::Share {
                window: ShareWindow::FiveHour,
                percent: 40
            }
        );
        let back = serde_json::to_value(&rule).unwrap();
        assert_eq!(
            (back["window"].clone(), back["value"].clone()),
            (json!("five_hour"), json!(40))
        );
        assert!(parse(json!({"type": "share", "window": "five_hour", "value": 0})).is_err());
        assert!(parse(json!({"type": "share", "window": "five_hour", "value": 101})).is_err());
        assert!(parse(json!({"type": "share", "window": "daily", "value": 40})).is_err());
        assert!(parse(json!({"type": "share", "value": 40})).is_err());
    }

    #[test]
    fn peer_rule_objects_round_trip() {
        let peer = json!({"id": 4, "type": "per_model", "model": "opus", "window": "daily",
            "value": 5, "schedule_start": null, "schedule_end": null, "schedule_tz": null});
        let rule = parse(peer.clone()).unwrap();
        assert_eq!(
            rule.spec,
            RuleSpec::PerModel {
                model: Some(ModelFamily::Opus),
                window: Window::Daily,
                limit: Limit::AtMost(5)
            }
        );
        assert_eq!(serde_json::to_value(&rule).unwrap(), peer);
    }

    #[test]
    fn time_of_day_rules_parse_and_print_their_schedule() {
        let rule = parse(json!({"type": "time_of_day", "schedule_start": "22:00",
            "schedule_end": "6:30", "schedule_tz": "Asia/Tokyo"}))
        .unwrap();
        let value = serde_json::to_value(&rule).unwrap();
        assert_eq!(value["schedule_end"], "06:30");
        assert_eq!(value["schedule_tz"], "Asia/Tokyo");
        assert_eq!(value["model"], serde_json::Value::Null);
    }

    #[test]
    fn sentinels_map_to_limits() {
        assert_eq!(Limit::from_value(-1), Ok(Limit::Unlimited));
        assert_eq!(Limit::from_value(0), Ok(Limit::Forbidden));
        assert_eq!(Limit::from_value(7), Ok(Limit::AtMost(7)));
        assert_eq!(Limit::from_value(-2), Err(RuleError::BadValue(-2)));
    }

    #[test]
    fn invalid_rules_are_refused_with_the_reason() {
        let cases = [
            (
                json!({"type": "per_mdl", "window": "daily", "value": 1}),
                "unknown rule type",
            ),
            (
                json!({"type": "per_model", "model": "opus", "value": 1}),
                "needs a window",
            ),
            (
                json!({"type": "per_model", "model": "gpt", "window": "daily", "value": 1}),
                "unknown model family",
            ),
            (
                json!({"type": "per_model", "window": "hourly", "value": 1}),
                "unknown window",
            ),
            (
                json!({"type": "per_model", "window": "daily", "value": -3}),
                "got -3",
            ),
            (
                json!({"type": "credits", "model": "opus", "window": "daily", "value": 3}),
                "applies to all models",
            ),
            (
                json!({"type": "tokens", "window": "daily", "value": 3}),
                "needs a kind",
            ),
            (
                json!({"type": "time_of_day", "schedule_start": "9:00"}),
                "schedule_start and schedule_end",
            ),
            (
                json!({"type": "time_of_day", "schedule_start": "24:00", "schedule_end": "1:00"}),
                "not a time of day",
            ),
            (
                json!({"type": "time_of_day", "schedule_start": "09:00", "schedule_end": "09:00"}),
                "empty",
            ),
            (
                json!({"type": "time_of_day", "schedule_start": "09:00", "schedule_end": "17:00", "schedule_tz": "Mars/Olympus"}),
                "unknown time zone",
            ),
        ];
        for (value, expected) in cases {
            let error = parse(value.clone()).unwrap_err();
            assert!(error.contains(expected), "{value}: {error}");
        }
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(
            parse_time_of_day("07:05").unwrap(),
            Time::new(7, 5, 0, 0).unwrap()
        );
        assert_eq!(
            parse_time_of_day("23:59:30").unwrap(),
            Time::new(23, 59, 30, 0).unwrap()
        );
        for bad in [
            "", "7", "7:5:", "12:60", "-1:00", "ab:cd", "1:2:3:4", "123:00",
        ] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
    }
}
