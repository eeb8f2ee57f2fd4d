//! Team-credential mode: the subscription's login lives here and nowhere on
//! the person's side. Managed settings give Claude Code a per-device
//! placeholder; on every request the proxy forwards to Anthropic, the
//! placeholder is swapped for the real credential, and only while the
//! person is active. Any other credential is refused (unless the team lets
//! personal API keys through). The secret is kept in memory and in a
//! root-only cache sealed with a machine key, so the daemon restarts offline.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use ccgate_quota::seal::SealKey;
use ccgate_quota::wire::{CredentialResponse, CredentialUse};
use ccgate_quota::{CredentialKind, CredentialMode, PersonalApiKeys, Policy, UserStatus};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::fsutil::write_atomic;
use crate::ledger::Ledger;
use crate::paths::Paths;

const API_KEY_HEADER: &str = "x-api-key";
const PLACEHOLDER_KEY: &str = "credential_placeholder";
/// Binds the sealed cache to its purpose and device.
const CACHE_CONTEXT: &str = "ccgate team credential cache";

/// The subscription credential as held in memory. Never printed.
#[derive(Clone, PartialEq, Eq)]
struct Held {
    subscription_id: i64,
    kind: CredentialKind,
    version: u64,
    secret: String,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Held(subscription {}, {}, version {})",
            self.subscription_id,
            self.kind.as_str(),
            self.version
        )
    }
}

/// The cache file: metadata in the clear, the secret sealed.
#[derive(Serialize, Deserialize)]
struct CacheFile {
    subscription_id: i64,
    kind: CredentialKind,
    version: u64,
    sealed: String,
}

/// Why a request cannot go out in team-credential mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialRefusal {
    #[error(
        "ccgate stopped this request: your ccgate admin has {} your Claude Code access.",
        if *.0 == UserStatus::Paused { "paused" } else { "revoked" }
    )]
    Stopped(UserStatus),
    #[error(
        "ccgate has not received your team's Claude subscription login from the ccgate server yet (it fetches it at start and after every change). Check that the server is reachable with ccgate status, then try again."
    )]
    NotReceived,
    #[error(
        "ccgate refused this request: your team shares its Claude subscription through ccgate, so Claude Code must use the login ccgate provides, not one of your own. Remove your own credential (ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN in your shell, an apiKeyHelper in your settings, or a login made with /login) and restart Claude Code."
    )]
    Foreign,
}

#[derive(Debug)]
pub struct CredentialVault {
    placeholder: String,
    key_path: PathBuf,
    cache_path: PathBuf,
    context: Vec<u8>,
    held: RwLock<Option<Held>>,
    /// Wakes the task that fetches the credential.
    pub wakeup: Notify,
}

impl CredentialVault {
    /// Loads the placeholder (made once per device) and the cached secret.
    pub fn load(paths: &Paths, ledger: &Ledger, device_id: i64) -> Self {
        let placeholder = match ledger.get(PLACEHOLDER_KEY) {
            Ok(Some(placeholder)) => placeholder,
            _ => {
                let placeholder = format!("ccgate-placeholder-{}", uuid::Uuid::new_v4().simple());
                if let Err(error) = ledger.put(PLACEHOLDER_KEY, &placeholder) {
                    tracing::error!("cannot store the credential placeholder: {error}");
                }
                placeholder
            }
        };
        let vault = Self {
            placeholder,
            key_path: paths.state_dir().join("machine.key"),
            cache_path: paths.state_dir().join("credential.sealed"),
            context: format!("{CACHE_CONTEXT} {device_id}").into_bytes(),
            held: RwLock::new(None),
            wakeup: Notify::new(),
        };
        match vault.read_cache() {
            Ok(held) => *vault.held.write().expect("vault lock") = held,
            Err(error) => tracing::warn!("ignoring the cached team credential: {error}"),
        }
        vault
    }

    /// What managed settings give Claude Code in place of the login.
    pub fn placeholder(&self) -> &str {
        &self.placeholder
    }

    /// Whether the credential `mode` names is not (or no longer) held.
    pub fn needs_fetch(&self, mode: &CredentialMode) -> bool {
        let CredentialMode::TeamCredential {
            subscription_id,
            version,
            ..
        } = mode
        else {
            return false;
        };
        self.held
            .read()
            .expect("vault lock")
            .as_ref()
            .is_none_or(|held| held.subscription_id != *subscription_id || held.version != *version)
    }

    /// Keeps a fetched credential in memory and in the sealed cache.
    pub fn store(&self, fetched: CredentialResponse) -> Result<(), String> {
        let held = Held {
            subscription_id: fetched.subscription_id,
            kind: fetched.kind,
            version: fetched.version,
            secret: fetched.secret,
        };
        let written = self.write_cache(&held);
        *self.held.write().expect("vault lock") = Some(held);
        written
    }

    /// Leaving team-credential mode: nothing of the secret stays.
    pub fn forget(&self) {
        *self.held.write().expect("vault lock") = None;
        if let Err(error) = std::fs::remove_file(&self.cache_path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!("cannot remove the cached team credential: {error}");
        }
    }

    pub fn holds_secret(&self) -> bool {
        self.held.read().expect("vault lock").is_some()
    }

    /// Prepares a request's credentials for Anthropic: in team-credential
    /// mode the placeholder becomes the real credential (the only place it
    /// is ever written). Returns which credential the request goes out with.
    pub fn apply(
        &self,
        policy: Option<&Policy>,
        headers: &mut HeaderMap,
    ) -> Result<Option<CredentialUse>, CredentialRefusal> {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_owned());
        let api_key = headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned());
        let carries = bearer.is_some() || api_key.is_some();
        let Some(policy) = policy else {
            return Ok(carries.then_some(CredentialUse::Personal));
        };
        let CredentialMode::TeamCredential {
            subscription_id,
            kind,
            ..
        } = policy.credential
        else {
            return Ok(carries.then_some(CredentialUse::Personal));
        };
        if policy.status != UserStatus::Active {
            return Err(CredentialRefusal::Stopped(policy.status));
        }
        let placeholder = Some(self.placeholder.as_str());
        if bearer.as_deref() == placeholder || api_key.as_deref() == placeholder {
            let held = self.held.read().expect("vault lock");
            let held = held
                .as_ref()
                .filter(|held| held.subscription_id == subscription_id)
                .ok_or(CredentialRefusal::NotReceived)?;
            headers.remove(AUTHORIZATION);
            headers.remove(API_KEY_HEADER);
            let (name, value) = match kind {
                CredentialKind::OauthToken => {
                    (AUTHORIZATION.as_str(), format!("Bearer {}", held.secret))
                }
                CredentialKind::ApiKey => (API_KEY_HEADER, held.secret.clone()),
            };
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| CredentialRefusal::NotReceived)?;
            value.set_sensitive(true);
            headers.insert(name, value);
            return Ok(Some(CredentialUse::Team));
        }
        match (bearer, api_key) {
            (None, None) => Ok(None),
            (None, Some(_)) if policy.personal_api_keys == PersonalApiKeys::Allow => {
                Ok(Some(CredentialUse::PersonalApiKey))
            }
            _ => Err(CredentialRefusal::Foreign),
        }
    }

    fn read_cache(&self) -> Result<Option<Held>, String> {
        let text = match std::fs::read_to_string(&self.cache_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        let file: CacheFile = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let key = read_key(&self.key_path)?.ok_or("the machine key is missing")?;
        let sealed = hex::decode(&file.sealed).map_err(|e| e.to_string())?;
        let secret = key
            .open(&sealed, &self.context)
            .map_err(|e| e.to_string())?;
        Ok(Some(Held {
            subscription_id: file.subscription_id,
            kind: file.kind,
            version: file.version,
            secret: String::from_utf8(secret).map_err(|e| e.to_string())?,
        }))
    }

    fn write_cache(&self, held: &Held) -> Result<(), String> {
        let key = match read_key(&self.key_path)? {
            Some(key) => key,
            None => {
                let key = SealKey::generate();
                write_atomic(&self.key_path, key.to_hex().as_bytes(), 0o600)
                    .map_err(|e| format!("cannot write the machine key: {e}"))?;
                key
            }
        };
        let file = CacheFile {
            subscription_id: held.subscription_id,
            kind: held.kind,
            version: held.version,
            sealed: hex::encode(key.seal(held.secret.as_bytes(), &self.context)),
        };
        let text = serde_json::to_string(&file).expect("cache serializes");
        write_atomic(&self.cache_path, text.as_bytes(), 0o600)
            .map_err(|e| format!("cannot write the credential cache: {e}"))
    }
}

fn read_key(path: &Path) -> Result<Option<SealKey>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => SealKey::from_hex(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

#[cfg(test)]
mod tests;
