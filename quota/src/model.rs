//! Model families: every model id maps to one family by substring, so that new
//! model versions (`claude-opus-5-5`, `claude-opus-4-1-20250805`) need no change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The family of a model, the unit that limits and credit weights are set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelFamily {
    Opus,
    Sonnet,
    Haiku,
    Other,
}

impl ModelFamily {
    pub const ALL: [ModelFamily; 4] = [Self::Opus, Self::Sonnet, Self::Haiku, Self::Other];

    /// Reduces a full model id (or a family name) to its family.
    pub fn from_model_id(model: &str) -> Self {
        let lower = model.to_ascii_lowercase();
        if lower.contains("opus") {
            Self::Opus
        } else if lower.contains("sonnet") {
            Self::Sonnet
        } else if lower.contains("haiku") {
            Self::Haiku
        } else {
            Self::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opus => "opus",
            Self::Sonnet => "sonnet",
            Self::Haiku => "haiku",
            Self::Other => "other",
        }
    }

    /// Position in [`ModelFamily::ALL`], for per-family arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a family name that is none of `opus`, `sonnet`, `haiku`, `other`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model family {0:?} (expected opus, sonnet, haiku or other)")]
pub struct UnknownFamily(pub String);

impl FromStr for ModelFamily {
    type Err = UnknownFamily;

    /// Strict parse of a family name; `default` is the peer's name for `other`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "opus" => Ok(Self::Opus),
            "sonnet" => Ok(Self::Sonnet),
            "haiku" => Ok(Self::Haiku),
            "other" | "default" => Ok(Self::Other),
            _ => Err(UnknownFamily(name.to_owned())),
        }
    }
}

impl Serialize for ModelFamily {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ModelFamily {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Credits a prompt costs, by family. The peer's defaults: opus 10, sonnet 3, haiku 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditWeights {
    pub opus: u32,
    pub sonnet: u32,
    pub haiku: u32,
    /// Models of no known family; the peer calls them `default`.
    #[serde(alias = "default", default = "default_other_weight")]
    pub other: u32,
}

fn default_other_weight() -> u32 {
    CreditWeights::default().other
}

impl Default for CreditWeights {
    fn default() -> Self {
        Self {
            opus: 10,
            sonnet: 3,
            haiku: 1,
            other: 3,
        }
    }
}

impl CreditWeights {
    pub fn weight(&self, family: ModelFamily) -> u64 {
        u64::from(match family {
            ModelFamily::Opus => self.opus,
            ModelFamily::Sonnet => self.sonnet,
            ModelFamily::Haiku => self.haiku,
            ModelFamily::Other => self.other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_reduce_to_their_family() {
        let cases = [
            ("claude-opus-5-5", ModelFamily::Opus),
            ("claude-opus-4-1-20250805", ModelFamily::Opus),
            ("claude-sonnet-5", ModelFamily::Sonnet),
            ("claude-3-5-sonnet-latest", ModelFamily::Sonnet),
            ("claude-haiku-4-5-20251001", ModelFamily::Haiku),
            ("CLAUDE-HAIKU-5-5", ModelFamily::Haiku),
            ("claude-instant-1", ModelFamily::Other),
            ("", ModelFamily::Other),
        ];
        for (id, family) in cases {
            assert_eq!(ModelFamily::from_model_id(id), family, "{id}");
        }
    }

    #[test]
    fn family_names_parse_strictly_and_accept_the_peer_alias() {
        assert_eq!("default".parse::<ModelFamily>(), Ok(ModelFamily::Other));
        assert_eq!(" Opus ".parse::<ModelFamily>(), Ok(ModelFamily::Opus));
        assert!("claude-opus-5".parse::<ModelFamily>().is_err());
    }

    #[test]
    fn weights_accept_the_peer_shape_and_fill_other() {
        let w: CreditWeights = serde_json::from_str(r#"{"opus":10,"sonnet":3,"haiku":1}"#).unwrap();
        assert_eq!(w.weight(ModelFamily::Other), 3);
        let w: CreditWeights =
            serde_json::from_str(r#"{"opus":7,"sonnet":2,"haiku":1,"default":5}"#).unwrap();
        assert_eq!(w.weight(ModelFamily::Other), 5);
        assert_eq!(w.weight(ModelFamily::Opus), 7);
    }
}
