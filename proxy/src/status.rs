//! The local, read-only status endpoint (`GET /ccgate/status` on the proxy
//! port), which `ccgate status` and `ccgate doctor` read.

use std::net::SocketAddr;

use ccgate_quota::UsageReport;
use ccgate_quota::wire::SubscriptionUsage;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::health::ServerHealth;
use crate::state::Shared;

pub use crate::local::STATUS_PATH;

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

impl StatusReport {
    pub fn collect(shared: &Shared) -> Self {
        Self {
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: shared.started_at,
            listen: shared.address,
            server_url: shared.link.server_url().to_owned(),
            device_id: shared.config.device_id,
            server: shared.health(),
            policy_version: shared.policy().map(|p| p.policy.version),
            report: shared.report(),
            subscription: shared.subscription.latest(),
            pending_events: shared.ledger.unacked_count().unwrap_or(0)
                + shared.unsaved_count() as u64,
            quarantined_events: shared.ledger.quarantined_count().unwrap_or(0),
            open_replies: shared.streams.open_count(),
            pending_writes: shared.pending_writes(),
            integrity_problem: shared.integrity_problem(),
            clock_offset_ms: shared.clock_offset().as_millis() as i64,
            credential_mode: shared.policy().map(|p| match p.policy.credential {
                ccgate_quota::CredentialMode::PersonalLogin => "personal_login".to_owned(),
                ccgate_quota::CredentialMode::TeamCredential { .. } => "team_credential".to_owned(),
            }),
            team_credential_held: shared.vault.holds_secret(),
        }
    }
}
