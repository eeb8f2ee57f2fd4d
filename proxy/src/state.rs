//! The daemon's shared state: the current policy, the local usage view,
//! the turn table, the ledger and the server link, and the gate decision
//! that uses them all.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ccgate_quota::wire::{
    AgentEvent, CheckRequest, DeviceInfo, RequestKind, SubscriptionUsage, SyncResponse,
};
use ccgate_quota::{
    CompiledPolicy, DenyReason, GateKind, GateRequest, ModelFamily, UnidentifiedClients,
    UsageReport, UserStatus, evaluate,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

use crate::classify::RequestFacts;
use crate::config::ProxyConfig;
use crate::ledger::Ledger;
use crate::link::{LinkError, ServerLink};
use crate::local_usage::LocalUsage;
use crate::paths::Paths;
use crate::tap::{Ending, EndingSink, OpenStreams};
use crate::turns::{Resolution, TurnTable};

/// What a request carries from the gate to the recorder.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub model: String,
    pub family: ModelFamily,
    pub kind: RequestKind,
    pub turn_key: Option<String>,
    pub session_id: Option<String>,
    /// A prompt that counts if this reply succeeds.
    pub prompt_attempt: bool,
    pub stream: bool,
    pub decided_offline: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass {
        decided_offline: bool,
    },
    Block {
        reason: DenyReason,
        message: String,
        decided_offline: bool,
        /// The server refused it (and recorded the block itself).
        by_server: bool,
    },
}

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

/// The cached last sync, restored after a restart.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedSync {
    pub sync: SyncResponse,
    pub included_seq: i64,
}

pub const SAVED_SYNC_KEY: &str = "last_sync";

/// Reactions to policy changes that live outside the proxy core
/// (logging the user out on a kill, keeping the integrity manifest true).
pub trait Hooks: Send + Sync {
    fn killed(&self, _shared: &Shared) {}
    fn token_rotated(&self, _shared: &Shared) {}
}

pub struct NoHooks;
impl Hooks for NoHooks {}

pub struct Shared {
    pub paths: Paths,
    pub config: ProxyConfig,
    pub link: ServerLink,
    pub ledger: Ledger,
    pub streams: OpenStreams,
    pub started_at: Timestamp,
    pub device: DeviceInfo,
    /// The Claude Code version last seen in a request (`claude-cli/X.Y.Z`).
    claude_version: Mutex<Option<String>>,
    policy: RwLock<Option<Arc<CompiledPolicy>>>,
    pub(crate) usage: Mutex<LocalUsage>,
    pub(crate) turns: Mutex<TurnTable>,
    health: Mutex<ServerHealth>,
    subscription: Mutex<(Option<SubscriptionUsage>, bool)>,
    /// Server time minus local time, in ms, from the last answer.
    clock_offset_ms: AtomicI64,
    /// Every ledger event up to this sequence number is acknowledged.
    pub(crate) acked_through: AtomicI64,
    /// A problem with ccgate's own files that blocks prompts.
    integrity_problem: Mutex<Option<String>>,
    pub(crate) endings: EndingSink<Exchange>,
    /// Replies ended and blocks decided whose events are not in the ledger yet.
    pub(crate) pending_writes: Arc<AtomicUsize>,
    /// Events the ledger could not store, sent from memory.
    pub(crate) unsaved: Mutex<Vec<AgentEvent>>,
    pub sender_wakeup: Notify,
    pub sync_wakeup: Notify,
    pub hooks: Box<dyn Hooks>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        paths: Paths,
        config: ProxyConfig,
        link: ServerLink,
        ledger: Ledger,
        device: DeviceInfo,
        endings: UnboundedSender<Ending<Exchange>>,
        hooks: Box<dyn Hooks>,
    ) -> Self {
        let pending_writes = Arc::new(AtomicUsize::new(0));
        Self {
            paths,
            config,
            link,
            ledger,
            streams: OpenStreams::default(),
            started_at: Timestamp::now(),
            device,
            claude_version: Mutex::new(None),
            policy: RwLock::new(None),
            usage: Mutex::new(LocalUsage::new()),
            turns: Mutex::new(TurnTable::new()),
            health: Mutex::new(ServerHealth::default()),
            subscription: Mutex::new((None, false)),
            clock_offset_ms: AtomicI64::new(0),
            acked_through: AtomicI64::new(0),
            integrity_problem: Mutex::new(None),
            endings: EndingSink::new(endings, pending_writes.clone()),
            pending_writes,
            unsaved: Mutex::new(Vec::new()),
            sender_wakeup: Notify::new(),
            sync_wakeup: Notify::new(),
            hooks,
        }
    }

    /// What this device tells the server about itself at each sync.
    pub fn device_info(&self) -> DeviceInfo {
        DeviceInfo {
            claude_version: self.claude_version.lock().expect("version lock").clone(),
            ..self.device.clone()
        }
    }

    /// Notes the Claude Code version from a request's `User-Agent`
    /// (`claude-cli/2.1.330 (external, cli)`); a newer one is reported at
    /// the next sync.
    pub fn observe_user_agent(&self, user_agent: &str) {
        let Some(version) = user_agent
            .strip_prefix("claude-cli/")
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|v| v.len() <= 32)
        else {
            return;
        };
        let mut known = self.claude_version.lock().expect("version lock");
        if known.as_deref() != Some(version) {
            *known = Some(version.to_owned());
            self.sync_wakeup.notify_one();
        }
    }

    pub fn policy(&self) -> Option<Arc<CompiledPolicy>> {
        self.policy.read().expect("policy lock").clone()
    }

    /// Now, by the server's clock as seen at the last answer.
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_millis(self.clock_offset_ms.load(Ordering::Relaxed));
        Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| Timestamp::now())
    }

    pub fn clock_offset(&self) -> SignedDuration {
        SignedDuration::from_millis(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    pub fn health(&self) -> ServerHealth {
        self.health.lock().expect("health lock").clone()
    }

    pub fn set_live_link(&self, open: bool) {
        self.health.lock().expect("health lock").live_link = open;
    }

    pub fn server_answered(&self) {
        let mut health = self.health.lock().expect("health lock");
        health.reachable = true;
        health.unauthorized = false;
        health.last_contact_at = Some(Timestamp::now());
        health.last_error = None;
    }

    pub fn server_failed(&self, error: &LinkError) {
        let mut health = self.health.lock().expect("health lock");
        health.reachable = error.server_answered() && !matches!(error, LinkError::Unauthorized);
        health.unauthorized = matches!(error, LinkError::Unauthorized);
        health.last_error = Some(error.to_string());
    }

    /// Events seen but not yet in the ledger (a reply's ending in the
    /// recorder's queue, a block being stored). Zero means all is on disk.
    pub fn pending_writes(&self) -> usize {
        self.pending_writes.load(Ordering::Acquire)
    }

    /// Events kept in memory because the ledger could not store them.
    pub fn unsaved_count(&self) -> usize {
        self.unsaved.lock().expect("unsaved lock").len()
    }

    pub fn integrity_problem(&self) -> Option<String> {
        self.integrity_problem
            .lock()
            .expect("integrity lock")
            .clone()
    }

    pub fn set_integrity_problem(&self, problem: Option<String>) {
        *self.integrity_problem.lock().expect("integrity lock") = problem;
    }

    /// Keeps the latest subscription utilization to send with the next batch.
    pub fn observe_subscription(&self, usage: SubscriptionUsage) {
        let mut slot = self.subscription.lock().expect("subscription lock");
        if slot
            .0
            .as_ref()
            .is_none_or(|old| old.observed_at <= usage.observed_at)
        {
            *slot = (Some(usage), true);
        }
    }

    pub fn subscription(&self) -> Option<SubscriptionUsage> {
        self.subscription
            .lock()
            .expect("subscription lock")
            .0
            .clone()
    }

    /// The subscription usage not yet sent, marking it sent.
    pub(crate) fn take_unsent_subscription(&self) -> Option<SubscriptionUsage> {
        let mut slot = self.subscription.lock().expect("subscription lock");
        std::mem::take(&mut slot.1)
            .then(|| slot.0.clone())
            .flatten()
    }

    pub(crate) fn resend_subscription(&self) {
        let mut slot = self.subscription.lock().expect("subscription lock");
        slot.1 = slot.0.is_some();
    }

    /// The user's usage against their rules, as this proxy knows it.
    pub fn report(&self) -> Option<UsageReport> {
        let policy = self.policy()?;
        let turns = self.turns.lock().expect("turns lock");
        let usage = self.usage.lock().expect("usage lock");
        let reserved = turns.reserved_usage(&policy.policy.credit_weights);
        Some(UsageReport::build(
            &policy,
            &usage.source(reserved),
            self.now(),
        ))
    }

    /// Applies a sync from the server (an answer or a live push).
    /// `included_seq`: the ledger events the server had when it answered.
    pub fn apply_sync(&self, sync: SyncResponse, included_seq: i64, react: bool) {
        let offset = sync.server_time.duration_since(Timestamp::now());
        self.clock_offset_ms
            .store(offset.as_millis() as i64, Ordering::Relaxed);
        if let Some(token) = &sync.new_device_token {
            match self.link.replace_token(token) {
                Ok(()) => {
                    if react {
                        self.hooks.token_rotated(self);
                    }
                }
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
        let previous = {
            let mut slot = self.policy.write().expect("policy lock");
            if slot
                .as_ref()
                .is_some_and(|old| old.policy.version > compiled.policy.version)
            {
                // An older push arriving late.
                return;
            }
            slot.replace(compiled.clone())
        };
        self.usage
            .lock()
            .expect("usage lock")
            .set_snapshot(sync.usage.clone(), included_seq);
        self.health.lock().expect("health lock").last_sync_at = Some(Timestamp::now());
        let status = compiled.policy.status;
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
        if status != UserStatus::Active {
            let cut = self.streams.cut_all();
            if cut > 0 {
                tracing::info!("user is {}: cut {cut} open replies", status.as_str());
            }
        }
        let was_killed = previous.is_some_and(|p| p.policy.status == UserStatus::Killed);
        if react && status == UserStatus::Killed && !was_killed {
            self.hooks.killed(self);
        }
    }

    /// Decides whether a request may go to Anthropic.
    pub async fn gate(
        &self,
        resolution: &Resolution,
        facts: &RequestFacts,
        family: ModelFamily,
    ) -> Verdict {
        match resolution {
            Resolution::NewPrompt { turn_key } => self.gate_prompt(turn_key, facts, family).await,
            // Retries of an allowed prompt and everything that is not a
            // prompt answer only to status and hard token budgets.
            Resolution::PromptRetry { .. } | Resolution::Other { .. } => {
                self.decide_locally(family, GateKind::Continuation, None)
            }
        }
    }

    async fn gate_prompt(
        &self,
        turn_key: &str,
        facts: &RequestFacts,
        family: ModelFamily,
    ) -> Verdict {
        if let Some(problem) = self.integrity_problem() {
            return block(DenyReason::Integrity, integrity_message(&problem), false);
        }
        if !facts.identified()
            && self
                .policy()
                .is_some_and(|p| p.policy.unidentified_clients == UnidentifiedClients::Deny)
        {
            return block(
                DenyReason::UnidentifiedClient,
                "ccgate blocked this request: it does not come from Claude Code (no turn fields), and your team's ccgate policy allows only Claude Code. Use the claude CLI, or ask your admin.".to_owned(),
                false,
            );
        }
        let request = CheckRequest {
            turn_key: turn_key.to_owned(),
            model: facts.model.clone(),
            session_id: facts.session_id.clone(),
        };
        match self.link.check(&request, self.config.check_timeout()).await {
            Ok(answer) => {
                self.server_answered();
                if answer.policy_version > self.policy().map_or(0, |p| p.policy.version) {
                    self.sync_wakeup.notify_one();
                }
                if answer.allowed {
                    self.turns.lock().expect("turns lock").reserve(
                        turn_key,
                        family,
                        false,
                        self.now(),
                    );
                    Verdict::Pass {
                        decided_offline: false,
                    }
                } else {
                    Verdict::Block {
                        reason: answer.reason.unwrap_or(DenyReason::PerModel),
                        message: answer
                            .message
                            .unwrap_or_else(|| "ccgate blocked this prompt.".to_owned())
                            .replace('"', "'"),
                        decided_offline: false,
                        by_server: true,
                    }
                }
            }
            Err(LinkError::Unauthorized) => {
                self.server_failed(&LinkError::Unauthorized);
                block(
                    DenyReason::NoPolicy,
                    format!(
                        "ccgate blocked this prompt: the ccgate server at {} no longer accepts this machine (the device was removed or its token revoked). Ask your admin for a new install code and run sudo ccgate setup again.",
                        self.link.server_url()
                    ),
                    false,
                )
            }
            Err(error) => {
                tracing::warn!("deciding locally: {error}");
                self.server_failed(&error);
                self.decide_locally(family, GateKind::Prompt, Some(turn_key))
            }
        }
    }

    /// Decides from the cached policy and local usage; an allowed prompt is
    /// reserved under the same lock, so two sessions cannot both take the
    /// last unit.
    pub fn decide_locally(
        &self,
        family: ModelFamily,
        kind: GateKind,
        reserve: Option<&str>,
    ) -> Verdict {
        let offline = reserve.is_some();
        let Some(policy) = self.policy() else {
            return block(DenyReason::NoPolicy, self.no_policy_message(), offline);
        };
        let now = self.now();
        let mut turns = self.turns.lock().expect("turns lock");
        let decision = {
            let usage = self.usage.lock().expect("usage lock");
            let reserved = turns.reserved_usage(&policy.policy.credit_weights);
            evaluate(
                &policy,
                &usage.source(reserved),
                GateRequest { family, kind, now },
            )
        };
        match decision.denial {
            None => {
                if let Some(turn_key) = reserve {
                    turns.reserve(turn_key, family, true, now);
                }
                Verdict::Pass {
                    decided_offline: offline,
                }
            }
            Some(denial) => block(denial.reason, denial.message, offline),
        }
    }

    fn no_policy_message(&self) -> String {
        let health = self.health();
        let why = health
            .last_error
            .unwrap_or_else(|| "it has not answered yet".to_owned());
        format!(
            "ccgate blocked this prompt: this machine has no ccgate policy yet, and without one ccgate refuses all use (it fails closed). The ccgate server at {} could not be reached: {why}. Check the network, then run sudo ccgate sync; ccgate doctor shows what is wrong.",
            self.link.server_url()
        )
    }
}

/// A block decided here, without the server.
fn block(reason: DenyReason, message: String, decided_offline: bool) -> Verdict {
    Verdict::Block {
        reason,
        message: message.replace('"', "'"),
        decided_offline,
        by_server: false,
    }
}

fn integrity_message(problem: &str) -> String {
    format!(
        "ccgate blocked this prompt: ccgate's own files were changed and could not be restored ({problem}). Until this is repaired, prompts stay blocked. An admin can repair it with sudo ccgate setup on this machine."
    )
}
