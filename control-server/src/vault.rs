//! Subscription credentials at rest: sealed with XChaCha20-Poly1305
//! (`ccgate_quota::seal`) under the server key, bound to a context of
//! their own so a sealed credential cannot be passed off as other sealed
//! data. Plain text exists only while a credential is enrolled or sent to
//! a device, as a [`Credential`] that never prints or serialises itself.

use ccgate_quota::seal::{SealError, SealKey};

/// What every sealed subscription credential is bound to.
pub const CREDENTIAL_CONTEXT: &[u8] = b"ccgate subscription credential";
pub const CHANNEL_CONTEXT: &[u8] = b"ccgate alert channel";
pub const REFRESH_TOKEN_CONTEXT: &[u8] = b"ccgate sso refresh token";
pub const DEVICE_TOKEN_CONTEXT: &[u8] = b"ccgate replacement device token";

/// A subscription's credential in plain text. `Debug` shows no part of it;
/// it has no `Serialize` and no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(String);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Read from a request body as a plain string (so bodies holding one can
/// derive `Debug` without showing it).
impl<'de> serde::Deserialize<'de> for Credential {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

impl Credential {
    /// Characters of the end shown to admins.
    pub const HINT_LEN: usize = 4;

    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret itself, for the one answer that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_secret(self) -> String {
        self.0
    }

    /// Its last four characters: all an admin ever sees again.
    pub fn hint(&self) -> String {
        let count = self.0.chars().count();
        self.0
            .chars()
            .skip(count.saturating_sub(Self::HINT_LEN))
            .collect()
    }
}

/// Seals and opens credentials with the server key.
#[derive(Debug, Clone)]
pub struct Vault {
    key: SealKey,
}

impl Vault {
    pub fn new(key: SealKey) -> Self {
        Self { key }
    }

    pub fn seal(&self, credential: &Credential) -> Vec<u8> {
        self.key.seal(credential.0.as_bytes(), CREDENTIAL_CONTEXT)
    }

    /// Seals an alert channel's settings (they hold webhook URLs, tokens
    /// and passwords).
    pub fn seal_channel(&self, config: &[u8]) -> Vec<u8> {
        self.key.seal(config, CHANNEL_CONTEXT)
    }

    pub fn open_channel(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.key.open(sealed, CHANNEL_CONTEXT)
    }

    /// Seals the identity provider's refresh token of a session.
    pub fn seal_refresh_token(&self, token: &str) -> Vec<u8> {
        self.key.seal(token.as_bytes(), REFRESH_TOKEN_CONTEXT)
    }

    pub fn open_refresh_token(&self, sealed: &[u8]) -> Result<String, SealError> {
        let bytes = self.key.open(sealed, REFRESH_TOKEN_CONTEXT)?;
        String::from_utf8(bytes).map_err(|_| SealError::Rejected)
    }

    /// Seals a device's replacement token, for the other replicas.
    pub fn seal_device_token(&self, token: &str) -> Vec<u8> {
        self.key.seal(token.as_bytes(), DEVICE_TOKEN_CONTEXT)
    }

    pub fn open_device_token(&self, sealed: &[u8]) -> Result<String, SealError> {
        let bytes = self.key.open(sealed, DEVICE_TOKEN_CONTEXT)?;
        String::from_utf8(bytes).map_err(|_| SealError::Rejected)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Credential, SealError> {
        let bytes = self.key.open(sealed, CREDENTIAL_CONTEXT)?;
        // Only text is ever sealed; anything else was not sealed by ccgate.
        String::from_utf8(bytes)
            .map(Credential)
            .map_err(|_| SealError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_open_only_with_their_key_and_context() {
        let vault = Vault::new(SealKey::generate());
        let credential = Credential::new("sk-ant-oat01-abcdefgh-wxyz".to_owned());
        let sealed = vault.seal(&credential);
        assert_eq!(vault.open(&sealed).unwrap(), credential);
        assert!(Vault::new(SealKey::generate()).open(&sealed).is_err());
        let other = SealKey::generate();
        let foreign = Vault::new(other.clone());
        let elsewhere = other.seal(b"sk-ant-oat01-abcdefgh-wxyz", b"some other context");
        assert!(foreign.open(&elsewhere).is_err(), "context is checked");
    }

    #[test]
    fn the_hint_is_the_last_four_characters_and_debug_hides_all() {
        let credential = Credential::new("sk-ant-api03-secret-wxyz".to_owned());
        assert_eq!(credential.hint(), "wxyz");
        assert_eq!(Credential::new("ab".to_owned()).hint(), "ab");
        assert_eq!(format!("{credential:?}"), "Credential(<redacted>)");
    }
}
