//! Team settings: name, time zone, credit weights, what to do with
//! unidentified clients, agent-started turns, the per-turn caps, personal
//! API keys in team-credential mode, and the built-in admin's password.

use axum::extract::State;
use ccgate_quota::{AgentTurns, CreditWeights, PersonalApiKeys, TurnLimits, UnidentifiedClients};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Admin;
use crate::api::extract::{ClientIp, Json};
use crate::config::MIN_PASSWORD_LEN;
use crate::db::settings::{PasswordLogin, TeamSettings};
use crate::error::{Error, Result};
use crate::model::Role;
use crate::service::users::validate_time_zone;
use crate::state::AppState;
use crate::store::{Change, NewAdminPassword};

type Out = axum::Json<Value>;

fn settings_json(settings: &TeamSettings) -> Value {
    json!({
        "team_name": settings.team_name,
        "time_zone": settings.time_zone,
        "credit_weights": settings.credit_weights,
        "unidentified_clients": settings.unidentified_clients,
        "agent_turns": settings.agent_turns,
        "turn_limits": settings.turn_limits,
        "personal_api_keys": settings.personal_api_keys,
        "auto_update": settings.auto_update,
        "utilization_retention_days": settings.utilization_retention_days,
        "password_login": settings.password_login,
        "sso_link_by_email": settings.sso_link_by_email,
        "version": settings.version,
    })
}

pub async fn get_settings(State(state): State<AppState>) -> Out {
    axum::Json(json!({ "settings": settings_json(&state.live.settings()) }))
}

#[derive(Debug, Deserialize)]
pub struct SettingsBody {
    /// `name` is the peer's field.
    #[serde(default, alias = "name")]
    team_name: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    credit_weights: Option<CreditWeights>,
    #[serde(default)]
    unidentified_clients: Option<UnidentifiedClients>,
    #[serde(default)]
    agent_turns: Option<AgentTurns>,
    #[serde(default)]
    turn_limits: Option<TurnLimitsChange>,
    #[serde(default)]
    personal_api_keys: Option<PersonalApiKeys>,
    /// Whether devices install the served agent release by themselves.
    #[serde(default)]
    auto_update: Option<bool>,
    /// Days of subscription utilization history kept.
    #[serde(default)]
    utilization_retention_days: Option<u32>,
    /// Who may sign in with a password.
    #[serde(default)]
    password_login: Option<PasswordLogin>,
    /// Whether a first single sign-on links by verified e-mail.
    #[serde(default)]
    sso_link_by_email: Option<bool>,
    #[serde(default)]
    admin_password: Option<String>,
    /// The built-in admin's password now: required with `admin_password`.
    #[serde(default)]
    current_password: Option<String>,
}

/// The per-turn caps; a cap left out keeps its value.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TurnLimitsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_requests_per_turn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_tokens_per_turn: Option<u64>,
}

impl TurnLimitsChange {
    fn applied_to(self, current: TurnLimits) -> Result<TurnLimits> {
        let limits = TurnLimits {
            max_requests_per_turn: self
                .max_requests_per_turn
                .unwrap_or(current.max_requests_per_turn),
            max_tokens_per_turn: self
                .max_tokens_per_turn
                .unwrap_or(current.max_tokens_per_turn),
        };
        limits
            .validate()
            .map_err(|message| Error::bad_request(message).with_code("invalid_turn_limits"))?;
        Ok(limits)
    }
}

/// The built-in admin's password is `current`, or 403. A wrong one counts
/// as a failed login of the client (the same rate limit guards both).
async fn check_current_password(
    state: &AppState,
    client: std::net::IpAddr,
    current: Option<String>,
) -> Result<()> {
    let refused = |message: &str| Error::forbidden(message).with_code("current_password");
    let Some(current) = current.filter(|p| !p.is_empty()) else {
        return Err(refused(
            "changing the admin password needs the current one (current_password)",
        ));
    };
    let attempt = state.login_limiter.begin(client).await.map_err(|wait| {
        Error::too_many_requests(
            format!("too many wrong passwords from this address; try again in {wait} s"),
            wait,
        )
    })?;
    let stored = state
        .store
        .admin_password_hash()
        .await?
        .ok_or_else(Error::internal)?;
    if state.passwords.verify(current, stored).await? {
        attempt.succeeded();
        Ok(())
    } else {
        Err(refused("current_password is not the admin password"))
    }
}

pub async fn put_settings(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientIp(client): ClientIp,
    Json(body): Json<SettingsBody>,
) -> Result<Out> {
    let mut settings = (*state.live.settings()).clone();
    if let Some(name) = &body.team_name {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::bad_request("team_name must be 1 to 100 characters"));
        }
        settings.team_name = name.to_owned();
    }
    if let Some(zone) = &body.time_zone {
        settings.time_zone = validate_time_zone(zone)?;
    }
    if let Some(weights) = body.credit_weights {
        let all = [weights.opus, weights.sonnet, weights.haiku, weights.other];
        if all.iter().any(|&w| w > 1_000_000) {
            return Err(Error::bad_request("credit weights are at most 1000000"));
        }
        settings.credit_weights = weights;
    }
    if let Some(unidentified) = body.unidentified_clients {
        settings.unidentified_clients = unidentified;
    }
    if let Some(agent_turns) = body.agent_turns {
        settings.agent_turns = agent_turns;
    }
    if let Some(change) = body.turn_limits {
        settings.turn_limits = change.applied_to(settings.turn_limits)?;
    }
    if let Some(personal_api_keys) = body.personal_api_keys {
        settings.personal_api_keys = personal_api_keys;
    }
    if let Some(auto_update) = body.auto_update {
        settings.auto_update = auto_update;
    }
    if let Some(days) = body.utilization_retention_days {
        if !(1..=3650).contains(&days) {
            return Err(Error::bad_request(
                "utilization_retention_days must be between 1 and 3650",
            ));
        }
        settings.utilization_retention_days = days;
    }
    if let Some(password_login) = body.password_login {
        settings.password_login = password_login;
    }
    if let Some(link) = body.sso_link_by_email {
        settings.sso_link_by_email = link;
    }
    let password_hash = match body.admin_password {
        None => None,
        Some(password) => {
            if admin.role != Role::Admin {
                return Err(Error::forbidden(
                    "only an admin can change the admin password",
                ));
            }
            if password.chars().count() < MIN_PASSWORD_LEN {
                return Err(Error::bad_request(format!(
                    "admin_password must be at least {MIN_PASSWORD_LEN} characters"
                )));
            }
            check_current_password(&state, client, body.current_password).await?;
            let hash = state.passwords.hash(password).await?;
            Some(hash)
        }
    };
    let now = state.now();
    // Sessions of the built-in admin other than this one end with the old password.
    let keep_session = admin
        .session
        .as_ref()
        .filter(|s| s.account_id.is_none() && s.identity_id.is_none())
        .map(|s| s.id);
    let policy_changed = settings != *state.live.settings();
    let detail = json!({
        "team_name": body.team_name, "time_zone": body.time_zone,
        "credit_weights": body.credit_weights, "unidentified_clients": body.unidentified_clients,
        "agent_turns": body.agent_turns, "turn_limits": body.turn_limits,
        "personal_api_keys": body.personal_api_keys, "auto_update": body.auto_update,
        "utilization_retention_days": body.utilization_retention_days,
        "password_login": body.password_login, "sso_link_by_email": body.sso_link_by_email,
        "admin_password_changed": password_hash.is_some(),
    });
    let password = password_hash.map(|hash| NewAdminPassword { hash, keep_session });
    let saved = state
        .store
        .save_settings(
            settings,
            policy_changed,
            password,
            detail,
            Change::new(&admin.actor, now),
        )
        .await?;
    if policy_changed {
        state.live.replace_settings(saved.clone());
        state.hub.record_changed();
    }
    Ok(axum::Json(json!({ "settings": settings_json(&saved) })))
}
