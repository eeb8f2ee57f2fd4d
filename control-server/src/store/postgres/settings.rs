//! On PostgreSQL: Team settings and the built-in admin's password.

use std::collections::HashMap;

use serde_json::Value;
use tokio_postgres::GenericClient;

use crate::db::settings::TeamSettings;
use crate::db::{corrupt, enum_from_text, enum_to_text};
use crate::postgres::PgDb;
use crate::store::NewAdminPassword;
use crate::store::{Change, StoreResult};

const UPSERT: &str = "INSERT INTO settings (key, value) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Many keys at once: the keys and their values as two arrays of the same length.
const UPSERT_MANY: &str = "INSERT INTO settings (key, value)
     SELECT key, value FROM unnest($1::text[], $2::text[]) AS s(key, value)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Draws the next number in one statement: the row lock `ON CONFLICT DO
/// UPDATE` takes makes concurrent draws (on any replica) wait for each
/// other, so no two get the same number.
const NEXT_POLICY_VERSION: &str = "INSERT INTO settings (key, value) VALUES ('policy_version', '1')
     ON CONFLICT (key) DO UPDATE SET value = (settings.value::bigint + 1)::text
     RETURNING value";

const ADMIN_PASSWORD_HASH: &str = "SELECT value FROM settings WHERE key = 'admin_password_hash'";

/// Sets one key.
async fn set(client: &impl GenericClient, key: &str, value: &str) -> StoreResult<()> {
    client.execute(UPSERT, &[&key, &value]).await?;
    Ok(())
}

/// The built-in admin's password hash, if set.
pub(super) async fn admin_password_hash(
    client: &impl GenericClient,
) -> StoreResult<Option<String>> {
    Ok(client
        .query_opt(ADMIN_PASSWORD_HASH, &[])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?)
}

pub(super) async fn set_admin_password_hash(
    client: &impl GenericClient,
    hash: &str,
) -> StoreResult<()> {
    set(client, "admin_password_hash", hash).await
}

/// Draws the next policy version: every change that concerns a user's
/// policy takes a fresh number, so versions only grow.
pub(super) async fn next_policy_version(client: &impl GenericClient) -> StoreResult<u64> {
    let value: String = client
        .query_one(NEXT_POLICY_VERSION, &[])
        .await?
        .try_get(0)?;
    value
        .parse()
        .map_err(|e| corrupt(format!("policy_version {value:?}: {e}")))
}

fn flag(text: Option<String>, key: &str, default: bool) -> StoreResult<bool> {
    match text.as_deref() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(corrupt(format!("{key} is {other:?}"))),
        None => Ok(default),
    }
}

fn json<T: serde::de::DeserializeOwned>(text: Option<String>, key: &str) -> StoreResult<Option<T>> {
    text.map(|text| serde_json::from_str(&text).map_err(|e| corrupt(format!("setting {key}: {e}"))))
        .transpose()
}

fn unit_enum<T: serde::de::DeserializeOwned>(text: Option<String>) -> StoreResult<Option<T>> {
    text.as_deref().map(enum_from_text).transpose()
}

/// The team's settings, defaults where a key is missing.
pub(super) async fn load(client: &impl GenericClient) -> StoreResult<TeamSettings> {
    let rows = client.query("SELECT key, value FROM settings", &[]).await?;
    let mut values = HashMap::with_capacity(rows.len());
    for row in rows {
        values.insert(row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?);
    }
    let mut take = |key: &str| values.remove(key);
    let defaults = TeamSettings::default();
    Ok(TeamSettings {
        team_name: take("team_name").unwrap_or(defaults.team_name),
        time_zone: take("time_zone").unwrap_or(defaults.time_zone),
        credit_weights: json(take("credit_weights"), "credit_weights")?
            .unwrap_or(defaults.credit_weights),
        unidentified_clients: unit_enum(take("unidentified_clients"))?
            .unwrap_or(defaults.unidentified_clients),
        agent_turns: unit_enum(take("agent_turns"))?.unwrap_or(defaults.agent_turns),
        turn_limits: json(take("turn_limits"), "turn_limits")?.unwrap_or(defaults.turn_limits),
        personal_api_keys: unit_enum(take("personal_api_keys"))?
            .unwrap_or(defaults.personal_api_keys),
        auto_update: flag(take("auto_update"), "auto_update", defaults.auto_update)?,
        password_login: unit_enum(take("password_login"))?.unwrap_or(defaults.password_login),
        sso_link_by_email: flag(
            take("sso_link_by_email"),
            "sso_link_by_email",
            defaults.sso_link_by_email,
        )?,
        utilization_retention_days: take("utilization_retention_days")
            .map(|v| v.parse().map_err(corrupt))
            .transpose()?
            .unwrap_or(defaults.utilization_retention_days),
        version: take("settings_version")
            .map(|v| v.parse().map_err(corrupt))
            .transpose()?
            .unwrap_or(0),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

/// Writes every setting, in one statement.
pub(super) async fn save(client: &impl GenericClient, settings: &TeamSettings) -> StoreResult<()> {
    let entries: [(&str, String); 12] = [
        ("team_name", settings.team_name.clone()),
        ("time_zone", settings.time_zone.clone()),
        ("credit_weights", to_json(&settings.credit_weights)?),
        (
            "unidentified_clients",
            enum_to_text(&settings.unidentified_clients)?,
        ),
        ("agent_turns", enum_to_text(&settings.agent_turns)?),
        ("turn_limits", to_json(&settings.turn_limits)?),
        (
            "personal_api_keys",
            enum_to_text(&settings.personal_api_keys)?,
        ),
        ("auto_update", settings.auto_update.to_string()),
        (
            "utilization_retention_days",
            settings.utilization_retention_days.to_string(),
        ),
        ("password_login", enum_to_text(&settings.password_login)?),
        ("sso_link_by_email", settings.sso_link_by_email.to_string()),
        ("settings_version", settings.version.to_string()),
    ];
    let (keys, values): (Vec<&str>, Vec<String>) = entries.into_iter().unzip();
    client.execute(UPSERT_MANY, &[&keys, &values]).await?;
    Ok(())
}

impl PgDb {
    pub async fn save_settings(
        &self,
        mut settings: TeamSettings,
        policy_changed: bool,
        password: Option<NewAdminPassword>,
        detail: Value,
        change: Change,
    ) -> StoreResult<TeamSettings> {
        let mut client = self.connection().await?;
        let tx = client.transaction().await?;
        if policy_changed {
            settings.version = next_policy_version(&*tx).await?;
            save(&*tx, &settings).await?;
        }
        if let Some(password) = &password {
            set_admin_password_hash(&*tx, &password.hash).await?;
            tx.execute(
                "DELETE FROM sessions
                 WHERE account_id IS NULL AND identity_id IS NULL AND id IS DISTINCT FROM $1",
                &[&password.keep_session],
            )
            .await?;
        }
        super::insert_audit(
            &*tx,
            &change.audit("settings_changed", None, None, Some(detail)),
        )
        .await?;
        tx.commit().await?;
        Ok(settings)
    }
}
