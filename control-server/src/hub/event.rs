//! Every live event of the server, typed: one enum serialised in one place
//! for `/ws` (the dashboard's shapes: `{"type": …, camelCase fields}`), and
//! read as values by the alert engine.

use ccgate_quota::{DenyReason, ModelFamily, UserStatus};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::{DeviceKind, PlanWindow};

/// Who did something on which device, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub user_id: i64,
    pub user_name: Option<String>,
    pub device_id: Option<i64>,
    pub hostname: Option<String>,
    pub model: Option<String>,
    pub family: Option<ModelFamily>,
    pub session_id: Option<String>,
    pub timestamp: Option<Timestamp>,
}

/// A request's token figures, as the API reports them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenFigures {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub estimated: bool,
    pub credential: Option<String>,
    pub counted: bool,
}

/// What a person's row looks like now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    pub user_id: i64,
    pub user_name: Option<String>,
    pub timestamp: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRef {
    pub user_id: i64,
    pub user_name: Option<String>,
    pub device_id: i64,
    pub hostname: Option<String>,
    pub timestamp: Timestamp,
}

/// One live event. The variant is the `type` of the JSON message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A prompt passed the gate.
    UserCheck(Activity),
    /// A prompt was blocked (by the server or a device).
    #[serde(rename_all = "camelCase")]
    UserBlocked {
        #[serde(flatten)]
        activity: Activity,
        reason: Option<DenyReason>,
        message: String,
    },
    /// A prompt was counted.
    #[serde(rename_all = "camelCase")]
    UserCounted {
        #[serde(flatten)]
        activity: Activity,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        tokens: Option<TokenFigures>,
        credit_cost: u64,
        count_reason: Option<String>,
        /// Counted from a hook reservation nobody reported.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        unreported: bool,
    },
    /// A request's usage arrived.
    Usage {
        #[serde(flatten)]
        activity: Activity,
        #[serde(flatten)]
        tokens: TokenFigures,
        kind: Option<String>,
    },
    /// A device checked in (a sync or a check), with the person's status.
    #[serde(rename_all = "camelCase")]
    UserStatus {
        #[serde(flatten)]
        activity: Activity,
        status: UserStatus,
    },
    /// A protected file changed behind ccgate's back.
    Tamper {
        #[serde(flatten)]
        activity: Activity,
        detail: Option<serde_json::Value>,
    },
    /// A device holds events the server refused.
    DeliveryFault {
        #[serde(flatten)]
        activity: Activity,
        quarantined: Option<u64>,
        reason: Option<String>,
    },
    /// A device tried to install the served release.
    AgentUpdate {
        #[serde(flatten)]
        activity: Activity,
        detail: Option<serde_json::Value>,
    },
    /// A subscription's utilization was observed.
    #[serde(rename = "subscription", rename_all = "camelCase")]
    Utilization {
        user_id: i64,
        timestamp: Timestamp,
    },
    #[serde(rename_all = "camelCase")]
    SubscriptionChanged {
        subscription_id: i64,
        name: String,
        action: SubscriptionAction,
        timestamp: Timestamp,
    },
    #[serde(rename_all = "camelCase")]
    UserCreated {
        #[serde(flatten)]
        user: UserRef,
        slug: String,
    },
    UserUpdated {
        #[serde(flatten)]
        user: UserRef,
        status: UserStatus,
    },
    #[serde(rename_all = "camelCase")]
    UserStatusChange {
        #[serde(flatten)]
        user: UserRef,
        old_status: UserStatus,
        new_status: UserStatus,
    },
    UserKilled(UserRef),
    #[serde(rename_all = "camelCase")]
    UserDeleted {
        user_id: i64,
        timestamp: Timestamp,
    },
    DeviceRegistered {
        #[serde(flatten)]
        device: DeviceRef,
        kind: DeviceKind,
    },
    DeviceRevoked(DeviceRef),
    /// Anthropic refused the team credential a device used (401/403).
    #[serde(rename_all = "camelCase")]
    CredentialRefused {
        #[serde(flatten)]
        activity: Activity,
        subscription_id: i64,
        status: u16,
    },
    /// A rise of a subscription's window that no ccgate traffic explains.
    #[serde(rename_all = "camelCase")]
    UnattributedUse {
        subscription_id: i64,
        window: PlanWindow,
        /// Fraction of the window.
        amount: f64,
        timestamp: Timestamp,
    },
    /// The estimate of who used the subscriptions' windows changed.
    SharesUpdated {
        timestamp: Timestamp,
    },
    /// An alert rule fired.
    #[serde(rename_all = "camelCase")]
    AlertFired {
        alert_id: i64,
        rule_id: i64,
        severity: ccgate_alerts::Severity,
        title: String,
        message: String,
        timestamp: Timestamp,
    },
    /// One attempt to deliver an alert (or a channel test) to a channel.
    #[serde(rename_all = "camelCase")]
    AlertDelivery {
        alert_id: Option<i64>,
        channel_id: i64,
        attempt: u32,
        ok: bool,
        detail: String,
        timestamp: Timestamp,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionAction {
    Created,
    Updated,
    Deleted,
}

impl LiveEvent {
    /// Whether the event tells of a change to people, devices or
    /// subscriptions, which other replicas hold a copy of.
    pub fn changes_record(&self) -> bool {
        matches!(
            self,
            Self::SubscriptionChanged { .. }
                | Self::UserCreated { .. }
                | Self::UserUpdated { .. }
                | Self::UserStatusChange { .. }
                | Self::UserKilled(_)
                | Self::UserDeleted { .. }
                | Self::DeviceRegistered { .. }
                | Self::DeviceRevoked(_)
        )
    }

    /// The message `/ws` sends.
    pub fn to_json(&self) -> String {
        // Every field serialises (no maps with non-string keys, no failing
        // Serialize impls), so this cannot fail.
        serde_json::to_string(self).unwrap_or_else(|error| {
            tracing::error!(%error, "a live event did not serialise");
            String::from(r#"{"type":"unserialisable"}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity() -> Activity {
        Activity {
            user_id: 7,
            user_name: Some("Ann".into()),
            device_id: Some(3),
            hostname: Some("laptop".into()),
            model: Some("claude-opus-4-5".into()),
            family: Some(ModelFamily::Opus),
            session_id: None,
            timestamp: Some("2026-12-03T10:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn messages_keep_the_dashboards_shapes() {
        let blocked = LiveEvent::UserBlocked {
            activity: activity(),
            reason: Some(DenyReason::PerModel),
            message: "no".into(),
        };
        let value: serde_json::Value = serde_json::from_str(&blocked.to_json()).unwrap();
        assert_eq!(value["type"], "user_blocked");
        assert_eq!(value["userId"], 7);
        assert_eq!(value["userName"], "Ann");
        assert_eq!(value["family"], "opus");
        assert_eq!(value["message"], "no");

        let counted = LiveEvent::UserCounted {
            activity: activity(),
            tokens: Some(TokenFigures {
                input_tokens: 5,
                output_tokens: 6,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
                estimated: false,
                credential: None,
                counted: true,
            }),
            credit_cost: 10,
            count_reason: Some("new_prompt".into()),
            unreported: false,
        };
        let value: serde_json::Value = serde_json::from_str(&counted.to_json()).unwrap();
        assert_eq!(value["type"], "user_counted");
        assert_eq!(value["input_tokens"], 5);
        assert_eq!(value["creditCost"], 10);
        assert_eq!(value["countReason"], "new_prompt");
        assert!(value.get("unreported").is_none());

        let observed = LiveEvent::Utilization {
            user_id: 7,
            timestamp: "2026-12-03T10:00:00Z".parse().unwrap(),
        };
        assert!(
            observed
                .to_json()
                .starts_with(r#"{"type":"subscription","userId":7"#)
        );
    }

    /// Replicas send events to each other as this JSON: every variant reads
    /// back as what was sent.
    #[test]
    fn every_event_reads_back_from_its_json() {
        let at: Timestamp = "2026-12-03T10:00:00Z".parse().unwrap();
        let user = UserRef {
            user_id: 7,
            user_name: Some("Ann".into()),
            timestamp: at,
        };
        let device = DeviceRef {
            user_id: 7,
            user_name: None,
            device_id: 3,
            hostname: Some("laptop".into()),
            timestamp: at,
        };
        let tokens = TokenFigures {
            input_tokens: 5,
            output_tokens: 6,
            cache_creation_input_tokens: 7,
            cache_read_input_tokens: 8,
            estimated: true,
            credential: Some("team".into()),
            counted: true,
        };
        let events = vec![
            LiveEvent::UserCheck(activity()),
            LiveEvent::UserBlocked {
                activity: activity(),
                reason: Some(DenyReason::PerModel),
                message: "no".into(),
            },
            LiveEvent::UserCounted {
                activity: activity(),
                tokens: Some(tokens.clone()),
                credit_cost: 10,
                count_reason: Some("new_prompt".into()),
                unreported: true,
            },
            LiveEvent::UserCounted {
                activity: activity(),
                tokens: None,
                credit_cost: 1,
                count_reason: None,
                unreported: false,
            },
            LiveEvent::Usage {
                activity: activity(),
                tokens,
                kind: Some("prompt".into()),
            },
            LiveEvent::UserStatus {
                activity: activity(),
                status: UserStatus::Paused,
            },
            LiveEvent::Tamper {
                activity: activity(),
                detail: Some(serde_json::json!({ "path": "/etc/x" })),
            },
            LiveEvent::DeliveryFault {
                activity: activity(),
                quarantined: Some(3),
                reason: None,
            },
            LiveEvent::AgentUpdate {
                activity: activity(),
                detail: None,
            },
            LiveEvent::Utilization {
                user_id: 7,
                timestamp: at,
            },
            LiveEvent::SubscriptionChanged {
                subscription_id: 2,
                name: "Team Max".into(),
                action: SubscriptionAction::Updated,
                timestamp: at,
            },
            LiveEvent::UserCreated {
                user: user.clone(),
                slug: "ann".into(),
            },
            LiveEvent::UserUpdated {
                user: user.clone(),
                status: UserStatus::Active,
            },
            LiveEvent::UserStatusChange {
                user: user.clone(),
                old_status: UserStatus::Active,
                new_status: UserStatus::Killed,
            },
            LiveEvent::UserKilled(user),
            LiveEvent::UserDeleted {
                user_id: 7,
                timestamp: at,
            },
            LiveEvent::DeviceRegistered {
                device: device.clone(),
                kind: DeviceKind::Hook,
            },
            LiveEvent::DeviceRevoked(device),
            LiveEvent::CredentialRefused {
                activity: activity(),
                subscription_id: 2,
                status: 401,
            },
            LiveEvent::UnattributedUse {
                subscription_id: 2,
                window: PlanWindow::FiveHour,
                amount: 0.25,
                timestamp: at,
            },
            LiveEvent::SharesUpdated { timestamp: at },
            LiveEvent::AlertFired {
                alert_id: 1,
                rule_id: 2,
                severity: ccgate_alerts::Severity::Warning,
                title: "t".into(),
                message: "m".into(),
                timestamp: at,
            },
            LiveEvent::AlertDelivery {
                alert_id: None,
                channel_id: 4,
                attempt: 2,
                ok: false,
                detail: "503".into(),
                timestamp: at,
            },
        ];
        for event in events {
            let json = event.to_json();
            let back: LiveEvent =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back.to_json(), json);
        }
    }
}
