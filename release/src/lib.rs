//! Release bundles of the agent (`ccgate`, `ccgate-proxy`) for the server
//! to serve and devices to install: the binaries under their bundle names,
//! `SHA256SUMS`, `VERSION`, and a minisign signature over the sums whose
//! trusted comment names the version. The daemon installs a bundle only
//! when that signature checks out with a key it trusts.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use ccgate_quota::release::{SIGNATURE_FILE, SUMS_FILE, VERSION_FILE, file_name, trusted_comment};
use minisign::{KeyPair, SecretKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the release key: {0}")]
    Key(#[source] minisign::PError),
    #[error("signing: {0}")]
    Sign(#[source] minisign::PError),
}

/// A new key pair: (public key as minisign's `.pub` text, secret key as
/// hex of minisign's unencrypted key bytes). Keep the secret offline and
/// readable by the release maker only.
pub fn generate_keypair() -> Result<(String, String), ReleaseError> {
    let KeyPair { pk, sk } = KeyPair::generate_unencrypted_keypair().map_err(ReleaseError::Key)?;
    let public = pk.to_box().map_err(ReleaseError::Key)?.to_string();
    Ok((public, hex::encode(sk.to_bytes())))
}

fn secret_key(secret: &str) -> Result<SecretKey, ReleaseError> {
    let bytes = hex::decode(secret.trim()).map_err(|_| {
        ReleaseError::Key(minisign::PError::new(
            minisign::ErrorKind::Io,
            "the secret key file is not hex (made by ccgate-release keygen?)",
        ))
    })?;
    SecretKey::from_bytes(&bytes).map_err(ReleaseError::Key)
}

/// The public key (minisign's base64 line) of a secret key.
pub fn public_key_of(secret: &str) -> Result<String, ReleaseError> {
    let pk =
        minisign::PublicKey::from_secret_key(&secret_key(secret)?).map_err(ReleaseError::Key)?;
    Ok(pk.to_base64())
}

/// One program's binary for one platform.
#[derive(Debug, Clone)]
pub struct Binary {
    pub program: String,
    pub platform: String,
    pub path: PathBuf,
}

/// Writes a signed bundle of `binaries` into `out` (created if missing).
pub fn make_bundle(
    out: &Path,
    version: &str,
    binaries: &[Binary],
    secret: &str,
) -> Result<(), ReleaseError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ReleaseError::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut sums = String::new();
    for binary in binaries {
        let name = file_name(&binary.program, &binary.platform);
        let target = out.join(&name);
        std::fs::copy(&binary.path, &target).map_err(io(&binary.path))?;
        sums.push_str(&format!("{}  {name}\n", sha256_file(&target)?));
    }
    let sums_path = out.join(SUMS_FILE);
    std::fs::write(&sums_path, &sums).map_err(io(&sums_path))?;
    let version_path = out.join(VERSION_FILE);
    std::fs::write(&version_path, format!("{version}\n")).map_err(io(&version_path))?;
    let signature = sign(sums.as_bytes(), version, secret)?;
    let signature_path = out.join(SIGNATURE_FILE);
    std::fs::write(&signature_path, signature).map_err(io(&signature_path))?;
    Ok(())
}

/// A minisign signature over `data` whose trusted comment names `version`.
pub fn sign(data: &[u8], version: &str, secret: &str) -> Result<String, ReleaseError> {
    let sk = secret_key(secret)?;
    let signature = minisign::sign(
        None,
        &sk,
        Cursor::new(data),
        Some(&trusted_comment(version)),
        Some("ccgate agent release"),
    )
    .map_err(ReleaseError::Sign)?;
    Ok(signature.to_string())
}

fn sha256_file(path: &Path) -> Result<String, ReleaseError> {
    let error = |source| ReleaseError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(error)?;
        if read == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..read]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_signed_with_its_version_and_the_signature_checks_out() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("ccgate-proxy");
        std::fs::write(&binary, b"daemon bytes").unwrap();
        let (public, secret) = generate_keypair().unwrap();
        let out = dir.path().join("bundle");
        let binaries = [Binary {
            program: "ccgate-proxy".into(),
            platform: "linux-x86_64".into(),
            path: binary,
        }];
        make_bundle(&out, "0.2.0", &binaries, &secret).unwrap();

        let sums = std::fs::read(out.join(SUMS_FILE)).unwrap();
        assert!(String::from_utf8_lossy(&sums).ends_with("  ccgate-proxy-linux-x86_64\n"));
        let signature = std::fs::read_to_string(out.join(SIGNATURE_FILE)).unwrap();
        let key = minisign_verify::PublicKey::decode(&public).unwrap();
        let decoded = minisign_verify::Signature::decode(&signature).unwrap();
        key.verify(&sums, &decoded, false).unwrap();
        assert_eq!(decoded.trusted_comment(), trusted_comment("0.2.0"));
        // The base64 form (for CCGATE_RELEASE_PUBKEY) is the same key.
        let base64 = public_key_of(&secret).unwrap();
        let same = minisign_verify::PublicKey::from_base64(&base64).unwrap();
        same.verify(&sums, &decoded, false).unwrap();
        // Any change to the sums breaks it.
        let mut changed = sums.clone();
        changed[0] ^= 1;
        assert!(key.verify(&changed, &decoded, false).is_err());
    }
}
