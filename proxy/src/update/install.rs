//! Puts a verified release in place: each binary written beside its place
//! and renamed over it (a running copy is never half-written), the daemon's
//! backup and manifest record updated under the manifest lock, so the
//! watchdog sees the new binary as ccgate's own rather than "restoring" the
//! old one.

use std::path::Path;

use crate::fsutil::write_atomic;
use crate::guard::manifest::{FileRecord, MANIFEST_LOCK, Manifest, Protected, copy_atomic};
use crate::paths::Paths;

/// Installs the daemon and the CLI binaries; the daemon's manifest record
/// and backup follow it when the machine was set up with a manifest.
pub fn install(paths: &Paths, daemon: &[u8], cli: &[u8]) -> Result<(), String> {
    write_binary(&paths.cli_binary(), cli)?;
    let _lock = MANIFEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file = Protected::DaemonBinary;
    write_binary(&file.path(paths), daemon)?;
    let Some(mut manifest) = Manifest::load(paths).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    if manifest.record(file).is_some() {
        copy_atomic(&file.path(paths), &file.backup_path(paths), file.mode())
            .map_err(|e| format!("cannot update the daemon's backup: {e}"))?;
        manifest.set_record(FileRecord::of(paths, file).map_err(|e| e.to_string())?);
        manifest.written_at = jiff::Timestamp::now();
        manifest.save(paths).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn write_binary(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_atomic(path, bytes, 0o755).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
