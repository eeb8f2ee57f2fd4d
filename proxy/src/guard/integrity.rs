//! Checking ccgate's installed files against the manifest and repairing
//! them from the backups. Synchronous; the watchdog decides when to run it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil::{self, write_atomic};
use crate::guard::manifest::{FileRecord, Manifest, Protected, copy_atomic};
use crate::guard::settings;
use crate::paths::Paths;

/// Something the watchdog looks after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    File(Protected),
    /// The root-only copy of a protected file.
    Backup(Protected),
    ManagedSettings,
    /// The manifest itself (rewritten from the watchdog's memory).
    Manifest,
}

impl Item {
    pub fn path(self, paths: &Paths) -> PathBuf {
        match self {
            Self::File(file) => file.path(paths),
            Self::Backup(file) => file.backup_path(paths),
            Self::ManagedSettings => paths.managed_settings(),
            Self::Manifest => paths.manifest(),
        }
    }

    pub fn label(self) -> String {
        match self {
            Self::File(file) => file.label().to_owned(),
            Self::Backup(file) => format!("backup of the {}", file.label()),
            Self::ManagedSettings => "Claude Code managed settings".to_owned(),
            Self::Manifest => "integrity manifest".to_owned(),
        }
    }

    /// Everything the manifest protects.
    pub fn all(manifest: &Manifest) -> Vec<Item> {
        let mut items: Vec<Item> = manifest.files.iter().map(|r| Self::File(r.file)).collect();
        items.extend(manifest.files.iter().map(|r| Self::Backup(r.file)));
        items.push(Self::ManagedSettings);
        items
    }
}

/// Hashes already verified, by file identity. A file whose device, inode,
/// size and change time (ctime, which no one can set back) are unchanged
/// still has the content it had, so the large daemon binary is hashed once,
/// not on every scan.
#[derive(Debug, Default)]
pub struct HashCache {
    verified: HashMap<PathBuf, (Fingerprint, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Fingerprint {
    fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            ctime: metadata.ctime(),
            ctime_nsec: metadata.ctime_nsec(),
        }
    }
}

impl HashCache {
    /// The SHA-256 of `path`, from the cache when the file is unchanged.
    pub fn sha256(&mut self, path: &Path) -> io::Result<String> {
        let before = Fingerprint::of(&std::fs::metadata(path)?);
        if let Some((known, hash)) = self.verified.get(path)
            && *known == before
        {
            return Ok(hash.clone());
        }
        let hash = fsutil::sha256_file(path)?;
        // Only trust the hash if the file did not change while it was read.
        if Fingerprint::of(&std::fs::metadata(path)?) == before {
            self.verified
                .insert(path.to_owned(), (before, hash.clone()));
        }
        Ok(hash)
    }
}

/// A difference from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub item: Item,
    /// `deleted`, `modified`, `replaced`, `permissions`, `settings_key`,
    /// `unreadable` (the vocabulary of the tamper event).
    pub what: &'static str,
    pub detail: String,
}

/// Checks `items` against `manifest`.
pub fn inspect(
    paths: &Paths,
    manifest: &Manifest,
    items: &[Item],
    cache: &mut HashCache,
) -> Vec<Damage> {
    items
        .iter()
        .filter_map(|&item| {
            let found = match item {
                Item::File(file) => manifest
                    .record(file)
                    .and_then(|record| inspect_file(&file.path(paths), record, cache)),
                Item::Backup(file) => manifest.record(file).and_then(|record| {
                    let path = file.backup_path(paths);
                    match cache.sha256(&path) {
                        Ok(hash) if hash == record.sha256 => None,
                        Ok(_) => Some(("modified", "its content changed".to_owned())),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            Some(("deleted", "it is gone".to_owned()))
                        }
                        Err(e) => Some(("unreadable", e.to_string())),
                    }
                }),
                Item::ManagedSettings => inspect_settings(paths, manifest),
                Item::Manifest => None,
            };
            found.map(|(what, detail)| Damage { item, what, detail })
        })
        .collect()
}

fn inspect_file(
    path: &Path,
    record: &FileRecord,
    cache: &mut HashCache,
) -> Option<(&'static str, String)> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some(("deleted", "it is gone".to_owned()));
        }
        Err(e) => return Some(("unreadable", e.to_string())),
    };
    if !metadata.file_type().is_file() {
        return Some(("replaced", "it is no longer a regular file".to_owned()));
    }
    match cache.sha256(path) {
        Ok(hash) if hash != record.sha256 => {
            return Some((
                "modified",
                format!(
                    "SHA-256 {} instead of {}",
                    short(&hash),
                    short(&record.sha256)
                ),
            ));
        }
        Ok(_) => {}
        Err(e) => return Some(("unreadable", e.to_string())),
    }
    let mode = metadata.mode() & 0o7777;
    if mode != record.mode || metadata.uid() != record.uid {
        return Some((
            "permissions",
            format!(
                "mode {mode:o} owner {} instead of mode {:o} owner {}",
                metadata.uid(),
                record.mode,
                record.uid
            ),
        ));
    }
    None
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn inspect_settings(paths: &Paths, manifest: &Manifest) -> Option<(&'static str, String)> {
    let bytes = match std::fs::read(paths.managed_settings()) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some(("deleted", "it is gone".to_owned()));
        }
        Err(e) => return Some(("unreadable", e.to_string())),
    };
    match settings::drifted_keys(&bytes, &manifest.settings.env) {
        Ok(keys) if keys.is_empty() => None,
        Ok(keys) => Some((
            "settings_key",
            format!("ccgate's keys changed or missing: {}", keys.join(", ")),
        )),
        Err(e) => Some(("unreadable", format!("the file no longer parses: {e}"))),
    }
}

/// Repairs one damage. The error says why it could not be repaired.
pub fn repair(paths: &Paths, manifest: &Manifest, damage: &Damage) -> Result<(), String> {
    match damage.item {
        Item::File(file) => {
            let record = manifest
                .record(file)
                .ok_or_else(|| "not in the manifest".to_owned())?;
            repair_file(paths, file, record, damage.what)
        }
        Item::Backup(file) => {
            // The live file is still right (it is checked first): copy it back.
            let record = manifest
                .record(file)
                .ok_or_else(|| "not in the manifest".to_owned())?;
            let live = file.path(paths);
            if fsutil::sha256_file(&live).ok().as_deref() != Some(record.sha256.as_str()) {
                return Err(format!(
                    "the backup and {} are both changed",
                    paths.to_system(&live).display()
                ));
            }
            fsutil::create_dir_with_mode(&paths.backup_dir(), 0o700)
                .and_then(|()| copy_atomic(&live, &file.backup_path(paths), 0o600))
                .map_err(|e| format!("cannot rewrite the backup: {e}"))
        }
        Item::ManagedSettings => repair_settings(paths, manifest, damage.what),
        Item::Manifest => manifest.save(paths).map_err(|e| e.to_string()),
    }
}

fn repair_file(
    paths: &Paths,
    file: Protected,
    record: &FileRecord,
    what: &str,
) -> Result<(), String> {
    let live = file.path(paths);
    if what == "permissions" {
        return std::fs::set_permissions(&live, std::fs::Permissions::from_mode(record.mode))
            .and_then(|()| std::os::unix::fs::chown(&live, Some(record.uid), None))
            .map_err(|e| format!("cannot reset its permissions: {e}"));
    }
    let backup = file.backup_path(paths);
    match fsutil::sha256_file(&backup) {
        Ok(hash) if hash == record.sha256 => {}
        Ok(_) => return Err("its backup was changed too".to_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err("its backup is gone too".to_owned());
        }
        Err(e) => return Err(format!("its backup cannot be read: {e}")),
    }
    if std::fs::symlink_metadata(&live).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&live).map_err(|e| format!("cannot clear the way: {e}"))?;
    }
    if let Some(dir) = live.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot recreate its directory: {e}"))?;
    }
    copy_atomic(&backup, &live, record.mode)
        .and_then(|()| std::os::unix::fs::chown(&live, Some(record.uid), None))
        .map_err(|e| format!("cannot restore it from the backup: {e}"))
}

fn repair_settings(paths: &Paths, manifest: &Manifest, what: &str) -> Result<(), String> {
    let path = paths.managed_settings();
    let env = &manifest.settings.env;
    let base = if what == "settings_key" {
        std::fs::read(&path).ok()
    } else {
        // Gone or unparsable: start again from the file as setup wrote it.
        std::fs::read(Manifest::installed_settings_path(paths)).ok()
    };
    let bytes = settings::merge(base.as_deref(), env)
        .or_else(|_| settings::merge(None, env))
        .map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot recreate its directory: {e}"))?;
    }
    write_atomic(&path, &bytes, 0o644).map_err(|e| format!("cannot rewrite it: {e}"))
}

/// The damage still unrepaired, by item, as one line for the gate's message.
pub fn describe_unresolved(paths: &Paths, unresolved: &BTreeMap<Item, String>) -> Option<String> {
    if unresolved.is_empty() {
        return None;
    }
    Some(
        unresolved
            .iter()
            .map(|(item, why)| {
                format!(
                    "the {} {} was changed and {why}",
                    item.label(),
                    paths.to_system(&item.path(paths)).display()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::guard::manifest::{MANIFEST_VERSION, ServiceKind, SettingsRecord};
    use crate::paths::Platform;

    /// A config file, its backup and managed settings under a temp root.
    fn installed() -> (tempfile::TempDir, Paths, Manifest) {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path(), Platform::Linux);
        fsutil::create_dir_with_mode(&paths.backup_dir(), 0o700).unwrap();
        write_atomic(&paths.config_file(), b"device_id = 1\n", 0o600).unwrap();
        copy_atomic(
            &paths.config_file(),
            &Protected::Config.backup_path(&paths),
            0o600,
        )
        .unwrap();
        let env = BTreeMap::from([("HTTPS_PROXY".to_owned(), "http://127.0.0.1:1".to_owned())]);
        std::fs::create_dir_all(paths.managed_settings().parent().unwrap()).unwrap();
        let bytes = settings::merge(Some(b"{\"model\":\"opus\"}"), &env).unwrap();
        write_atomic(&paths.managed_settings(), &bytes, 0o644).unwrap();
        write_atomic(&Manifest::installed_settings_path(&paths), &bytes, 0o600).unwrap();
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            written_at: jiff::Timestamp::now(),
            service: ServiceKind::None,
            files: vec![FileRecord::of(&paths, Protected::Config).unwrap()],
            settings: SettingsRecord {
                env,
                had_original: true,
                original_mode: Some(0o644),
            },
            created_dirs: vec![],
        };
        (root, paths, manifest)
    }

    fn check_and_repair(paths: &Paths, manifest: &Manifest) -> Vec<(Damage, Result<(), String>)> {
        inspect(
            paths,
            manifest,
            &Item::all(manifest),
            &mut HashCache::default(),
        )
        .into_iter()
        .map(|damage| {
            let result = repair(paths, manifest, &damage);
            (damage, result)
        })
        .collect()
    }

    #[test]
    fn a_whole_install_has_no_damage() {
        let (_root, paths, manifest) = installed();
        let mut cache = HashCache::default();
        assert!(inspect(&paths, &manifest, &Item::all(&manifest), &mut cache).is_empty());
        // A same-size rewrite changes the ctime, so the cache does not hide it.
        std::fs::write(paths.config_file(), b"device_id = 7\n").unwrap();
        let damage = inspect(&paths, &manifest, &Item::all(&manifest), &mut cache);
        assert_eq!(damage.len(), 1, "{damage:?}");
        assert_eq!(damage[0].what, "modified");
    }

    #[test]
    fn a_changed_file_is_restored_from_its_backup() {
        let (_root, paths, manifest) = installed();
        std::fs::write(paths.config_file(), b"device_id = 666\n").unwrap();
        let repaired = check_and_repair(&paths, &manifest);
        assert_eq!(repaired.len(), 1);
        assert_eq!(repaired[0].0.what, "modified");
        assert_eq!(repaired[0].1, Ok(()));
        assert_eq!(
            std::fs::read(paths.config_file()).unwrap(),
            b"device_id = 1\n"
        );
        assert_eq!(fsutil::mode_of(&paths.config_file()).unwrap(), 0o600);

        std::fs::set_permissions(paths.config_file(), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let repaired = check_and_repair(&paths, &manifest);
        assert_eq!(repaired[0].0.what, "permissions");
        assert_eq!(fsutil::mode_of(&paths.config_file()).unwrap(), 0o600);
    }

    #[test]
    fn the_service_file_is_guarded_like_the_others() {
        let (_root, paths, mut manifest) = installed();
        let unit = paths.service_file();
        std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
        write_atomic(&unit, b"[Service]\nRestart=always\n", 0o644).unwrap();
        copy_atomic(&unit, &Protected::ServiceFile.backup_path(&paths), 0o600).unwrap();
        manifest.set_record(FileRecord::of(&paths, Protected::ServiceFile).unwrap());
        std::fs::write(&unit, b"[Service]\nRestart=no\n").unwrap();
        let repaired = check_and_repair(&paths, &manifest);
        assert_eq!(repaired.len(), 1);
        assert_eq!(repaired[0].0.item, Item::File(Protected::ServiceFile));
        assert_eq!(repaired[0].1, Ok(()));
        assert_eq!(
            std::fs::read(&unit).unwrap(),
            b"[Service]\nRestart=always\n"
        );
    }

    #[test]
    fn without_a_backup_the_repair_fails_and_says_why() {
        let (_root, paths, manifest) = installed();
        std::fs::remove_file(Protected::Config.backup_path(&paths)).unwrap();
        std::fs::remove_file(paths.config_file()).unwrap();
        let repaired = check_and_repair(&paths, &manifest);
        let file = repaired
            .iter()
            .find(|(d, _)| d.item == Item::File(Protected::Config))
            .unwrap();
        assert_eq!(file.0.what, "deleted");
        assert_eq!(file.1, Err("its backup is gone too".to_owned()));
        let unresolved = BTreeMap::from([(file.0.item, file.1.clone().unwrap_err())]);
        assert_eq!(
            describe_unresolved(&paths, &unresolved).unwrap(),
            "the config /etc/ccgate/config.toml was changed and its backup is gone too"
        );
    }

    #[test]
    fn a_lost_backup_is_rewritten_from_the_intact_file() {
        let (_root, paths, manifest) = installed();
        std::fs::remove_file(Protected::Config.backup_path(&paths)).unwrap();
        let repaired = check_and_repair(&paths, &manifest);
        assert_eq!(repaired.len(), 1);
        assert_eq!(repaired[0].0.item, Item::Backup(Protected::Config));
        assert_eq!(repaired[0].1, Ok(()));
        assert!(
            inspect(
                &paths,
                &manifest,
                &Item::all(&manifest),
                &mut HashCache::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn managed_settings_keep_other_keys_and_get_ccgate_keys_back() {
        let (_root, paths, manifest) = installed();
        std::fs::write(
            paths.managed_settings(),
            b"{\"model\":\"opus\",\"theme\":\"dark\",\"env\":{\"HTTPS_PROXY\":\"http://evil:1\"}}",
        )
        .unwrap();
        let repaired = check_and_repair(&paths, &manifest);
        assert_eq!(repaired[0].0.what, "settings_key");
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(paths.managed_settings()).unwrap()).unwrap();
        assert_eq!(value["theme"], "dark");
        assert_eq!(value["env"]["HTTPS_PROXY"], "http://127.0.0.1:1");

        std::fs::remove_file(paths.managed_settings()).unwrap();
        let repaired = check_and_repair(&paths, &manifest);
        assert_eq!(repaired[0].0.what, "deleted");
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(paths.managed_settings()).unwrap()).unwrap();
        assert_eq!(value["model"], "opus");
        assert_eq!(value["env"]["HTTPS_PROXY"], "http://127.0.0.1:1");
    }
}
