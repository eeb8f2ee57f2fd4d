//! The one place ccgate encrypts: secrets at rest (the server's subscription
//! credentials, the daemon's cached copy) are sealed with XChaCha20-Poly1305
//! under a 256-bit key, with a random 192-bit nonce per message, so a key
//! can seal any number of messages without nonce bookkeeping.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};

const NONCE_LEN: usize = 24;
pub const KEY_LEN: usize = 32;

/// A 256-bit key. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; KEY_LEN]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    #[error("a key must be {KEY_LEN} bytes, as 64 hex characters (got {0})")]
    BadKey(String),
    #[error("the sealed data is too short to hold a nonce")]
    Truncated,
    #[error("the sealed data does not open with this key (wrong key, or altered data)")]
    Rejected,
}

impl SealKey {
    /// A new key from the operating system's random number generator.
    pub fn generate() -> Self {
        let key = chacha20poly1305::Key::generate();
        Self(key.into())
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Reads 64 hex characters (surrounding whitespace is ignored).
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let describe = || format!("{} characters", text.chars().count());
        if text.len() != KEY_LEN * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SealError::BadKey(describe()));
        }
        let mut bytes = [0u8; KEY_LEN];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16)
                .map_err(|_| SealError::BadKey(describe()))?;
        }
        Ok(Self(bytes))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Encrypts and authenticates `plaintext`, bound to `context` (which must
    /// be given again to open it): nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = chacha20poly1305::XNonce::generate();
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Truncated);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = chacha20poly1305::XNonce::try_from(nonce).map_err(|_| SealError::Truncated)?;
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_context() {
        let key = SealKey::generate();
        let sealed = key.seal(b"sk-ant-oat01-secret", b"subscription 7");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open(&sealed, b"subscription 7").unwrap(),
            b"sk-ant-oat01-secret"
        );
        assert_eq!(
            key.open(&sealed, b"subscription 8"),
            Err(SealError::Rejected)
        );
        assert_eq!(
            SealKey::generate().open(&sealed, b"subscription 7"),
            Err(SealError::Rejected)
        );
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(
            key.open(&altered, b"subscription 7"),
            Err(SealError::Rejected)
        );
        assert_eq!(key.open(&sealed[..10], b"x"), Err(SealError::Truncated));
        // A fresh nonce each time: the same message seals differently.
        assert_ne!(key.seal(b"x", b""), key.seal(b"x", b""));
    }

    #[test]
    fn keys_read_and_write_hex() {
        let key = SealKey::generate();
        assert_eq!(SealKey::from_hex(&key.to_hex()).unwrap(), key);
        assert!(matches!(
            SealKey::from_hex("abc"),
            Err(SealError::BadKey(_))
        ));
        assert!(matches!(
            SealKey::from_hex(&"zz".repeat(32)),
            Err(SealError::BadKey(_))
        ));
        assert_eq!(format!("{key:?}"), "SealKey(<redacted>)");
    }
}
