//! The gate: whether a request may go to Anthropic. Prompts ask the server
//! (which reserves them, so sessions on several machines cannot all pass the
//! last unit); when it cannot be reached, the gate decides from the cached
//! policy and the books, and reserves locally. Everything that is not a
//! prompt answers only to status and hard token budgets, decided locally.

use std::time::Duration;

use ccgate_quota::wire::CheckRequest;
use ccgate_quota::{DenyReason, GateKind, GateRequest, ModelFamily, UnidentifiedClients};
use tokio::sync::Notify;

use crate::accounting::Accounting;
use crate::classify::RequestFacts;
use crate::health::LinkHealth;
use crate::link::{LinkError, ServerLink};
use crate::policy::PolicyState;
use crate::state::IntegrityFlag;
use crate::turns::Resolution;

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

/// A block decided here, without the server.
pub fn block(reason: DenyReason, message: String, decided_offline: bool) -> Verdict {
    Verdict::Block {
        reason,
        message: message.replace('"', "'"),
        decided_offline,
        by_server: false,
    }
}

pub struct Gate<'a> {
    pub policy: &'a PolicyState,
    pub accounting: &'a Accounting,
    pub link: &'a ServerLink,
    pub health: &'a LinkHealth,
    pub integrity: &'a IntegrityFlag,
    pub check_timeout: Duration,
    pub sync_wakeup: &'a Notify,
}

impl Gate<'_> {
    pub async fn decide(
        &self,
        resolution: &Resolution,
        facts: &RequestFacts,
        family: ModelFamily,
    ) -> Verdict {
        match resolution {
            Resolution::Prompt { .. } => self.prompt(resolution, facts, family).await,
            // Retries of an allowed prompt, a message typed during a turn and
            // everything charged to a turn answer only to status and hard
            // token budgets.
            _ => self.locally(family, GateKind::Continuation, None),
        }
    }

    async fn prompt(
        &self,
        resolution: &Resolution,
        facts: &RequestFacts,
        family: ModelFamily,
    ) -> Verdict {
        if let Some(problem) = self.integrity.get() {
            return block(DenyReason::Integrity, integrity_message(&problem), false);
        }
        let policy = self.policy.current();
        if !facts.identified()
            && policy
                .as_ref()
                .is_some_and(|p| p.policy.unidentified_clients == UnidentifiedClients::Deny)
        {
            return block(
                DenyReason::UnidentifiedClient,
                "ccgate blocked this request: it does not come from Claude Code (no turn fields), and your team's ccgate policy allows only Claude Code. Use the claude CLI, or ask your admin.".to_owned(),
                false,
            );
        }
        let request = CheckRequest {
            turn_key: resolution.key().to_string(),
            model: facts.model.clone(),
            session_id: facts.session_id.clone(),
        };
        match self.link.check(&request, self.check_timeout).await {
            Ok(answer) => {
                self.health.answered();
                if answer.policy_version > self.policy.version() {
                    self.sync_wakeup.notify_one();
                }
                if answer.allowed {
                    self.accounting
                        .reserve(resolution, facts, self.policy.now());
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
                self.health.failed(&LinkError::Unauthorized);
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
                self.health.failed(&error);
                self.locally(family, GateKind::Prompt, Some((resolution, facts)))
            }
        }
    }

    /// Decides from the cached policy and the books; an allowed prompt is
    /// reserved under the books' lock, so two sessions cannot both take the
    /// last unit.
    pub fn locally(
        &self,
        family: ModelFamily,
        kind: GateKind,
        reserve: Option<(&Resolution, &RequestFacts)>,
    ) -> Verdict {
        let offline = reserve.is_some();
        let Some(policy) = self.policy.current() else {
            return block(DenyReason::NoPolicy, self.no_policy_message(), offline);
        };
        let now = self.policy.now();
        let decision = self
            .accounting
            .decide(&policy, GateRequest { family, kind, now }, reserve);
        match decision.denial {
            None => Verdict::Pass {
                decided_offline: offline,
            },
            Some(denial) => block(denial.reason, denial.message, offline),
        }
    }

    fn no_policy_message(&self) -> String {
        let why = self
            .health
            .get()
            .last_error
            .unwrap_or_else(|| "it has not answered yet".to_owned());
        format!(
            "ccgate blocked this prompt: this machine has no ccgate policy yet, and without one ccgate refuses all use (it fails closed). The ccgate server at {} could not be reached: {why}. Check the network, then run sudo ccgate sync; ccgate doctor shows what is wrong.",
            self.link.server_url()
        )
    }
}

fn integrity_message(problem: &str) -> String {
    format!(
        "ccgate blocked this prompt: ccgate's own files were changed and could not be restored ({problem}). Until this is repaired, prompts stay blocked. An admin can repair it with sudo ccgate setup on this machine."
    )
}

#[cfg(test)]
mod tests;
