//! The alert engine: one task that owns the rules and their per-subject
//! state, listens to the live events, looks at standing conditions every
//! tick ([`checks`]), and hands fired alerts to [`super::delivery`]. Rule changes through
//! the API reach it at once (no restart).

mod checks;

use std::collections::HashMap;

use ccgate_alerts::{Notification, Severity};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::broadcast::error::RecvError;

use super::condition::{AlertCondition, AlertRule, SubjectState};
use super::delivery;
use crate::hub::LiveEvent;
use crate::model::RaisedAlert;
use crate::state::AppState;

/// How long a `claude setup-token` login lasts, about.
const CREDENTIAL_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 365);

/// One alert to raise: what it is about, and the words.
#[derive(Debug, Clone)]
pub struct Firing {
    pub rule_id: i64,
    pub subject: String,
    pub notification: Notification,
}

pub struct Engine {
    state: AppState,
    rules: Vec<AlertRule>,
    subjects: HashMap<(i64, String), SubjectState>,
    /// States changed since the last save.
    dirty: Vec<(i64, String, SubjectState)>,
}

impl Engine {
    async fn load(state: AppState) -> Self {
        let mut engine = Self {
            state,
            rules: Vec::new(),
            subjects: HashMap::new(),
            dirty: Vec::new(),
        };
        engine.reload().await;
        match engine.state.store.alert_states().await {
            Ok(rows) => {
                engine.subjects = rows
                    .into_iter()
                    .map(|(rule, subject, state)| ((rule, subject), state))
                    .collect();
            }
            Err(error) => tracing::warn!(%error, "alert states not loaded; starting armed"),
        }
        engine
    }

    async fn reload(&mut self) {
        match self.state.store.alert_rules().await {
            Ok(rules) => self.rules = rules.into_iter().filter(|r| r.enabled).collect(),
            Err(error) => tracing::error!(%error, "alert rules not loaded"),
        }
        // States of removed or changed rules start afresh.
        let live: Vec<i64> = self.rules.iter().map(|r| r.id).collect();
        self.subjects.retain(|(rule, _), _| live.contains(rule));
    }

    fn now_ms(&self) -> i64 {
        self.state.now().as_millisecond()
    }

    /// Runs `step` on the state of (`rule`, `subject`); records a change.
    fn step<T>(
        &mut self,
        rule: &AlertRule,
        subject: &str,
        step: impl FnOnce(&mut SubjectState) -> T,
    ) -> T {
        let key = (rule.id, subject.to_owned());
        let state = self.subjects.entry(key).or_default();
        let before = state.clone();
        let result = step(state);
        if *state != before {
            self.dirty
                .push((rule.id, subject.to_owned(), state.clone()));
        }
        result
    }

    fn rules_where(&self, wanted: impl Fn(&AlertCondition) -> bool) -> Vec<AlertRule> {
        self.rules
            .iter()
            .filter(|rule| wanted(&rule.condition))
            .cloned()
            .collect()
    }

    async fn on_event(&mut self, event: &LiveEvent) -> Vec<Firing> {
        let now = self.now_ms();
        let mut fired = Vec::new();
        match event {
            LiveEvent::Utilization { .. } => fired.extend(self.check_subscriptions().await),
            LiveEvent::UserKilled(user) => {
                let name = user.user_name.clone().unwrap_or_default();
                for rule in self.rules_where(|c| matches!(c, AlertCondition::Kill)) {
                    if rule
                        .owner_user_id
                        .is_some_and(|owner| owner != user.user_id)
                    {
                        continue;
                    }
                    let subject = format!("user:{}", user.user_id);
                    let cooldown = cooldown_ms(&rule);
                    if self.step(&rule, &subject, |s| s.occurrence_step(now, cooldown)) {
                        fired.push(Firing {
                            rule_id: rule.id,
                            subject,
                            notification: Notification::new(
                                Severity::Critical,
                                format!("{name} was stopped with the kill switch"),
                                format!(
                                    "{name}'s prompts are blocked on every device until an admin \
                                     turns them back on."
                                ),
                            )
                            .with_person(name.clone()),
                        });
                    }
                }
            }
            LiveEvent::Tamper { activity, detail } => {
                let what = detail
                    .as_ref()
                    .and_then(|d| d["path"].as_str())
                    .unwrap_or("a protected file")
                    .to_owned();
                let host = activity
                    .hostname
                    .clone()
                    .unwrap_or_else(|| "a device".into());
                let person = activity.user_name.clone().unwrap_or_default();
                fired.extend(self.occurrence(
                    |c| matches!(c, AlertCondition::Tamper),
                    format!("device:{}", activity.device_id.unwrap_or_default()),
                    || {
                        Notification::new(
                            Severity::Critical,
                            format!("Tamper report from {host}"),
                            format!(
                                "{what} was changed behind ccgate's back on {host} ({person})."
                            ),
                        )
                        .with_person(person.clone())
                    },
                ));
            }
            LiveEvent::DeliveryFault {
                activity,
                quarantined,
                reason,
            } => {
                let host = activity
                    .hostname
                    .clone()
                    .unwrap_or_else(|| "a device".into());
                fired.extend(self.occurrence(
                    |c| matches!(c, AlertCondition::QuarantinedEvents),
                    format!("device:{}", activity.device_id.unwrap_or_default()),
                    || {
                        Notification::new(
                            Severity::Warning,
                            format!("{host} holds events the server refused"),
                            format!(
                                "{} event(s) quarantined on {host}: {}",
                                quarantined.unwrap_or_default(),
                                reason.as_deref().unwrap_or("no reason given")
                            ),
                        )
                    },
                ));
            }
            LiveEvent::CredentialRefused {
                activity,
                subscription_id,
                status,
            } => {
                let name = self.subscription_name(*subscription_id).await;
                fired.extend(self.occurrence(
                    |c| matches!(c, AlertCondition::CredentialRefused),
                    format!("subscription:{subscription_id}"),
                    || {
                        Notification::new(
                            Severity::Critical,
                            format!("Anthropic refuses the credential of {name}"),
                            format!(
                                "A request through {} got {status}: the held login of {name} \
                                 may be revoked or expired; enrol a new one.",
                                activity.hostname.as_deref().unwrap_or("a device")
                            ),
                        )
                        .with_subscription(name.clone())
                    },
                ));
            }
            LiveEvent::UnattributedUse {
                subscription_id,
                window,
                amount,
                ..
            } => {
                let name = self.subscription_name(*subscription_id).await;
                let points = amount * 100.0;
                let subject = format!("subscription:{subscription_id}:{}", window.header_name());
                for rule in
                    self.rules_where(|c| matches!(c, AlertCondition::UnattributedUse { .. }))
                {
                    let AlertCondition::UnattributedUse { points: least } = rule.condition else {
                        continue;
                    };
                    let cooldown = cooldown_ms(&rule);
                    if points >= least
                        && self.step(&rule, &subject, |s| s.occurrence_step(now, cooldown))
                    {
                        fired.push(Firing {
                            rule_id: rule.id,
                            subject: subject.clone(),
                            notification: Notification::new(
                                Severity::Warning,
                                format!("{name}: use outside ccgate"),
                                format!(
                                    "The {} window of {name} rose {} points more than the requests \
                                     through ccgate explain: somebody may be using the \
                                     subscription without ccgate.",
                                    window.phrase(),
                                    points.round()
                                ),
                            )
                            .with_subscription(name.clone())
                            .with_usage(points, window.phrase()),
                        });
                    }
                }
            }
            LiveEvent::UserCounted { activity, .. } => {
                fired.extend(self.check_limit_share(activity.user_id));
            }
            _ => {}
        }
        fired
    }

    /// Fires every rule matching `wanted` for `subject`, within cooldown.
    fn occurrence(
        &mut self,
        wanted: impl Fn(&AlertCondition) -> bool,
        subject: String,
        notification: impl Fn() -> Notification,
    ) -> Vec<Firing> {
        let now = self.now_ms();
        let mut fired = Vec::new();
        for rule in self.rules_where(wanted) {
            let cooldown = cooldown_ms(&rule);
            if self.step(&rule, &subject, |s| s.occurrence_step(now, cooldown)) {
                fired.push(Firing {
                    rule_id: rule.id,
                    subject: subject.clone(),
                    notification: notification(),
                });
            }
        }
        fired
    }

    async fn subscription_name(&self, id: i64) -> String {
        self.state
            .store
            .subscription(id)
            .await
            .ok()
            .flatten()
            .map_or_else(|| format!("subscription {id}"), |row| row.name)
    }

    /// Saves the states that changed, in order, in one transaction.
    async fn save_states(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let saved = self.state.store.save_alert_states(dirty).await;
        if let Err(error) = saved {
            tracing::warn!(%error, "alert states not saved");
        }
    }

    /// Records each firing, tells the dashboards, and delivers it.
    async fn raise(&self, fired: Vec<Firing>) {
        for firing in fired {
            let Some(rule) = self.rules.iter().find(|r| r.id == firing.rule_id) else {
                continue;
            };
            let row = RaisedAlert {
                id: 0,
                rule_id: Some(rule.id),
                subject: firing.subject.clone(),
                at: self.state.now(),
                severity: firing.notification.severity,
                title: firing.notification.title.clone(),
                message: firing.notification.message.clone(),
            };
            let id = match self.state.store.record_alert(row.clone()).await {
                Ok(id) => id,
                Err(error) => {
                    tracing::error!(%error, title = %row.title, "alert not recorded");
                    continue;
                }
            };
            tracing::info!(rule = rule.id, title = %row.title, "alert");
            self.state.hub.publish(|| LiveEvent::AlertFired {
                alert_id: id,
                rule_id: rule.id,
                severity: row.severity,
                title: row.title.clone(),
                message: row.message.clone(),
                timestamp: self.state.now(),
            });
            for channel in &rule.channels {
                delivery::spawn(&self.state, Some(id), *channel, firing.notification.clone());
            }
        }
    }
}

fn cooldown_ms(rule: &AlertRule) -> i64 {
    i64::try_from(rule.cooldown_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn percent(value: f64) -> String {
    format!("{} %", value.round())
}

fn reset_phrase(at: Timestamp) -> String {
    format!("; it resets at {} UTC", at.strftime("%Y-%m-%d %H:%M"))
}

/// Runs the engine until shutdown, while this replica leads (one replica
/// raises the alerts of a shared record).
pub async fn run(state: AppState) {
    let mut leadership = state.leadership.clone();
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            () = leadership.gained() => {}
            _ = crate::state::stopped(&mut shutdown) => return,
        }
        if lead(&state, &mut leadership).await == Ended::Shutdown {
            return;
        }
    }
}

#[derive(PartialEq, Eq)]
enum Ended {
    Shutdown,
    LostLeadership,
}

/// Evaluates the rules on every tick and live event until shutdown or
/// until another replica leads. It starts from the states saved last, by
/// whichever replica led then.
async fn lead(state: &AppState, leadership: &mut crate::replicas::Leadership) -> Ended {
    let mut events = state.hub.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut engine = Engine::load(state.clone()).await;
    let mut tick = tokio::time::interval(state.config.alert_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let fired = tokio::select! {
            _ = tick.tick() => engine.on_tick().await,
            () = state.alerts.reloaded() => {
                engine.reload().await;
                Vec::new()
            }
            event = events.recv() => match event {
                Ok(published) => engine.on_event(&published.event).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the alert engine missed live events");
                    engine.check_subscriptions().await
                }
                Err(RecvError::Closed) => return Ended::Shutdown,
            },
            _ = crate::state::stopped(&mut shutdown) => return Ended::Shutdown,
            () = leadership.lost() => return Ended::LostLeadership,
        };
        engine.save_states().await;
        engine.raise(fired).await;
    }
}
