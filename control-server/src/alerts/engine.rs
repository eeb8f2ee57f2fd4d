//! The alert engine: one task that owns the rules and their per-subject
//! state, listens to the live events, looks at standing conditions every
//! tick, and hands fired alerts to [`super::delivery`]. Rule changes through
//! the API reach it at once (no restart).

use std::collections::HashMap;

use ccgate_alerts::{Notification, Severity};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::broadcast::error::RecvError;

use super::condition::{AlertCondition, AlertRule, HitOrReset, SubjectState};
use super::delivery;
use crate::db;
use crate::db::alerts::AlertEventRow;
use crate::db::subscriptions::{SubscriptionOrigin, SubscriptionRow};
use crate::hub::LiveEvent;
use crate::model::PlanWindow;
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
        match engine.state.db.read(db::alerts::states).await {
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
        match self.state.db.read(db::alerts::rules).await {
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
            .db
            .read(move |conn| db::subscriptions::get(conn, id))
            .await
            .ok()
            .flatten()
            .map_or_else(|| format!("subscription {id}"), |row| row.name)
    }

    /// Thresholds and hits of every subscription's windows.
    async fn check_subscriptions(&mut self) -> Vec<Firing> {
        let figures = self
            .state
            .db
            .read(|conn| {
                Ok((
                    db::subscriptions::list(conn)?,
                    db::utilization::latest(conn)?,
                ))
            })
            .await;
        let Ok((subscriptions, latest)) = figures else {
            return Vec::new();
        };
        let names: HashMap<i64, String> =
            subscriptions.into_iter().map(|s| (s.id, s.name)).collect();
        let now = self.now_ms();
        let mut fired = Vec::new();
        for (subscription_id, usage) in latest {
            let name = names.get(&subscription_id).cloned().unwrap_or_default();
            for window in [PlanWindow::FiveHour, PlanWindow::SevenDay] {
                let Some(figures) = usage.windows.get(window.header_name()) else {
                    continue;
                };
                let Some(value) = figures.utilization.map(|u| u * 100.0) else {
                    continue;
                };
                let resets_at = figures.resets_at.map(Timestamp::as_millisecond);
                let subject = format!("subscription:{subscription_id}:{}", window.header_name());
                let resets_text = figures.resets_at.map(reset_phrase).unwrap_or_default();
                for rule in self.rules.clone() {
                    match rule.condition {
                        AlertCondition::Utilization {
                            window: w,
                            threshold,
                            subscription_id: only,
                        } if w == window && only.is_none_or(|id| id == subscription_id) => {
                            let cooldown = cooldown_ms(&rule);
                            if self.step(&rule, &subject, |s| {
                                s.threshold_step(value, threshold, now, cooldown)
                            }) {
                                let severity = if threshold >= 90.0 {
                                    Severity::Critical
                                } else {
                                    Severity::Warning
                                };
                                fired.push(Firing {
                                    rule_id: rule.id,
                                    subject: subject.clone(),
                                    notification: Notification::new(
                                        severity,
                                        format!(
                                            "{name}: {} window at {}",
                                            window.phrase(),
                                            percent(value)
                                        ),
                                        format!(
                                            "The {} window of {name} is at {} (alert at {}){resets_text}.",
                                            window.phrase(),
                                            percent(value),
                                            percent(threshold)
                                        ),
                                    )
                                    .with_subscription(name.clone())
                                    .with_usage(value, window.phrase()),
                                });
                            }
                        }
                        AlertCondition::WindowHit {
                            window: w,
                            subscription_id: only,
                        } if w == window && only.is_none_or(|id| id == subscription_id) => {
                            let step =
                                self.step(&rule, &subject, |s| s.hit_step(value, resets_at, now));
                            let notification = match step {
                                Some(HitOrReset::Hit) => Notification::new(
                                    Severity::Critical,
                                    format!("{name}: {} limit hit", window.phrase()),
                                    format!(
                                        "The {} window of {name} is at {}: Anthropic blocks \
                                         prompts on it{resets_text}.",
                                        window.phrase(),
                                        percent(value)
                                    ),
                                ),
                                Some(HitOrReset::Reset) => Notification::new(
                                    Severity::Info,
                                    format!("{name}: {} window reset", window.phrase()),
                                    format!(
                                        "The {} window of {name} has reset; it is at {} now.",
                                        window.phrase(),
                                        percent(value)
                                    ),
                                ),
                                None => continue,
                            };
                            fired.push(Firing {
                                rule_id: rule.id,
                                subject: subject.clone(),
                                notification: notification
                                    .with_subscription(name.clone())
                                    .with_usage(value, window.phrase()),
                            });
                        }
                        _ => {}
                    }
                }
            }
        }
        fired
    }

    /// A person's tightest cap, as a share used.
    fn check_limit_share(&mut self, user_id: i64) -> Vec<Firing> {
        let rules = self.rules_where(|c| matches!(c, AlertCondition::LimitShare { .. }));
        if rules.is_empty() {
            return Vec::new();
        }
        let Some(user) = self.state.live.user(user_id) else {
            return Vec::new();
        };
        let now = self.state.now();
        let (name, tightest) = {
            let guard = user.lock();
            let report = guard.report(now);
            let tightest = report
                .limits
                .iter()
                .filter(|limit| limit.limit > 0)
                .map(|limit| {
                    (
                        limit.used as f64 * 100.0 / limit.limit as f64,
                        limit.clone(),
                    )
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            (guard.row.name.clone(), tightest)
        };
        let Some((share, limit)) = tightest else {
            return Vec::new();
        };
        let mut fired = Vec::new();
        for rule in rules {
            let AlertCondition::LimitShare {
                threshold,
                user_id: only,
            } = rule.condition
            else {
                continue;
            };
            let owner_elsewhere = rule.owner_user_id.is_some_and(|owner| owner != user_id);
            if owner_elsewhere || only.is_some_and(|id| id != user_id) {
                continue;
            }
            let subject = format!("user:{user_id}");
            let cooldown = cooldown_ms(&rule);
            if self.step(&rule, &subject, |s| {
                s.threshold_step(share, threshold, now.as_millisecond(), cooldown)
            }) {
                let frees = limit
                    .frees_at
                    .or(limit.resets_at)
                    .map(reset_phrase)
                    .unwrap_or_default();
                fired.push(Firing {
                    rule_id: rule.id,
                    subject,
                    notification: Notification::new(
                        Severity::Warning,
                        format!("{name} has used {} of a limit", percent(share)),
                        format!(
                            "{name} has used {} of {} ({}){frees}.",
                            limit.used,
                            limit.limit,
                            limit.rule.spec.type_name()
                        ),
                    )
                    .with_person(name.clone())
                    .with_usage(share, limit.window.as_str()),
                });
            }
        }
        fired
    }

    /// Standing conditions: silent devices, credentials near expiry, and
    /// windows whose reset has passed.
    async fn on_tick(&mut self) -> Vec<Firing> {
        let mut fired = self.check_subscriptions().await;
        let now = self.now_ms();
        for rule in self.rules_where(|c| matches!(c, AlertCondition::DeviceSilent { .. })) {
            let AlertCondition::DeviceSilent { hours } = rule.condition else {
                continue;
            };
            let silent_ms = i64::from(hours) * 3_600_000;
            for user in self.state.live.all_users() {
                let name = user.lock().row.name.clone();
                for device in self.state.live.devices.of_user(user.id) {
                    let last = device
                        .last_seen_ms()
                        .unwrap_or_else(|| device.created_at.as_millisecond());
                    let subject = format!("device:{}", device.id);
                    let silent = now.saturating_sub(last) >= silent_ms;
                    if self.step(&rule, &subject, |s| s.condition_step(silent, now)) {
                        let host = device
                            .hostname()
                            .unwrap_or_else(|| format!("device {}", device.id));
                        fired.push(Firing {
                            rule_id: rule.id,
                            subject,
                            notification: Notification::new(
                                Severity::Warning,
                                format!("{host} has been silent for {hours} hours"),
                                format!(
                                    "{name}'s device {host} has not reached the server for \
                                     {hours} hours: it may be off, offline, or ccgate-proxy \
                                     may have been stopped."
                                ),
                            )
                            .with_person(name.clone()),
                        });
                    }
                }
            }
        }
        let expiring = self.rules_where(|c| matches!(c, AlertCondition::CredentialExpiring { .. }));
        if !expiring.is_empty()
            && let Ok(subscriptions) = self.state.db.read(db::subscriptions::list).await
        {
            for rule in expiring {
                let AlertCondition::CredentialExpiring { days } = rule.condition else {
                    continue;
                };
                for subscription in subscriptions
                    .iter()
                    .filter(|s| s.origin == SubscriptionOrigin::Enrolled)
                {
                    fired.extend(self.check_expiry(&rule, subscription, days, now));
                }
            }
        }
        fired
    }

    fn check_expiry(
        &mut self,
        rule: &AlertRule,
        subscription: &SubscriptionRow,
        days: u32,
        now: i64,
    ) -> Option<Firing> {
        let set_at = subscription
            .credential_set_at
            .unwrap_or(subscription.created_at);
        let expires = set_at + CREDENTIAL_LIFETIME.as_millis() as i64;
        let warn_from = expires - i64::from(days) * 86_400_000;
        let subject = format!("subscription:{}", subscription.id);
        let holds = now >= warn_from;
        if !self.step(rule, &subject, |s| s.condition_step(holds, now)) {
            return None;
        }
        let left = ((expires - now) / 86_400_000).max(0);
        let name = &subscription.name;
        Some(Firing {
            rule_id: rule.id,
            subject,
            notification: Notification::new(
                Severity::Warning,
                format!("The credential of {name} expires in about {left} days"),
                format!(
                    "The login held for {name} was set on {}; a `claude setup-token` login lasts \
                     about a year. Run `claude setup-token` and rotate it in Settings.",
                    Timestamp::from_millisecond(set_at)
                        .map_or_else(|_| "?".into(), |t| t.strftime("%Y-%m-%d").to_string())
                ),
            )
            .with_subscription(name.clone()),
        })
    }

    /// Saves the states that changed, in order, in one transaction.
    async fn save_states(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut self.dirty);
        let saved = self
            .state
            .db
            .write(move |tx| {
                for (rule, subject, state) in &dirty {
                    db::alerts::save_state(tx, *rule, subject, state)?;
                }
                Ok(())
            })
            .await;
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
            let row = AlertEventRow {
                id: 0,
                rule_id: Some(rule.id),
                subject: firing.subject.clone(),
                at: self.now_ms(),
                severity: firing.notification.severity.as_str().to_owned(),
                title: firing.notification.title.clone(),
                message: firing.notification.message.clone(),
            };
            let stored = row.clone();
            let id = match self
                .state
                .db
                .write(move |tx| db::alerts::insert_event(tx, &stored))
                .await
            {
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
                severity: row.severity.clone(),
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

/// Runs the engine until shutdown.
pub async fn run(state: AppState) {
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
                Err(RecvError::Closed) => break,
            },
            _ = crate::state::stopped(&mut shutdown) => break,
        };
        engine.save_states().await;
        engine.raise(fired).await;
    }
}
