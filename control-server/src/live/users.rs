//! A user's live state: compiled policy, usage index, pending reservations.
//! Everything a check reads sits behind one mutex per user, so a check and
//! the reservation it makes are one atomic step.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use ccgate_quota::{
    CompiledPolicy, Layered, ModelFamily, Policy, UsageIndex, UsageReport, UsageSnapshot,
    UsageSource, UserRef, Window, WindowShare, WithShares,
};
use jiff::Timestamp;
use tokio::sync::watch;

use super::reservations::Reservations;
use super::subscriptions::SubscriptionDirectory;
use crate::db::settings::TeamSettings;
use crate::model::Person;

#[derive(Debug)]
pub struct UserLive {
    pub id: i64,
    state: Mutex<UserState>,
    /// Bumped on every change a device should hear about at once.
    changes: watch::Sender<u64>,
}

#[derive(Debug)]
pub struct UserState {
    pub row: Person,
    pub policy: CompiledPolicy,
    pub usage: UsageIndex,
    pub reservations: Reservations,
    /// Hook `count`s without a reservation, by (device, session, family), for dedupe.
    pub recent_hook_counts: HashMap<(i64, String, ModelFamily), Timestamp>,
    /// The person's estimated shares of their subscription's windows
    /// (kept by [`crate::service::shares`]).
    pub shares: Vec<WindowShare>,
}

impl UserLive {
    pub fn new(
        row: Person,
        settings: &TeamSettings,
        subscriptions: &SubscriptionDirectory,
        usage: UsageIndex,
    ) -> Self {
        let policy = compile_policy(&row, settings, subscriptions);
        Self {
            id: row.id,
            state: Mutex::new(UserState {
                row,
                policy,
                usage,
                reservations: Reservations::default(),
                recent_hook_counts: HashMap::new(),
                shares: Vec::new(),
            }),
            changes: watch::Sender::new(0),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, UserState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Tells every open stream of this user to send a fresh sync.
    pub fn notify(&self) {
        self.changes.send_modify(|version| *version += 1);
    }
}

impl UserState {
    pub fn replace_row(
        &mut self,
        row: Person,
        settings: &TeamSettings,
        subscriptions: &SubscriptionDirectory,
    ) {
        self.policy = compile_policy(&row, settings, subscriptions);
        self.row = row;
    }

    pub fn recompile(&mut self, settings: &TeamSettings, subscriptions: &SubscriptionDirectory) {
        self.policy = compile_policy(&self.row, settings, subscriptions);
    }

    /// What the server knows for every window start the user's rules need
    /// plus today, without pending reservations (the device holds its own).
    pub fn snapshot(&self, now: Timestamp) -> UsageSnapshot {
        let mut starts = vec![Window::Daily.bounds(now, &self.policy.tz).start];
        starts.extend(
            self.policy
                .rules()
                .filter_map(|(rule, zone)| rule.spec.window().map(|w| w.bounds(now, zone).start)),
        );
        let mut snapshot = UsageSnapshot::capture(&self.usage, starts, now);
        snapshot.shares = self.shares.clone();
        snapshot
    }

    /// Everything the gate and reports count: recorded usage, pending
    /// prompts, and the shares of the subscription's windows.
    pub fn source(&self) -> impl UsageSource + '_ {
        WithShares(Layered(&self.usage, &self.reservations), &self.shares)
    }

    /// Usage against every rule, pending prompts included.
    pub fn report(&self, now: Timestamp) -> UsageReport {
        UsageReport::build(&self.policy, &self.source(), now)
    }
}

/// The user's policy with zones resolved. Input is validated before it is
/// stored, so the fallbacks only matter for a hand-edited database: an
/// unknown zone falls back to the team's (then UTC), a rule that still does
/// not compile is left out and logged. A subscription that no longer exists
/// leaves the user with their own login.
pub fn compile_policy(
    row: &Person,
    settings: &TeamSettings,
    subscriptions: &SubscriptionDirectory,
) -> CompiledPolicy {
    let zones = [
        row.time_zone.clone(),
        Some(settings.time_zone.clone()),
        Some("UTC".to_owned()),
    ];
    let mut rules = row.rules.clone();
    let mut policy = Policy {
        version: row.policy_version.max(settings.version),
        team: settings.team_name.clone(),
        user: UserRef {
            id: row.id,
            name: row.name.clone(),
            slug: row.slug.clone(),
        },
        status: row.status,
        time_zone: "UTC".to_owned(),
        credit_weights: settings.credit_weights,
        rules: Vec::new(),
        unidentified_clients: settings.unidentified_clients,
        agent_turns: row.agent_turns.unwrap_or(settings.agent_turns),
        turn_limits: settings.turn_limits,
        personal_api_keys: settings.personal_api_keys,
        credential: subscriptions.credential_mode(row.subscription_id),
        auto_update: settings.auto_update,
    };
    for zone in zones.into_iter().flatten() {
        if ccgate_quota::rules::validate_time_zone(&zone).is_ok() {
            policy.time_zone = zone;
            break;
        }
        tracing::warn!(user = row.id, %zone, "unknown time zone, falling back");
    }
    loop {
        policy.rules = rules.clone();
        match CompiledPolicy::new(policy.clone()) {
            Ok(compiled) => return compiled,
            Err(ccgate_quota::PolicyError::Rule { index, error }) if index < rules.len() => {
                tracing::error!(user = row.id, index, %error, "stored rule does not compile; ignored");
                rules.remove(index);
            }
            Err(error) => {
                tracing::error!(user = row.id, %error, "policy does not compile; using no rules");
                policy.rules.clear();
                policy.time_zone = "UTC".to_owned();
                return CompiledPolicy::new(policy).expect("a UTC policy without rules compiles");
            }
        }
    }
}
