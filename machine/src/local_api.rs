//! The daemon's local endpoints on its own port, as the `ccgate` command
//! reads them: their paths and the status report's shape.

use std::net::SocketAddr;

use ccgate_quota::UsageReport;
use ccgate_quota::wire::SubscriptionUsage;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// `GET`: the [`StatusReport`].
pub const STATUS_PATH: &str = "/ccgate/status";
/// `POST`: pull the policy from the server now.
pub const SYNC_PATH: &str = "/ccgate/sync";

/// How the link to the server is doing, for `ccgate status` and `doctor`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServerHealth {
    pub reachable: bool,
    pub last_contact_at: Option<Timestamp>,
    pub last_sync_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The live stream is open (policy changes arrive within a second).
    pub live_link: bool,
    /// The server refused this device's token.
    pub unauthorized: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub agent_version: String,
    pub started_at: Timestamp,
    pub listen: SocketAddr,
    pub server_url: String,
    pub device_id: i64,
    pub server: ServerHealth,
    /// The version of the policy in force, if one was ever received.
    pub policy_version: Option<u64>,
    /// Usage against every rule, as this machine knows it.
    pub report: Option<UsageReport>,
    pub subscription: Option<SubscriptionUsage>,
    /// This person's share of the subscription's windows (the server's estimate).
    #[serde(default)]
    pub window_shares: Vec<ccgate_quota::WindowShare>,
    /// Events on disk not yet acknowledged by the server.
    pub pending_events: u64,
    /// Events the server refused for good, kept aside on this machine.
    #[serde(default)]
    pub quarantined_events: u64,
    pub open_replies: usize,
    /// Events seen but not yet written to the ledger.
    #[serde(default)]
    pub pending_writes: usize,
    /// A problem with ccgate's own files that blocks prompts.
    pub integrity_problem: Option<String>,
    /// Server clock minus this machine's clock.
    pub clock_offset_ms: i64,
    /// `personal_login` or `team_credential`.
    #[serde(default)]
    pub credential_mode: Option<String>,
    /// In team-credential mode: whether the subscription's credential is here.
    #[serde(default)]
    pub team_credential_held: bool,
}
