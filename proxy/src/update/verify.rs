//! What lets a release in: a minisign signature over its `SHA256SUMS`, by
//! a key this machine trusts (the one built into this binary, or one a
//! root-only file lists), whose trusted comment names a version newer than
//! what runs here.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ccgate_quota::release::{
    AgentRelease, DAEMON, is_newer, parse_sums, version_in_trusted_comment,
};
use minisign_verify::{PublicKey, Signature};

/// The release key this binary was built with (`scripts/release.sh` sets it).
const BUILT_IN_KEY: Option<&str> = option_env!("CCGATE_RELEASE_PUBKEY");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("no release key is trusted on this machine (none built in, none in {0})")]
    NoKey(String),
    #[error("the signature of SHA256SUMS is unreadable: {0}")]
    Unreadable(String),
    #[error("SHA256SUMS is not signed by a key this machine trusts")]
    BadSignature,
    #[error("the signature names no ccgate release version")]
    NoVersion,
    #[error("release {offered} is not newer than {running}, which runs here")]
    NotNewer { offered: String, running: String },
    #[error("SHA256SUMS line {0} is malformed")]
    BadSums(usize),
}

/// A release whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub version: String,
    /// File name → SHA-256, as signed.
    pub files: BTreeMap<String, String>,
}

/// The keys this machine trusts: the built-in one and those in
/// `keys_file`, which counts only when root owns it and nobody else may
/// write it (a person must not be able to add a key).
pub fn trusted_keys(keys_file: &Path) -> Vec<PublicKey> {
    let mut keys: Vec<PublicKey> = BUILT_IN_KEY
        .and_then(|key| PublicKey::from_base64(key.trim()).ok())
        .into_iter()
        .collect();
    let Ok(meta) = std::fs::metadata(keys_file) else {
        return keys;
    };
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        tracing::warn!(
            "ignoring {}: release keys count only in a root-owned file nobody else can write",
            keys_file.display()
        );
        return keys;
    }
    let text = std::fs::read_to_string(keys_file).unwrap_or_default();
    keys.extend(
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("untrusted comment:"))
            .filter_map(|line| PublicKey::from_base64(line).ok()),
    );
    keys
}

/// Checks `sums` against `signature` with `keys`, and that the signed
/// version is newer than `running`.
pub fn verify(
    sums: &[u8],
    signature: &str,
    keys: &[PublicKey],
    running: &str,
    keys_file: &Path,
) -> Result<Verified, VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKey(keys_file.display().to_string()));
    }
    let signature =
        Signature::decode(signature).map_err(|e| VerifyError::Unreadable(e.to_string()))?;
    if !keys
        .iter()
        .any(|key| key.verify(sums, &signature, false).is_ok())
    {
        return Err(VerifyError::BadSignature);
    }
    let version = version_in_trusted_comment(signature.trusted_comment())
        .ok_or(VerifyError::NoVersion)?
        .to_owned();
    if !is_newer(&version, running) {
        return Err(VerifyError::NotNewer {
            offered: version,
            running: running.to_owned(),
        });
    }
    let text = String::from_utf8_lossy(sums);
    let files = parse_sums(&text).map_err(VerifyError::BadSums)?;
    Ok(Verified { version, files })
}

/// Whether to try `release` at all: auto-update on, the release signed, its
/// daemon for this platform different from the installed one, and its
/// advertised version newer (the signature decides in the end).
pub fn worth_trying(
    release: &AgentRelease,
    auto_update: bool,
    installed_build: Option<&str>,
    running: &str,
    platform: &str,
) -> bool {
    auto_update
        && release.signed
        && release
            .sha256_of(DAEMON, platform)
            .is_some_and(|sha| Some(sha) != installed_build)
        && is_newer(&release.version, running)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, sha: &str, signed: bool) -> AgentRelease {
        AgentRelease {
            version: version.into(),
            files: [("ccgate-proxy-linux-x86_64".to_owned(), sha.to_owned())].into(),
            signed,
        }
    }

    #[test]
    fn only_a_signed_newer_different_release_is_tried() {
        let p = "linux-x86_64";
        let newer = release("0.2.0", "bb", true);
        assert!(worth_trying(&newer, true, Some("aa"), "0.1.0", p));
        assert!(
            !worth_trying(&newer, false, Some("aa"), "0.1.0", p),
            "auto-update off"
        );
        assert!(
            !worth_trying(&newer, true, Some("bb"), "0.1.0", p),
            "already installed"
        );
        assert!(
            !worth_trying(&newer, true, Some("aa"), "0.2.0", p),
            "not newer"
        );
        assert!(!worth_trying(
            &release("0.2.0", "bb", false),
            true,
            Some("aa"),
            "0.1.0",
            p
        ));
        assert!(
            !worth_trying(&newer, true, Some("aa"), "0.1.0", "macos-aarch64"),
            "no build"
        );
    }

    fn key_file(dir: &Path, text: &str, mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("release-keys.pub");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_signature_by_a_trusted_key_over_these_sums_lets_a_newer_release_in() {
        let dir = tempfile::tempdir().unwrap();
        let (public, secret) = ccgate_release::generate_keypair().unwrap();
        let (stranger_public, stranger) = ccgate_release::generate_keypair().unwrap();
        let sums = format!("{}  ccgate-proxy-linux-x86_64\n", "ab".repeat(32));
        let signature = ccgate_release::sign(sums.as_bytes(), "0.2.0", &secret).unwrap();
        let keys_file = key_file(dir.path(), &public, 0o644);
        let keys = trusted_keys(&keys_file);
        assert_eq!(keys.len(), 1 + usize::from(BUILT_IN_KEY.is_some()));

        let verified = verify(sums.as_bytes(), &signature, &keys, "0.1.0", &keys_file).unwrap();
        assert_eq!(verified.version, "0.2.0");
        assert_eq!(verified.files.len(), 1);
        // Not newer than what runs: a replayed old release is refused.
        assert!(matches!(
            verify(sums.as_bytes(), &signature, &keys, "0.2.0", &keys_file),
            Err(VerifyError::NotNewer { .. })
        ));
        // Changed sums, or another key's signature, do not verify.
        let changed = sums.replace("ab", "cd");
        assert_eq!(
            verify(changed.as_bytes(), &signature, &keys, "0.1.0", &keys_file),
            Err(VerifyError::BadSignature)
        );
        let forged = ccgate_release::sign(sums.as_bytes(), "0.2.0", &stranger).unwrap();
        assert_eq!(
            verify(sums.as_bytes(), &forged, &keys, "0.1.0", &keys_file),
            Err(VerifyError::BadSignature)
        );
        // A keys file others may write does not count: a person could add theirs.
        let writable = key_file(dir.path(), &stranger_public, 0o666);
        assert_eq!(
            trusted_keys(&writable).len(),
            usize::from(BUILT_IN_KEY.is_some())
        );
    }

    #[test]
    fn without_a_key_nothing_verifies() {
        let error = verify(b"x", "sig", &[], "0.1.0", Path::new("/k")).unwrap_err();
        assert!(matches!(error, VerifyError::NoKey(_)));
    }
}
