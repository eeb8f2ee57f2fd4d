//! The state every handler shares.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::hub::Hub;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::ratelimit::FailureLimiter;
use crate::vault::Vault;
use crate::writer::EventWriter;

#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: ServerConfig,
    /// Where every use case reads and writes the record.
    pub store: crate::store::Store,
    pub live: Live,
    /// Seals and opens subscription credentials with the server key.
    pub vault: Vault,
    pub hub: Hub,
    pub metrics: Metrics,
    pub writer: EventWriter,
    pub login_limiter: FailureLimiter,
    /// Bounds concurrent argon2id work (logins, password changes).
    pub passwords: crate::secrets::PasswordWork,
    pub register_limiter: FailureLimiter,
    /// Turns true when the server shuts down; long-lived streams end then.
    pub shutdown: watch::Receiver<bool>,
    pub local_addr: SocketAddr,
    /// The agent binaries served to developer machines, if any.
    pub agent: Option<crate::agent_bundle::AgentBundle>,
    pub alerts: crate::alerts::Alerts,
    /// Each subscription's windows, attributed to people.
    pub shares: crate::service::shares::ShareBook,
    /// The OpenID provider people sign in with, if single sign-on is on.
    pub sso: Option<crate::sso::Provider>,
    /// Whether this replica raises alerts (always, on SQLite).
    pub leadership: crate::replicas::Leadership,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    pub fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    /// The agent release devices are told about, if the server has one.
    pub fn agent_release(&self) -> Option<&ccgate_quota::release::AgentRelease> {
        self.agent.as_ref().map(|bundle| &bundle.release)
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Completes once `shutdown` turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; it is dropped here at once.
    let _ = shutdown.wait_for(|stop| *stop).await;
}
