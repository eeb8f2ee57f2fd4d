//! The daemon's parts, put together: each stage owns its state behind a
//! narrow interface (policy, books, link health, outbox, credential vault,
//! open replies), and [`Shared`] only wires them and applies what a sync
//! brings to all of them.
//!
//! Locks: every component's lock is a leaf — held only inside that
//! component's own methods, never while another is taken — except the
//! books ([`Accounting`]), whose one lock covers both the turn tracker and
//! the local usage view because they change together.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ccgate_quota::wire::{CredentialUse, DeviceInfo, SubscriptionUsage, SyncResponse};
use ccgate_quota::{CompiledPolicy, ModelFamily, Policy, UsageReport, UserStatus};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::accounting::Accounting;
use crate::config::ProxyConfig;
use crate::credential::CredentialVault;
use crate::gate::Gate;
use crate::health::{LinkHealth, ServerHealth, SubscriptionSeen};
use crate::key_locks::KeyLocks;
use crate::ledger::Ledger;
use crate::link::ServerLink;
use crate::local::LocalEndpoints;
use crate::open_replies::{OpenReplies, OpenReply};
use crate::outbox::Outbox;
use crate::paths::Paths;
use crate::policy::PolicyState;
use crate::request_body::BodyBudget;
use crate::routes::RefusalLog;
use crate::tap::{Ending, EndingSink, OpenStreams};
use crate::turns::Resolution;

/// What a request carries from the gate to the recorder.
#[derive(Debug)]
pub struct Exchange {
    pub model: String,
    pub family: ModelFamily,
    pub resolution: Resolution,
    pub session_id: Option<String>,
    pub stream: bool,
    pub decided_offline: bool,
    pub credential: Option<CredentialUse>,
    /// The account the request named (personal logins).
    pub account: Option<String>,
    /// The subscription's utilization in the reply's headers.
    pub utilization: Option<SubscriptionUsage>,
    /// The request body's size, for an estimate when no usage comes back.
    pub request_bytes: usize,
    /// Open until the recorder has settled this reply (dropped with it).
    pub open: OpenReply,
}

/// The cached last sync, restored after a restart.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedSync {
    pub sync: SyncResponse,
    pub included_seq: i64,
}

pub const SAVED_SYNC_KEY: &str = "last_sync";

/// Reactions to policy changes that live outside the proxy core (logging
/// the person out on a kill, keeping the integrity manifest true, putting
/// the credential placeholder in managed settings).
pub trait Hooks: Send + Sync {
    fn killed(&self, _shared: &Arc<Shared>) {}
    fn token_rotated(&self, _shared: &Arc<Shared>) {}
    /// The credential mode (or what managed settings must say about it)
    /// may have changed; also called once at start.
    fn credential_mode(&self, _shared: &Arc<Shared>, _policy: &Policy) {}
}

pub struct NoHooks;
impl Hooks for NoHooks {}

/// A problem with ccgate's own files that blocks prompts until repaired.
#[derive(Debug, Default)]
pub struct IntegrityFlag(Mutex<Option<String>>);

impl IntegrityFlag {
    pub fn get(&self) -> Option<String> {
        self.0.lock().expect("integrity lock").clone()
    }

    pub fn set(&self, problem: Option<String>) {
        *self.0.lock().expect("integrity lock") = problem;
    }
}

/// The Claude Code version last seen in a request (`claude-cli/X.Y.Z`).
#[derive(Debug, Default)]
pub struct ClaudeVersion(Mutex<Option<String>>);

impl ClaudeVersion {
    /// Notes the version from a `User-Agent`; true when it is new.
    pub fn observe(&self, user_agent: &str) -> bool {
        let Some(version) = user_agent
            .strip_prefix("claude-cli/")
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|v| v.len() <= 32)
        else {
            return false;
        };
        let mut known = self.0.lock().expect("version lock");
        if known.as_deref() == Some(version) {
            return false;
        }
        *known = Some(version.to_owned());
        true
    }

    pub fn get(&self) -> Option<String> {
        self.0.lock().expect("version lock").clone()
    }
}

pub struct Shared {
    pub paths: Paths,
    pub config: ProxyConfig,
    /// Where the proxy listens (the config's address, or the test's port).
    pub address: SocketAddr,
    pub link: ServerLink,
    pub ledger: Ledger,
    pub streams: OpenStreams,
    pub started_at: Timestamp,
    pub device: DeviceInfo,
    pub claude_version: ClaudeVersion,
    pub policy_state: PolicyState,
    pub accounting: Accounting,
    pub link_health: LinkHealth,
    pub subscription: SubscriptionSeen,
    pub outbox: Outbox,
    pub vault: CredentialVault,
    pub integrity: IntegrityFlag,
    pub refusals: RefusalLog,
    pub local: LocalEndpoints,
    /// Memory for request bodies being read, shared by all requests.
    pub body_budget: BodyBudget,
    /// One prompt of a session at a time through the gate.
    pub prompt_locks: KeyLocks,
    /// Replies forwarded and not yet in the books, per session.
    pub open_replies: Arc<OpenReplies>,
    /// The server's agent release and the updater's progress.
    pub updates: crate::update::Updates,
    /// How other hosts are reached (the network's proxy, if it has one).
    pub egress: crate::egress::Egress,
    pub(crate) endings: EndingSink<Exchange>,
    pub sync_wakeup: Notify,
    pub hooks: Box<dyn Hooks>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        paths: Paths,
        config: ProxyConfig,
        address: SocketAddr,
        link: ServerLink,
        ledger: Ledger,
        device: DeviceInfo,
        endings: UnboundedSender<Ending<Exchange>>,
        hooks: Box<dyn Hooks>,
    ) -> Self {
        let outbox = Outbox::default();
        let vault = CredentialVault::load(&paths, &ledger, config.device_id);
        let body_budget = BodyBudget::new(config.max_buffered_bytes(), config.buffer_wait());
        // `daemon::start` refused a bad proxy URL before this.
        let egress =
            crate::egress::Egress::new(config.upstream_proxy.as_deref()).unwrap_or_default();
        Self {
            endings: EndingSink::new(endings, outbox.pending_writes_counter()),
            outbox,
            vault,
            paths,
            config,
            address,
            link,
            ledger,
            streams: OpenStreams::default(),
            started_at: Timestamp::now(),
            device,
            claude_version: ClaudeVersion::default(),
            policy_state: PolicyState::default(),
            accounting: Accounting::default(),
            link_health: LinkHealth::default(),
            subscription: SubscriptionSeen::default(),
            integrity: IntegrityFlag::default(),
            refusals: RefusalLog::default(),
            local: LocalEndpoints::default(),
            body_budget,
            prompt_locks: KeyLocks::default(),
            open_replies: Arc::default(),
            updates: crate::update::Updates::default(),
            egress,
            sync_wakeup: Notify::new(),
            hooks,
        }
    }

    /// The gate, with the parts it decides from.
    pub fn gate(&self) -> Gate<'_> {
        Gate {
            policy: &self.policy_state,
            accounting: &self.accounting,
            link: &self.link,
            health: &self.link_health,
            integrity: &self.integrity,
            check_timeout: self.config.check_timeout(),
            sync_wakeup: &self.sync_wakeup,
        }
    }

    /// What this device tells the server about itself at each sync.
    pub fn device_info(&self) -> DeviceInfo {
        DeviceInfo {
            claude_version: self.claude_version.get(),
            ..self.device.clone()
        }
    }

    /// Notes the Claude Code version of a request; a new one goes out with
    /// the next sync.
    pub fn observe_user_agent(&self, user_agent: &str) {
        if self.claude_version.observe(user_agent) {
            self.sync_wakeup.notify_one();
        }
    }

    pub fn policy(&self) -> Option<Arc<CompiledPolicy>> {
        self.policy_state.current()
    }

    pub fn now(&self) -> Timestamp {
        self.policy_state.now()
    }

    pub fn clock_offset(&self) -> SignedDuration {
        self.policy_state.clock_offset()
    }

    pub fn health(&self) -> ServerHealth {
        self.link_health.get()
    }

    pub fn integrity_problem(&self) -> Option<String> {
        self.integrity.get()
    }

    pub fn set_integrity_problem(&self, problem: Option<String>) {
        self.integrity.set(problem);
    }

    /// Replies ended and blocks decided whose events are not in the ledger
    /// yet. Zero means all is on disk.
    pub fn pending_writes(&self) -> usize {
        self.outbox.pending_writes()
    }

    /// Events kept in memory because the ledger could not store them.
    pub fn unsaved_count(&self) -> usize {
        self.outbox.unsaved_count()
    }

    /// The person's usage against their rules, as this proxy knows it.
    pub fn report(&self) -> Option<UsageReport> {
        let policy = self.policy()?;
        Some(self.accounting.report(&policy, self.now()))
    }

    /// Applies a sync from the server (an answer or a live push).
    /// `included_seq`: the ledger events the server had when it answered.
    pub fn apply_sync(self: &Arc<Self>, sync: SyncResponse, included_seq: i64, react: bool) {
        self.policy_state.set_server_time(sync.server_time);
        self.updates.offer(sync.agent_release.clone());
        if let Some(token) = &sync.new_device_token {
            match self.link.replace_token(token) {
                Ok(()) if react => self.hooks.token_rotated(self),
                Ok(()) => {}
                Err(e) => tracing::error!("cannot store the rotated device token: {e}"),
            }
        }
        let compiled = match CompiledPolicy::new(sync.policy.clone()) {
            Ok(compiled) => Arc::new(compiled),
            Err(e) => {
                tracing::error!(
                    "the server sent a policy this proxy cannot use, keeping the last one: {e}"
                );
                return;
            }
        };
        let Ok(previous) = self.policy_state.install(compiled.clone()) else {
            return; // an older push arriving late
        };
        self.accounting
            .set_snapshot(sync.usage.clone(), included_seq);
        self.link_health.synced();
        let policy = &compiled.policy;
        let saved = SavedSync {
            sync: SyncResponse {
                new_device_token: None,
                ..sync
            },
            included_seq,
        };
        if let Err(e) = self.ledger.put(
            SAVED_SYNC_KEY,
            &serde_json::to_string(&saved).expect("serializes"),
        ) {
            tracing::warn!("cannot cache the policy in the ledger: {e}");
        }
        if policy.status != UserStatus::Active {
            let cut = self.streams.cut_all(policy.status);
            if cut > 0 {
                tracing::info!("user is {}: cut {cut} open replies", policy.status.as_str());
            }
        }
        self.credential_mode_changed(previous.as_deref().map(|p| &p.policy), policy);
        let was_killed = previous.is_some_and(|p| p.policy.status == UserStatus::Killed);
        if react && policy.status == UserStatus::Killed && !was_killed {
            self.hooks.killed(self);
        }
    }

    /// Keeps the vault and managed settings in step with the credential mode.
    fn credential_mode_changed(self: &Arc<Self>, previous: Option<&Policy>, policy: &Policy) {
        let settings_view = |p: &Policy| (p.credential, p.personal_api_keys);
        if previous.map(settings_view) != Some(settings_view(policy)) {
            if matches!(
                policy.credential,
                ccgate_quota::CredentialMode::PersonalLogin
            ) {
                self.vault.forget();
            }
            self.hooks.credential_mode(self, policy);
        }
        if self.vault.needs_fetch(&policy.credential) {
            self.vault.wakeup.notify_one();
        }
    }
}
