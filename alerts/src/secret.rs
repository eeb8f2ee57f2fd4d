//! A string that must not be shown: webhook URLs with embedded tokens, API
//! tokens, passwords.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the API shows instead of a secret, and what an edited config sends
/// back for "unchanged".
pub const REDACTED: &str = "••••";

/// Serialises as the plain string (the caller encrypts configs at rest);
/// `Debug` never shows it, so configs can be logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The marker value.
    pub fn redacted() -> Self {
        Secret(REDACTED.to_owned())
    }

    pub fn is_redacted(&self) -> bool {
        self.0 == REDACTED
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_and_serde_is_plain() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
        let back: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(back.expose(), "hunter2");
        assert!(Secret::redacted().is_redacted());
        assert!(!s.is_redacted());
    }
}
