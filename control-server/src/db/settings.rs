//! Team settings as key/value rows, and the policy version counter.

use ccgate_quota::{AgentTurns, CreditWeights, PersonalApiKeys, TurnLimits, UnidentifiedClients};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{DbResult, corrupt, enum_from_text, enum_to_text};

/// Settings that shape every user's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSettings {
    pub team_name: String,
    /// IANA zone for calendar windows of users without their own.
    pub time_zone: String,
    pub credit_weights: CreditWeights,
    pub unidentified_clients: UnidentifiedClients,
    /// Whether turns the agent starts count as prompts (a user may differ).
    pub agent_turns: AgentTurns,
    /// The per-turn backstops: requests and tokens one prompt may carry.
    pub turn_limits: TurnLimits,
    /// In team-credential mode, whether a person's own API key may pass.
    pub personal_api_keys: PersonalApiKeys,
    /// Whether devices install the served agent release by themselves.
    pub auto_update: bool,
    /// Days of subscription utilization history kept (thinned after a day).
    pub utilization_retention_days: u32,
    /// Who may sign in with a password (single sign-on is for the rest).
    pub password_login: PasswordLogin,
    /// Whether a first sign-in links an identity to the person with its
    /// verified e-mail.
    pub sso_link_by_email: bool,
    /// The policy version at which these settings last changed.
    pub version: u64,
}

impl Default for TeamSettings {
    fn default() -> Self {
        Self {
            team_name: "My team".to_owned(),
            time_zone: "UTC".to_owned(),
            credit_weights: CreditWeights::default(),
            unidentified_clients: UnidentifiedClients::Allow,
            agent_turns: AgentTurns::default(),
            turn_limits: TurnLimits::default(),
            personal_api_keys: PersonalApiKeys::default(),
            auto_update: true,
            utilization_retention_days: DEFAULT_UTILIZATION_RETENTION_DAYS,
            password_login: PasswordLogin::Everyone,
            sso_link_by_email: true,
            version: 0,
        }
    }
}

pub const DEFAULT_UTILIZATION_RETENTION_DAYS: u32 = 90;

/// Who may sign in with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordLogin {
    /// The built-in admin and every named account.
    Everyone,
    /// Only the built-in admin (break-glass); everyone else uses single sign-on.
    BuiltinAdminOnly,
}

fn flag(text: Option<String>, key: &str, default: bool) -> DbResult<bool> {
    match text.as_deref() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(corrupt(format!("{key} is {other:?}"))),
        None => Ok(default),
    }
}

fn get(conn: &Connection, key: &str) -> DbResult<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

fn set(conn: &Connection, key: &str, value: &str) -> DbResult<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub fn load(conn: &Connection) -> DbResult<TeamSettings> {
    let defaults = TeamSettings::default();
    let json = |key: &str| -> DbResult<Option<serde_json::Value>> {
        get(conn, key)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| corrupt(format!("setting {key}: {e}")))
            })
            .transpose()
    };
    Ok(TeamSettings {
        team_name: get(conn, "team_name")?.unwrap_or(defaults.team_name),
        time_zone: get(conn, "time_zone")?.unwrap_or(defaults.time_zone),
        credit_weights: match json("credit_weights")? {
            Some(value) => serde_json::from_value(value).map_err(corrupt)?,
            None => defaults.credit_weights,
        },
        unidentified_clients: match get(conn, "unidentified_clients")? {
            Some(text) => enum_from_text(&text)?,
            None => defaults.unidentified_clients,
        },
        agent_turns: match get(conn, "agent_turns")? {
            Some(text) => enum_from_text(&text)?,
            None => defaults.agent_turns,
        },
        turn_limits: match json("turn_limits")? {
            Some(value) => serde_json::from_value(value).map_err(corrupt)?,
            None => defaults.turn_limits,
        },
        personal_api_keys: match get(conn, "personal_api_keys")? {
            Some(text) => enum_from_text(&text)?,
            None => defaults.personal_api_keys,
        },
        auto_update: flag(
            get(conn, "auto_update")?,
            "auto_update",
            defaults.auto_update,
        )?,
        password_login: match get(conn, "password_login")? {
            Some(text) => enum_from_text(&text)?,
            None => defaults.password_login,
        },
        sso_link_by_email: flag(
            get(conn, "sso_link_by_email")?,
            "sso_link_by_email",
            defaults.sso_link_by_email,
        )?,
        utilization_retention_days: get(conn, "utilization_retention_days")?
            .map(|v| v.parse().map_err(corrupt))
            .transpose()?
            .unwrap_or(defaults.utilization_retention_days),
        version: get(conn, "settings_version")?
            .map(|v| v.parse().map_err(corrupt))
            .transpose()?
            .unwrap_or(0),
    })
}

pub fn save(conn: &Connection, settings: &TeamSettings) -> DbResult<()> {
    set(conn, "team_name", &settings.team_name)?;
    set(conn, "time_zone", &settings.time_zone)?;
    set(
        conn,
        "credit_weights",
        &serde_json::to_string(&settings.credit_weights).map_err(corrupt)?,
    )?;
    set(
        conn,
        "unidentified_clients",
        &enum_to_text(&settings.unidentified_clients)?,
    )?;
    set(conn, "agent_turns", &enum_to_text(&settings.agent_turns)?)?;
    set(
        conn,
        "turn_limits",
        &serde_json::to_string(&settings.turn_limits).map_err(corrupt)?,
    )?;
    set(
        conn,
        "personal_api_keys",
        &enum_to_text(&settings.personal_api_keys)?,
    )?;
    set(conn, "auto_update", &settings.auto_update.to_string())?;
    set(
        conn,
        "utilization_retention_days",
        &settings.utilization_retention_days.to_string(),
    )?;
    set(
        conn,
        "password_login",
        &enum_to_text(&settings.password_login)?,
    )?;
    set(
        conn,
        "sso_link_by_email",
        &settings.sso_link_by_email.to_string(),
    )?;
    set(conn, "settings_version", &settings.version.to_string())?;
    Ok(())
}

pub fn admin_password_hash(conn: &Connection) -> DbResult<Option<String>> {
    get(conn, "admin_password_hash")
}

pub fn set_admin_password_hash(conn: &Connection, hash: &str) -> DbResult<()> {
    set(conn, "admin_password_hash", hash)
}

/// Draws the next policy version: every change that concerns a user's policy
/// takes a fresh number, so versions only grow.
pub fn next_policy_version(conn: &Connection) -> DbResult<u64> {
    let current: u64 = get(conn, "policy_version")?
        .map(|v| v.parse().map_err(corrupt))
        .transpose()?
        .unwrap_or(0);
    let next = current + 1;
    set(conn, "policy_version", &next.to_string())?;
    Ok(next)
}
