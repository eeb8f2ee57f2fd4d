//! `ccgate verify-release`: the install script's signature check, run from
//! the downloaded `ccgate` before anything is installed. When this machine
//! trusts a release key (built into this binary, or in the root-only
//! `release-keys.pub`), the bundle's `SHA256SUMS` must be signed with it and
//! the downloaded binaries must be the signed ones; a server that drops the
//! signature is refused like one that forges it. Without a trusted key the
//! script's SHA-256 check against the server's list is all there is, and
//! this says so.

use std::path::Path;

use ccgate_machine::fsutil::sha256_file;
use ccgate_machine::paths::Paths;
use ccgate_proxy::update::verify::{self, VerifyError};
use ccgate_quota::release::{PROGRAMS, file_name, this_platform};

/// What the check found, for the script to print.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// Signed by a trusted key; the binaries are the signed ones.
    Signed { version: String },
    /// No key is trusted here: nothing to check the signature with.
    NoTrustedKey,
}

/// Checks `sums` and `signature` (absent: the bundle is unsigned) against
/// the keys this machine trusts, and the binaries in `dir` (named
/// `ccgate`, `ccgate-proxy`) against the signed sums.
pub fn verify_release(
    paths: &Paths,
    sums: &Path,
    signature: Option<&Path>,
    dir: &Path,
) -> Result<Checked, String> {
    let keys_file = paths.release_keys();
    let keys = verify::trusted_keys(&keys_file);
    if keys.is_empty() {
        return Ok(Checked::NoTrustedKey);
    }
    let Some(signature) = signature else {
        return Err(
            "this machine trusts a release key, but the server's bundle is not signed".to_owned(),
        );
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let sums = read(sums)?;
    let signature = String::from_utf8_lossy(&read(signature)?).into_owned();
    // Any version may be installed by hand; the updater alone refuses older ones.
    let verified = match verify::verify(&sums, &signature, &keys, "0", &keys_file) {
        Ok(verified) => verified,
        Err(VerifyError::NotNewer { .. }) => unreachable!("every version is newer than 0"),
        Err(error) => return Err(error.to_string()),
    };
    let platform = this_platform();
    for program in PROGRAMS {
        let name = file_name(program, &platform);
        let expected = verified
            .files
            .get(&name)
            .ok_or_else(|| format!("the signed release has no {name}"))?;
        let path = dir.join(program);
        let actual =
            sha256_file(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if actual != *expected {
            return Err(format!("{program} is not the signed release's {name}"));
        }
    }
    Ok(Checked::Signed {
        version: verified.version,
    })
}
