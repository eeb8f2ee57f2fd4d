//! Creating, changing and deleting users; install codes; token rotation.
//! Each change is one transaction (limits are replaced inside it), then the
//! live state is updated and the user's devices are told.

use std::sync::Arc;

use ccgate_quota::{AgentTurns, Rule, UserStatus};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::hub::event::{DeviceRef, LiveEvent, UserRef};
use crate::live::devices::DeviceLive;
use crate::model::{CodeKind, DeviceKind, Person, PersonChanges};
use crate::secrets::{self, TokenHash};
use crate::state::AppState;
use crate::store::{Change, NewInstallCode, NewPerson, PendingToken};

const MAX_NAME: usize = 100;
const MAX_SLUG: usize = 63;
const MAX_RULES: usize = 100;

/// Parses rules one by one, so the error names the bad one.
pub fn parse_rules(values: &[Value]) -> Result<Vec<Rule>> {
    if values.len() > MAX_RULES {
        return Err(Error::bad_request(format!(
            "at most {MAX_RULES} limits per user"
        )));
    }
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            serde_json::from_value::<Rule>(value.clone()).map_err(|error| {
                Error::bad_request(format!("limits[{index}] ({value}): {error}"))
                    .with_code("invalid_limit")
            })
        })
        .map(|rule| {
            rule.map(|mut r| {
                r.id = None;
                r
            })
        })
        .collect()
}

pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::bad_request(format!(
            "name must be 1 to {MAX_NAME} characters"
        )));
    }
    Ok(name.to_owned())
}

/// A slug made from a name: lowercase letters, digits and dashes.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug: String = slug.chars().take(MAX_SLUG).collect();
    if slug.is_empty() {
        "user".to_owned()
    } else {
        slug
    }
}

pub fn validate_slug(slug: &str) -> Result<String> {
    let valid = !slug.is_empty()
        && slug.len() <= MAX_SLUG
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-');
    if !valid {
        return Err(Error::bad_request(format!(
            "slug {slug:?} must be 1 to {MAX_SLUG} lowercase letters, digits or dashes"
        )));
    }
    Ok(slug.to_owned())
}

pub fn validate_time_zone(zone: &str) -> Result<String> {
    ccgate_quota::rules::validate_time_zone(zone.trim())
        .map_err(|error| Error::bad_request(error.to_string()))?;
    Ok(zone.trim().to_owned())
}

/// Checks that subscription `id` exists (`None`, their own login, always does).
pub fn validate_subscription(state: &AppState, id: Option<i64>) -> Result<Option<i64>> {
    match id {
        Some(id) if state.live.subscriptions().get(id).is_none() => Err(Error::bad_request(
            format!("subscription_id {id}: there is no subscription with that id"),
        )
        .with_code("unknown_subscription")),
        other => Ok(other),
    }
}

pub struct NewUserInput {
    pub name: String,
    pub slug: Option<String>,
    pub rules: Vec<Rule>,
    pub time_zone: Option<String>,
    /// Checked with [`validate_subscription`].
    pub subscription_id: Option<i64>,
    pub agent_turns: Option<AgentTurns>,
}

pub struct Created {
    pub user: Person,
    pub install_code: String,
    pub code_expires_at: Timestamp,
}

fn code_ttl(state: &AppState) -> SignedDuration {
    SignedDuration::try_from(state.config.install_code_ttl)
        .unwrap_or(SignedDuration::from_hours(24 * 7))
}

pub async fn create(state: &AppState, actor: &str, input: NewUserInput) -> Result<Created> {
    let name = validate_name(&input.name)?;
    let explicit_slug = input.slug.is_some();
    let base_slug = match &input.slug {
        Some(slug) => validate_slug(slug)?,
        None => slugify(&name),
    };
    let time_zone = input
        .time_zone
        .as_deref()
        .map(validate_time_zone)
        .transpose()?;
    let now = state.now();
    let code = secrets::new_install_code();
    let code_hash = secrets::hash_install_code(&code);
    let expires_at = now.checked_add(code_ttl(state)).unwrap_or(now);
    let person = NewPerson {
        name,
        slug: base_slug,
        explicit_slug,
        time_zone,
        rules: input.rules,
        subscription_id: input.subscription_id,
        agent_turns: input.agent_turns,
        subscription_label: subscription_label(state, input.subscription_id),
    };
    let setup_code = NewInstallCode {
        kind: CodeKind::Setup,
        hash: code_hash,
        expires_at,
    };
    let user = state
        .store
        .create_person(person, setup_code, Change::new(actor, now))
        .await?;
    state.live.put_user(user.clone());
    state.hub.publish(|| LiveEvent::UserCreated {
        user: UserRef {
            user_id: user.id,
            user_name: Some(user.name.clone()),
            timestamp: now,
        },
        slug: user.slug.clone(),
    });
    Ok(Created {
        user,
        install_code: code,
        code_expires_at: expires_at,
    })
}

/// A subscription as the audit log names it: its name, or the person's own login.
fn subscription_label(state: &AppState, subscription_id: Option<i64>) -> String {
    match subscription_id {
        None => "personal login".to_owned(),
        Some(id) => state
            .live
            .subscriptions()
            .get(id)
            .map_or_else(|| format!("subscription {id}"), |entry| entry.name.clone()),
    }
}

/// A fresh replacement token per proxy device: hash and text.
fn new_tokens(devices: &[Arc<DeviceLive>]) -> Vec<(Arc<DeviceLive>, TokenHash, String)> {
    devices
        .iter()
        .filter(|d| d.kind == DeviceKind::Proxy)
        .map(|device| {
            let text = secrets::new_token();
            (Arc::clone(device), secrets::hash_token(&text), text)
        })
        .collect()
}

/// The rotations as the store keeps them: the hash, and the text sealed
/// so that another replica can hand it over.
fn pending_tokens(
    state: &AppState,
    rotations: &[(Arc<DeviceLive>, TokenHash, String)],
) -> Vec<PendingToken> {
    rotations
        .iter()
        .map(|(device, hash, text)| PendingToken {
            device_id: device.id,
            hash: hex::encode(hash),
            sealed: state.vault.seal_device_token(text),
        })
        .collect()
}

pub async fn update(
    state: &AppState,
    actor: &str,
    id: i64,
    changes: PersonChanges,
) -> Result<Person> {
    let now = state.now();
    let old = state
        .live
        .user(id)
        .map(|user| user.lock().row.clone())
        .ok_or_else(|| Error::not_found(format!("no user with id {id}")))?;
    let killing = changes.status == Some(UserStatus::Killed) && old.status != UserStatus::Killed;
    let rotations = if killing {
        new_tokens(&state.live.devices.of_user(id))
    } else {
        Vec::new()
    };
    let stored = pending_tokens(state, &rotations);
    let mut change_detail = json!({
        "name": changes.name, "slug": changes.slug, "status": changes.status,
        "time_zone": changes.time_zone, "limits": changes.rules,
    });
    // Said in words, so that "back to the default" is not lost as a null.
    if let Some(subscription_id) = changes.subscription_id {
        change_detail["subscription"] = json!(subscription_label(state, subscription_id));
    }
    if let Some(agent_turns) = changes.agent_turns {
        change_detail["agent_turns"] = json!(match agent_turns {
            Some(AgentTurns::Count) => "count",
            Some(AgentTurns::Free) => "free",
            None => "team setting",
        });
    }
    let row = state
        .store
        .update_person(
            id,
            changes,
            old.status,
            stored,
            change_detail,
            Change::new(actor, now),
        )
        .await?;
    // Tokens first, so the sync the change triggers already carries them.
    for (device, hash, text) in rotations {
        state.live.devices.set_pending(&device, hash, text);
    }
    state.live.put_user(row.clone());
    let name = row.name.clone();
    let user = UserRef {
        user_id: id,
        user_name: Some(name),
        timestamp: now,
    };
    state.hub.publish(|| LiveEvent::UserUpdated {
        user: user.clone(),
        status: row.status,
    });
    if row.status != old.status {
        state.hub.publish(|| LiveEvent::UserStatusChange {
            user: user.clone(),
            old_status: old.status,
            new_status: row.status,
        });
        if row.status == UserStatus::Killed {
            state.hub.publish(|| LiveEvent::UserKilled(user.clone()));
        }
    }
    Ok(row)
}

pub async fn delete(state: &AppState, actor: &str, id: i64) -> Result<()> {
    let now = state.now();
    let deleted = state
        .store
        .delete_person(id, Change::new(actor, now))
        .await?;
    if !deleted {
        return Err(Error::not_found(format!("no user with id {id}")));
    }
    state.live.remove_user(id);
    state.hub.publish(|| LiveEvent::UserDeleted {
        user_id: id,
        timestamp: now,
    });
    Ok(())
}

/// A new install code of `kind` for user `id`: setup codes from "new
/// install code", hook codes only from the explicit "migrate a
/// claude-code-limiter machine" action.
pub async fn new_install_code(
    state: &AppState,
    actor: &str,
    id: i64,
    kind: CodeKind,
) -> Result<(String, Timestamp)> {
    if state.live.user(id).is_none() {
        return Err(Error::not_found(format!("no user with id {id}")));
    }
    let now = state.now();
    let code = secrets::new_install_code();
    let code_hash = secrets::hash_install_code(&code);
    let expires_at = now.checked_add(code_ttl(state)).unwrap_or(now);
    let stored_code = NewInstallCode {
        kind,
        hash: code_hash,
        expires_at,
    };
    state
        .store
        .add_install_code(id, stored_code, Change::new(actor, now))
        .await?;
    Ok((code, expires_at))
}

/// Issues a replacement token to each of the user's proxies (delivered on
/// their next sync or stream message). Returns how many.
pub async fn rotate_tokens(state: &AppState, actor: &str, id: i64) -> Result<usize> {
    let user = state
        .live
        .user(id)
        .ok_or_else(|| Error::not_found(format!("no user with id {id}")))?;
    let now = state.now();
    let rotations = new_tokens(&state.live.devices.of_user(id));
    let stored = pending_tokens(state, &rotations);
    let count = stored.len();
    state
        .store
        .rotate_tokens(id, stored, Change::new(actor, now))
        .await?;
    for (device, hash, text) in rotations {
        state.live.devices.set_pending(&device, hash, text);
    }
    // The other replicas read the sealed tokens and hand them over too.
    state.hub.record_changed();
    user.notify();
    Ok(count)
}

/// Revokes one device: its token stops working at once (its live stream
/// ends and its next call gets 401), its events stay. Unlike a rotation,
/// nothing is handed to whoever holds the old token.
pub async fn revoke_device(state: &AppState, actor: &str, id: i64) -> Result<i64> {
    let now = state.now();
    let revoked = state
        .store
        .revoke_device(id, Change::new(actor, now))
        .await?
        .ok_or_else(|| Error::not_found(format!("no device with id {id}")))?;
    state.live.devices.remove(id);
    let user_name = state.live.user(revoked.user_id).map(|user| {
        // Its stream sees the device gone and ends.
        user.notify();
        user.lock().row.name.clone()
    });
    state.hub.publish(|| {
        LiveEvent::DeviceRevoked(DeviceRef {
            user_id: revoked.user_id,
            user_name,
            device_id: id,
            hostname: revoked.details.hostname.clone(),
            timestamp: now,
        })
    });
    Ok(revoked.user_id)
}

/// A device used its replacement token: make it the only one.
pub async fn promote_token(
    state: &AppState,
    device: &Arc<DeviceLive>,
    used: TokenHash,
) -> Result<()> {
    let device_id = device.id;
    let hash = hex::encode(used);
    state.store.promote_device_token(device_id, hash).await?;
    state.live.devices.promote_pending(device, &used);
    state.hub.record_changed();
    Ok(())
}
