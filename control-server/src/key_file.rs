//! The server key's file: `DATA_DIR/secret.key`, 64 hex characters, mode
//! 0600, created on the first start when `SECRET_KEY` is not set. It is
//! kept apart from the database on purpose: a copy of `ccgate.db` alone
//! does not reveal the subscription credentials sealed in it.

use std::io::Write;
use std::path::{Path, PathBuf};

use ccgate_quota::seal::{SealError, SealKey};

pub const KEY_FILE: &str = "secret.key";

/// Where the server key came from, for the log and for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `SECRET_KEY` (or `--secret-key`).
    Configured,
    /// The key file, as it was.
    File(PathBuf),
    /// The key file, written by this start.
    Created(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Configured => f.write_str("SECRET_KEY"),
            Self::File(path) | Self::Created(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error(
        "cannot read the server key {path}: {error} (restore it from your backup, or set SECRET_KEY)"
    )]
    Unreadable { path: PathBuf, error: String },
    #[error(
        "the server key {path} is malformed ({error}); it must hold 64 hex characters \
         (restore it from your backup, or set SECRET_KEY)"
    )]
    Malformed { path: PathBuf, error: SealError },
    #[error(
        "the database holds encrypted subscription credentials but the server key {path} is \
         missing: restore it from your backup, or set SECRET_KEY to the key they were sealed with"
    )]
    Missing { path: PathBuf },
    #[error("cannot create the server key {path}: {error}")]
    Create { path: PathBuf, error: String },
}

/// The server key: `configured` when given, else the key file at `path`.
/// A missing file is created with a new key, unless the database already
/// holds data sealed with some key (`sealed_data_exists`): a new key could
/// never open it, so that is an error instead.
pub fn resolve(
    path: &Path,
    configured: Option<&SealKey>,
    sealed_data_exists: bool,
) -> Result<(SealKey, KeySource), KeyFileError> {
    if let Some(key) = configured {
        return Ok((key.clone(), KeySource::Configured));
    }
    match read(path)? {
        Some(key) => Ok((key, KeySource::File(path.to_owned()))),
        None if sealed_data_exists => Err(KeyFileError::Missing {
            path: path.to_owned(),
        }),
        None => create(path),
    }
}

/// The key in the file, `None` when there is no file.
fn read(path: &Path) -> Result<Option<SealKey>, KeyFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(KeyFileError::Unreadable {
                path: path.to_owned(),
                error: error.to_string(),
            });
        }
    };
    warn_if_readable_by_others(path);
    SealKey::from_hex(&text)
        .map(Some)
        .map_err(|error| KeyFileError::Malformed {
            path: path.to_owned(),
            error,
        })
}

fn create(path: &Path) -> Result<(SealKey, KeySource), KeyFileError> {
    let key = SealKey::generate();
    let failed = |error: std::io::Error| KeyFileError::Create {
        path: path.to_owned(),
        error: error.to_string(),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        // Another process made it meanwhile: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return match read(path)? {
                Some(key) => Ok((key, KeySource::File(path.to_owned()))),
                None => Err(failed(error)),
            };
        }
        Err(error) => return Err(failed(error)),
    };
    file.write_all(format!("{}\n", key.to_hex()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    Ok((key, KeySource::Created(path.to_owned())))
}

/// Mode bits of the key file beyond 0600, if any (`None` elsewhere than Unix).
pub fn wider_than_owner_only(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

fn warn_if_readable_by_others(path: &Path) {
    if let Some(mode) = wider_than_owner_only(path) {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{mode:04o}"),
            "the server key can be read by others than its owner; run chmod 600 on it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_created_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let (created, source) = resolve(&path, None, false).unwrap();
        assert_eq!(source, KeySource::Created(path.clone()));
        assert_eq!(wider_than_owner_only(&path), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), created.to_hex());
        let (again, source) = resolve(&path, None, true).unwrap();
        assert_eq!(again, created);
        assert_eq!(source, KeySource::File(path));
    }

    #[test]
    fn the_configured_key_wins_and_writes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let key = SealKey::generate();
        let (used, source) = resolve(&path, Some(&key), false).unwrap();
        assert_eq!((used, source), (key, KeySource::Configured));
        assert!(!path.exists());
    }

    #[test]
    fn a_malformed_or_missing_file_is_an_error_naming_secret_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let missing = resolve(&path, None, true).unwrap_err();
        assert!(matches!(missing, KeyFileError::Missing { .. }));
        assert!(missing.to_string().contains("SECRET_KEY"), "{missing}");
        assert!(!path.exists(), "no new key over sealed data");
        std::fs::write(&path, "not a key").unwrap();
        let malformed = resolve(&path, None, false).unwrap_err();
        assert!(matches!(malformed, KeyFileError::Malformed { .. }));
        assert!(malformed.to_string().contains("SECRET_KEY"), "{malformed}");
    }
}
