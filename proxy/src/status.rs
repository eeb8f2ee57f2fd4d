//! The local, read-only status endpoint (`GET /ccgate/status` on the proxy
//! port), which `ccgate status` and `ccgate doctor` read; the report's shape
//! is shared with them in `ccgate_machine::local_api`.

pub use ccgate_machine::local_api::{STATUS_PATH, StatusReport};

use crate::state::Shared;

/// What the status endpoint answers, from the daemon's state.
pub fn collect(shared: &Shared) -> StatusReport {
    StatusReport {
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: shared.started_at,
        listen: shared.address,
        server_url: shared.link.server_url().to_owned(),
        device_id: shared.config.device_id,
        server: shared.health(),
        policy_version: shared.policy().map(|p| p.policy.version),
        report: shared.report(),
        subscription: shared.subscription.latest(),
        window_shares: shared.accounting.window_shares(),
        pending_events: shared.ledger.unacked_count().unwrap_or(0) + shared.unsaved_count() as u64,
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
