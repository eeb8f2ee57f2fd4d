//! An event a device reported (or the server recorded for it), as every
//! part of the server sees it (whatever backend stores it).

use ccgate_quota::{ModelFamily, Totals};
use jiff::Timestamp;

use super::EventType;

/// One stored event. `totals` is what it adds to the user's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event's UUID (the device's idempotency key: unique per device).
    pub id: String,
    pub user_id: i64,
    pub device_id: Option<i64>,
    /// When it happened (clamped by the server).
    pub at: Timestamp,
    pub received_at: Timestamp,
    pub event_type: EventType,
    pub model: Option<String>,
    pub family: Option<ModelFamily>,
    pub totals: Totals,
    pub kind: Option<String>,
    pub turn_key: Option<String>,
    pub session_id: Option<String>,
    pub detail: Option<serde_json::Value>,
    /// Why a `request` counted its prompt (`new_prompt`, `agent_turn`, …).
    pub count_reason: Option<String>,
    /// The token figures are the proxy's estimate (a cut or abandoned reply).
    pub estimated: bool,
    /// The credential a request went out with: `personal`, `team`,
    /// `personal_api_key` (`None`: not reported).
    pub credential: Option<String>,
}
