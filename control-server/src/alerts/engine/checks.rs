//! The rules that look at figures rather than events: a subscription's
//! windows (thresholds, hit and reset), a person's caps, and the standing
//! conditions the engine looks at every tick (silent devices, credentials
//! near their end).

use std::collections::HashMap;

use ccgate_alerts::{Notification, Severity};
use jiff::Timestamp;

use super::{CREDENTIAL_LIFETIME, Engine, Firing, cooldown_ms, percent, reset_phrase};
use crate::alerts::condition::{AlertCondition, AlertRule, HitOrReset};
use crate::model::{PlanWindow, Subscription, SubscriptionOrigin};

impl Engine {
    /// Thresholds and hits of every subscription's windows.
    pub(super) async fn check_subscriptions(&mut self) -> Vec<Firing> {
        let figures = self.state.store.subscriptions_with_latest_usage().await;
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
    pub(super) fn check_limit_share(&mut self, user_id: i64) -> Vec<Firing> {
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
                            limit.used, limit.limit, limit.rule
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
    pub(super) async fn on_tick(&mut self) -> Vec<Firing> {
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
            && let Ok(subscriptions) = self.state.store.subscriptions().await
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
        subscription: &Subscription,
        days: u32,
        now: i64,
    ) -> Option<Firing> {
        let set_at = subscription
            .credential_set_at
            .unwrap_or(subscription.created_at)
            .as_millisecond();
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
}
