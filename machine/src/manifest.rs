//! The integrity manifest: what `ccgate setup` installed, with the SHA-256
//! and mode of each protected file, ccgate's managed-settings keys, and the
//! directories setup created. Written by the installer, read by the
//! watchdog and by `ccgate uninstall`; it lives with the backups in the
//! root-only backup dir.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fsutil::{self, write_atomic};
use crate::paths::Paths;

pub const MANIFEST_VERSION: u32 = 1;

/// Held while the manifest or a backup is read for a repair or rewritten
/// (the watchdog and the token-rotation hook run on different threads).
pub static MANIFEST_LOCK: Mutex<()> = Mutex::new(());

/// One of ccgate's own files, checked by hash and restored from its backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protected {
    DaemonBinary,
    Config,
    DeviceToken,
    CaCert,
    CaKey,
    ServiceFile,
}

impl Protected {
    pub const ALL: [Protected; 6] = [
        Self::DaemonBinary,
        Self::Config,
        Self::DeviceToken,
        Self::CaCert,
        Self::CaKey,
        Self::ServiceFile,
    ];

    /// Where the file lives.
    pub fn path(self, paths: &Paths) -> PathBuf {
        match self {
            Self::DaemonBinary => paths.daemon_binary(),
            Self::Config => paths.config_file(),
            Self::DeviceToken => paths.device_token(),
            Self::CaCert => paths.ca_cert(),
            Self::CaKey => paths.ca_key(),
            Self::ServiceFile => paths.service_file(),
        }
    }

    /// Where its root-only copy lives.
    pub fn backup_path(self, paths: &Paths) -> PathBuf {
        let name = match self {
            Self::DaemonBinary => "ccgate-proxy",
            Self::Config => "config.toml",
            Self::DeviceToken => "device.token",
            Self::CaCert => "ca.pem",
            Self::CaKey => "ca.key",
            Self::ServiceFile => "service",
        };
        paths.backup_dir().join(name)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::DaemonBinary => "daemon binary",
            Self::Config => "config",
            Self::DeviceToken => "device token",
            Self::CaCert => "CA certificate",
            Self::CaKey => "CA key",
            Self::ServiceFile => "service file",
        }
    }

    /// The mode setup gives the file.
    pub fn mode(self) -> u32 {
        match self {
            Self::DaemonBinary => 0o755,
            Self::CaCert | Self::ServiceFile => 0o644,
            Self::Config | Self::DeviceToken | Self::CaKey => 0o600,
        }
    }
}

/// A protected file as installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub file: Protected,
    pub sha256: String,
    pub mode: u32,
    pub uid: u32,
}

impl FileRecord {
    /// Records the file as it is now.
    pub fn of(paths: &Paths, file: Protected) -> io::Result<Self> {
        let path = file.path(paths);
        let metadata = std::fs::metadata(&path)?;
        Ok(Self {
            file,
            sha256: fsutil::sha256_file(&path)?,
            mode: metadata.mode() & 0o7777,
            uid: metadata.uid(),
        })
    }
}

/// How the service was set up, so doctor and uninstall know what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Systemd,
    Launchd,
    /// `ccgate-proxy --daemon` started by setup; does not survive a reboot.
    Detached,
    /// `--no-service`: whoever installed starts the daemon.
    None,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Systemd => "systemd",
            Self::Launchd => "launchd",
            Self::Detached => "detached",
            Self::None => "none",
        }
    }
}

/// ccgate's part of Claude Code's managed settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRecord {
    /// ccgate's entries under `env`, exactly as setup wrote them.
    pub env: BTreeMap<String, String>,
    /// Whether a managed-settings file existed before the first setup (its
    /// bytes are in [`Manifest::original_settings_path`]).
    pub had_original: bool,
    /// The original file's mode, given back on uninstall.
    #[serde(default)]
    pub original_mode: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub written_at: Timestamp,
    pub service: ServiceKind,
    pub files: Vec<FileRecord>,
    pub settings: SettingsRecord,
    /// Directories setup created (system paths, parents first); uninstall
    /// removes them again when they are empty.
    pub created_dirs: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("cannot {action} the integrity manifest {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the integrity manifest {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    /// The manifest, or `None` when ccgate setup never wrote one.
    pub fn load(paths: &Paths) -> Result<Option<Self>, ManifestError> {
        let path = paths.manifest();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ManifestError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let manifest: Self =
            serde_json::from_slice(&bytes).map_err(|e| ManifestError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if manifest.version != MANIFEST_VERSION {
            return Err(ManifestError::Invalid {
                path,
                message: format!(
                    "version {} (this ccgate knows {MANIFEST_VERSION})",
                    manifest.version
                ),
            });
        }
        Ok(Some(manifest))
    }

    /// Writes the manifest (0600) into the backup dir, which must exist.
    pub fn save(&self, paths: &Paths) -> Result<(), ManifestError> {
        let path = paths.manifest();
        let mut bytes = serde_json::to_vec_pretty(self).expect("manifest serializes");
        bytes.push(b'\n');
        write_atomic(&path, &bytes, 0o600).map_err(|source| ManifestError::Io {
            action: "write",
            path,
            source,
        })
    }

    pub fn record(&self, file: Protected) -> Option<&FileRecord> {
        self.files.iter().find(|r| r.file == file)
    }

    /// Replaces (or adds) the record of `file`.
    pub fn set_record(&mut self, record: FileRecord) {
        self.files.retain(|r| r.file != record.file);
        self.files.push(record);
        self.files.sort_by_key(|r| r.file);
    }

    /// Managed settings as setup wrote them (restored when the file is
    /// deleted or no longer parses).
    pub fn installed_settings_path(paths: &Paths) -> PathBuf {
        paths.backup_dir().join("managed-settings.json")
    }

    /// Managed settings as they were before the first setup.
    pub fn original_settings_path(paths: &Paths) -> PathBuf {
        paths.backup_dir().join("managed-settings.original.json")
    }
}

/// Copies `from` to `to` through a temp file and a rename, with `mode`.
/// Streams, so the daemon binary is never held in memory whole.
pub fn copy_atomic(from: &Path, to: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = to.parent().unwrap_or(Path::new("."));
    let name = to
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let temp = dir.join(format!(
        ".{}.copy{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut source = std::fs::File::open(from)?;
        let mut target = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temp)?;
        target.set_permissions(std::fs::Permissions::from_mode(mode))?;
        io::copy(&mut source, &mut target)?;
        target.sync_all()?;
        std::fs::rename(&temp, to)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Platform;

    #[test]
    fn a_saved_manifest_loads_back_and_an_absent_one_is_none() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::Linux);
        assert!(Manifest::load(&paths).unwrap().is_none());
        fsutil::create_dir_with_mode(&paths.backup_dir(), 0o700).unwrap();
        write_atomic(&paths.config_file(), b"x = 1\n", 0o600).unwrap();
        let mut manifest = Manifest {
            version: MANIFEST_VERSION,
            written_at: Timestamp::now(),
            service: ServiceKind::None,
            files: vec![],
            settings: SettingsRecord {
                env: BTreeMap::from([("HTTPS_PROXY".into(), "http://127.0.0.1:1".into())]),
                had_original: false,
                original_mode: None,
            },
            created_dirs: vec!["/etc/ccgate".into()],
        };
        manifest.set_record(FileRecord::of(&paths, Protected::Config).unwrap());
        manifest.save(&paths).unwrap();
        assert_eq!(fsutil::mode_of(&paths.manifest()).unwrap(), 0o600);
        let loaded = Manifest::load(&paths).unwrap().unwrap();
        assert_eq!(loaded, manifest);
        let record = loaded.record(Protected::Config).unwrap();
        assert_eq!(record.sha256, fsutil::sha256_hex(b"x = 1\n"));
        assert_eq!(record.mode, 0o600);

        std::fs::write(paths.manifest(), b"{\"version\": 9}").unwrap();
        assert!(
            Manifest::load(&paths)
                .unwrap_err()
                .to_string()
                .contains("not valid")
        );
    }

    #[test]
    fn copy_atomic_copies_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&from, b"binary").unwrap();
        copy_atomic(&from, &to, 0o755).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"binary");
        assert_eq!(fsutil::mode_of(&to).unwrap(), 0o755);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
