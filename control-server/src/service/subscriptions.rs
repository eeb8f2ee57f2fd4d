//! Subscriptions whose credential the server holds: enrolment, renaming,
//! rotation and deletion. The credential is sealed before it reaches the
//! database and never leaves this module again except towards a device
//! ([`super::credential`]); audit entries and answers carry only the name,
//! kind and last four characters. A change that alters users' policies
//! (rotation, deletion) gives them a new policy version and wakes their
//! devices' streams.

use ccgate_quota::CredentialKind;
use serde_json::json;

use crate::db::subscriptions::NewCredential;
use crate::error::{Error, Result};
use crate::hub::event::{LiveEvent, SubscriptionAction, UserRef};
use crate::model::{Person, Subscription, SubscriptionOrigin};
use crate::service::audit;
use crate::state::AppState;
use crate::vault::Credential;

const MAX_NAME: usize = 100;
/// Longer than any Anthropic credential by far; longer is a pasting mistake.
pub const MAX_CREDENTIAL: usize = 4096;
/// Shorter than any real token: the hint would show most of it.
pub const MIN_CREDENTIAL: usize = 16;

pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::bad_request(format!(
            "name must be 1 to {MAX_NAME} characters on one line"
        )));
    }
    Ok(name.to_owned())
}

/// A pasted credential, trimmed; its form is checked without ever putting
/// it in a message.
pub fn validate_credential(credential: Credential) -> Result<Credential> {
    let text = credential.expose().trim();
    let invalid =
        |message: String| Err(Error::bad_request(message).with_code("invalid_credential"));
    if text.is_empty() {
        return invalid("credential is empty".to_owned());
    }
    if text.len() > MAX_CREDENTIAL {
        return invalid(format!(
            "credential is longer than {MAX_CREDENTIAL} characters: paste only the token"
        ));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid(
            "credential must be one word of printable ASCII, without spaces, line breaks or \
             control characters (paste the token as `claude setup-token` prints it)"
                .to_owned(),
        );
    }
    if text.len() < MIN_CREDENTIAL {
        return invalid(format!(
            "credential is shorter than {MIN_CREDENTIAL} characters: that is not a whole token"
        ));
    }
    Ok(Credential::new(text.to_owned()))
}

/// The kind of `credential`: what its prefix says, what the admin said, or
/// (for a rotation) the kind it had. A prefix that contradicts `given` is a
/// mistake worth stopping.
pub fn resolve_kind(
    credential: &Credential,
    given: Option<CredentialKind>,
    current: Option<CredentialKind>,
) -> Result<CredentialKind> {
    let detected = CredentialKind::detect(credential.expose());
    let invalid =
        |message: String| Err(Error::bad_request(message).with_code("invalid_credential"));
    match (detected, given, current) {
        (Some(detected), Some(given), _) if detected != given => invalid(format!(
            "the credential looks like an {} but kind says {}",
            detected.as_str(),
            given.as_str()
        )),
        (Some(kind), _, _) | (None, Some(kind), _) | (None, None, Some(kind)) => Ok(kind),
        (None, None, None) => invalid(
            "cannot tell what kind of credential this is: expected a token from \
             `claude setup-token` (sk-ant-oat…) or an API key (sk-ant-api…); otherwise say \
             \"kind\": \"oauth_token\" or \"api_key\""
                .to_owned(),
        ),
    }
}

fn sealed(state: &AppState, credential: &Credential, kind: CredentialKind) -> NewCredential {
    NewCredential {
        kind,
        sealed: state.vault.seal(credential),
        hint: credential.hint(),
    }
}

pub async fn list(state: &AppState) -> Result<Vec<Subscription>> {
    Ok(state.store.subscriptions().await?)
}

pub async fn get(state: &AppState, id: i64) -> Result<Subscription> {
    state
        .store
        .subscription(id)
        .await?
        .ok_or_else(|| Error::not_found(format!("no subscription with id {id}")))
}

/// A subscription to enrol, checked.
pub struct Enrolment {
    pub name: String,
    pub credential: Credential,
    pub kind: CredentialKind,
}

impl Enrolment {
    pub fn new(name: &str, credential: Credential, kind: Option<CredentialKind>) -> Result<Self> {
        let name = validate_name(name)?;
        let credential = validate_credential(credential)?;
        let kind = resolve_kind(&credential, kind, None)?;
        Ok(Self {
            name,
            credential,
            kind,
        })
    }
}

pub async fn create(state: &AppState, actor: &str, enrolment: Enrolment) -> Result<Subscription> {
    let stored = sealed(state, &enrolment.credential, enrolment.kind);
    drop(enrolment.credential);
    let name = enrolment.name;
    let now = state.now();
    // The store adds the new subscription's description.
    let entry = audit(now, "subscription_created", actor, None, None, None);
    let _serial = state.live.lock_subscription_changes().await;
    let row = state
        .store
        .create_subscription(name, stored, now.as_millisecond(), entry)
        .await?;
    let directory = state.live.subscriptions().with(&row);
    state.live.replace_subscriptions(directory, Vec::new());
    publish(state, &row, SubscriptionAction::Created);
    Ok(row)
}

/// A rename, a rotation, or both.
pub struct Change {
    pub name: Option<String>,
    pub credential: Option<(Credential, Option<CredentialKind>)>,
}

pub async fn update(
    state: &AppState,
    actor: &str,
    id: i64,
    change: Change,
) -> Result<Subscription> {
    if change.name.is_none() && change.credential.is_none() {
        return Err(Error::bad_request(
            "nothing to change: send a new name, a new credential, or both",
        ));
    }
    let name = change.name.as_deref().map(validate_name).transpose()?;
    let credential = change
        .credential
        .map(|(credential, kind)| validate_credential(credential).map(|valid| (valid, kind)))
        .transpose()?;
    let _serial = state.live.lock_subscription_changes().await;
    let current = get(state, id).await?;
    if credential.is_some() && current.origin == SubscriptionOrigin::Seen {
        return Err(Error::bad_request(format!(
            "{} was seen in personal-login traffic: ccgate holds no credential for it; \
             enrol the subscription's token as a new subscription instead",
            current.name
        ))
        .with_code("seen_subscription"));
    }
    let rotation = match credential {
        Some((credential, kind)) => {
            let kind = resolve_kind(&credential, kind, Some(current.kind))?;
            Some(sealed(state, &credential, kind))
        }
        None => None,
    };
    let now = state.now();
    let rename = name.filter(|name| *name != current.name).map(|name| {
        let detail = json!({ "subscription_id": id, "old_name": current.name, "name": name });
        let entry = audit(now, "subscription_renamed", actor, None, None, Some(detail));
        (name, entry)
    });
    // The store adds the rotated subscription's description.
    let rotation = rotation.map(|credential| {
        let entry = audit(now, "subscription_rotated", actor, None, None, None);
        (credential, entry)
    });
    let (row, affected) = state
        .store
        .update_subscription(id, rename, rotation, now.as_millisecond())
        .await?;
    let directory = state.live.subscriptions().with(&row);
    announce_users(state, &affected);
    state.live.replace_subscriptions(directory, affected);
    publish(state, &row, SubscriptionAction::Updated);
    Ok(row)
}

/// Deletes it; its users go back to their own logins.
pub async fn delete(state: &AppState, actor: &str, id: i64) -> Result<()> {
    let _serial = state.live.lock_subscription_changes().await;
    // The store adds the deleted subscription's description.
    let entry = audit(state.now(), "subscription_deleted", actor, None, None, None);
    let (row, affected) = state.store.delete_subscription(id, entry).await?;
    let directory = state.live.subscriptions().without(id);
    announce_users(state, &affected);
    state.live.replace_subscriptions(directory, affected);
    publish(state, &row, SubscriptionAction::Deleted);
    Ok(())
}

fn publish(state: &AppState, row: &Subscription, action: SubscriptionAction) {
    let timestamp = state.now();
    state.hub.publish(|| LiveEvent::SubscriptionChanged {
        subscription_id: row.id,
        name: row.name.clone(),
        action,
        timestamp,
    });
}

/// Admin pages showing these users refresh.
fn announce_users(state: &AppState, rows: &[Person]) {
    let now = state.now();
    for row in rows {
        state.hub.publish(|| LiveEvent::UserUpdated {
            user: UserRef {
                user_id: row.id,
                user_name: Some(row.name.clone()),
                timestamp: now,
            },
            status: row.status,
        });
    }
}
