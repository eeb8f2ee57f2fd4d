//! Small domain types shared by the database, the in-memory state and the APIs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod account;
mod alert;
mod audit;
mod device;
mod event;
mod identity;
mod person;
mod subscription;

pub use account::{Account, ApiToken};
pub use alert::{AlertChannel, AlertDelivery, RaisedAlert};
pub use audit::AuditEntry;
pub use device::Device;
pub use event::Event;
pub use identity::Identity;
pub use person::{Person, PersonChanges};
pub use subscription::{Subscription, SubscriptionOrigin};

/// What kind of client a device token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// ccgate-proxy, on the agent API.
    Proxy,
    /// A claude-code-limiter hook client, on the hook API.
    Hook,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Hook => "hook",
        }
    }
}

impl FromStr for DeviceKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "proxy" => Ok(Self::Proxy),
            "hook" => Ok(Self::Hook),
            other => Err(format!("unknown device kind {other:?}")),
        }
    }
}

/// What an install code is for: `ccgate setup` (the agent API), or
/// migrating a claude-code-limiter machine (the hook API). Each API takes
/// only its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    Setup,
    Hook,
}

impl CodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Hook => "hook",
        }
    }

    /// The kind of code a device of `kind` registers with.
    pub fn for_device(kind: DeviceKind) -> Self {
        match kind {
            DeviceKind::Proxy => Self::Setup,
            DeviceKind::Hook => Self::Hook,
        }
    }
}

/// What a stored event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// A Messages API call: its model and token usage, and whether it
    /// counted a prompt.
    Request,
    /// A prompt the device or the server refused.
    Blocked,
    /// A turn the device let go without counting it (settles its hold).
    TurnReleased,
    /// The proxy found its files or settings changed.
    Tamper,
    /// The proxy could not deliver events (quarantined a spool file).
    DeliveryFault,
    /// The proxy updated itself, or tried to.
    AgentUpdate,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Blocked => "blocked",
            Self::TurnReleased => "turn_released",
            Self::Tamper => "tamper",
            Self::DeliveryFault => "delivery_fault",
            Self::AgentUpdate => "agent_update",
        }
    }
}

/// What an admin login or API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Read only: every GET, no change.
    Viewer,
    /// A person signed in through single sign-on: their own page only.
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Self::Admin),
            "viewer" => Ok(Self::Viewer),
            "member" => Ok(Self::Member),
            other => Err(format!(
                "unknown role {other:?} (expected admin, viewer or member)"
            )),
        }
    }
}

/// What a device has told the server about itself (every field optional:
/// hook clients send less than proxies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDetails {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub arch: Option<String>,
    pub os_user: Option<String>,
    pub os_version: Option<String>,
    pub claude_version: Option<String>,
    pub agent_version: Option<String>,
    /// SHA-256 of the installed daemon binary (proxies only).
    #[serde(default)]
    pub agent_build: Option<String>,
}

impl From<&ccgate_quota::wire::DeviceInfo> for DeviceDetails {
    fn from(info: &ccgate_quota::wire::DeviceInfo) -> Self {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Self {
            hostname: some(&info.hostname),
            os: some(&info.os),
            arch: some(&info.arch),
            os_user: info.os_user.clone(),
            os_version: info.os_version.clone(),
            claude_version: info.claude_version.clone(),
            agent_version: some(&info.agent_version),
            agent_build: info.agent_build.clone(),
        }
    }
}

impl DeviceDetails {
    /// Longest value kept per field; devices are not trusted to be brief.
    const MAX_FIELD: usize = 200;

    pub fn truncated(mut self) -> Self {
        for field in [
            &mut self.hostname,
            &mut self.os,
            &mut self.arch,
            &mut self.os_user,
            &mut self.os_version,
            &mut self.claude_version,
            &mut self.agent_version,
            &mut self.agent_build,
        ] {
            if let Some(value) = field
                && value.len() > Self::MAX_FIELD
            {
                let mut end = Self::MAX_FIELD;
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                value.truncate(end);
            }
        }
        self
    }
}

/// The two windows of Anthropic's subscription limits every plan has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanWindow {
    FiveHour,
    SevenDay,
}

impl PlanWindow {
    /// The window's name in the headers (`5h`, `7d`).
    pub fn header_name(self) -> &'static str {
        match self {
            Self::FiveHour => ccgate_quota::wire::FIVE_HOUR,
            Self::SevenDay => ccgate_quota::wire::SEVEN_DAY,
        }
    }

    /// How it reads in a sentence.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::FiveHour => "5-hour",
            Self::SevenDay => "weekly",
        }
    }

    pub fn length(self) -> jiff::SignedDuration {
        match self {
            Self::FiveHour => jiff::SignedDuration::from_hours(5),
            Self::SevenDay => jiff::SignedDuration::from_hours(24 * 7),
        }
    }
}
