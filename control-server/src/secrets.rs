//! Secrets: random tokens from the OS RNG, their SHA-256 hashes (the only
//! form stored), install codes, and argon2id password hashes.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

/// SHA-256 of a secret; the in-memory key for device tokens.
pub type TokenHash = [u8; 32];

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS RNG failing is not something a server can recover from.
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// A 256-bit random token as 64 hex characters.
pub fn new_token() -> String {
    hex::encode(random_bytes::<32>())
}

/// A token with a readable prefix, so a leaked one can be recognised
/// (`ccs_` sessions, `cca_` API tokens).
pub fn new_prefixed_token(prefix: &str) -> String {
    format!("{prefix}{}", new_token())
}

pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

pub fn hash_token_hex(token: &str) -> String {
    hex::encode(hash_token(token))
}

pub fn token_hash_from_hex(text: &str) -> Option<TokenHash> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// Crockford's base32 alphabet: no I, L, O or U, so codes read aloud well.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_PREFIX: &str = "CCG";
const CODE_GROUPS: usize = 4;
const CODE_GROUP_LEN: usize = 4;

/// A new install code `CCG-XXXX-XXXX-XXXX-XXXX`: 16 base32 characters,
/// 80 bits from the OS RNG.
pub fn new_install_code() -> String {
    let bytes = random_bytes::<10>();
    // 80 bits → 16 groups of 5 bits.
    let mut bits: u128 = 0;
    for byte in bytes {
        bits = (bits << 8) | u128::from(byte);
    }
    let chars: Vec<char> = (0..CODE_GROUPS * CODE_GROUP_LEN)
        .rev()
        .map(|i| char::from(CODE_ALPHABET[((bits >> (i * 5)) & 31) as usize]))
        .collect();
    let groups: Vec<String> = chars
        .chunks(CODE_GROUP_LEN)
        .map(|g| g.iter().collect())
        .collect();
    format!("{CODE_PREFIX}-{}", groups.join("-"))
}

/// The stored form of an install code: the hash of its normalised text, so
/// case, spaces, dashes and look-alike letters typed by a person still match.
pub fn hash_install_code(code: &str) -> String {
    let mut normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect();
    if let Some(rest) = normal.strip_prefix("CCG") {
        normal = rest.to_owned();
    }
    hash_token_hex(&format!("install-code:{normal}"))
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// An argon2id PHC string for `password` (with a fresh random salt).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Compares two secrets without an early exit on the first difference.
/// Bounds how many argon2id computations run at once: each holds about
/// 19 MiB for its duration, so a burst of logins (from many addresses)
/// queues here instead of growing the server's memory.
#[derive(Debug)]
pub struct PasswordWork {
    permits: tokio::sync::Semaphore,
    running: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// Argon2 computations at once.
pub const PASSWORD_WORK_PERMITS: usize = 2;

impl Default for PasswordWork {
    fn default() -> Self {
        Self::new(PASSWORD_WORK_PERMITS)
    }
}

impl PasswordWork {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(permits.max(1)),
            running: Default::default(),
            peak: Default::default(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        use std::sync::atomic::Ordering;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError(e.to_string()))?;
        let running = self.running.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(running, Ordering::AcqRel);
        let outcome = tokio::task::spawn_blocking(work).await;
        self.running.fetch_sub(1, Ordering::AcqRel);
        outcome.map_err(|e| PasswordError(e.to_string()))
    }

    /// [`verify_password`], waiting for a permit.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, PasswordError> {
        self.run(move || verify_password(&password, &phc)).await
    }

    /// [`hash_password`], waiting for a permit.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_password(&password)).await?
    }

    /// The most computations that ran at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::Acquire)
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_codes_are_readable_and_normalise() {
        let code = new_install_code();
        assert_eq!(code.len(), "CCG-XXXX-XXXX-XXXX-XXXX".len());
        assert!(code.starts_with("CCG-"));
        assert_ne!(code, new_install_code());
        let sloppy = code.to_lowercase().replace('-', " ");
        assert_eq!(hash_install_code(&code), hash_install_code(&sloppy));
        let without_prefix = code.trim_start_matches("CCG-");
        assert_eq!(hash_install_code(&code), hash_install_code(without_prefix));
    }

    #[test]
    fn tokens_are_256_bits_and_hash_round_trips() {
        let token = new_token();
        assert_eq!(token.len(), 64);
        let hex_hash = hash_token_hex(&token);
        assert_eq!(token_hash_from_hex(&hex_hash), Some(hash_token(&token)));
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn password_work_runs_at_most_its_permits_at_once() {
        let work = std::sync::Arc::new(PasswordWork::new(2));
        let hash = hash_password("a long password").unwrap();
        let checks = (0..12).map(|i| {
            let (work, hash) = (std::sync::Arc::clone(&work), hash.clone());
            tokio::spawn(async move { work.verify(format!("guess {i}"), hash).await.unwrap() })
        });
        for check in checks {
            assert!(!check.await.unwrap());
        }
        assert!(work.peak() >= 1 && work.peak() <= 2, "{}", work.peak());
    }
}
