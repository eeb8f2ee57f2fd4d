//! The server's data directory on a disk the soak can fill: a small tmpfs
//! mounted for the run (root only), filled by a filler file until the file
//! system says ENOSPC, and freed by deleting it. Without a mount, a filler
//! on the directory's own file system is used only when that file system
//! is small; filling a shared disk would hurt everything else on the
//! machine, so otherwise the disk-full periods are skipped and the soak
//! says so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a disk-full period is produced.
#[derive(Debug, Clone)]
pub enum DiskKind {
    /// A tmpfs of this many MiB mounted on the data dir.
    Tmpfs { size_mb: u64 },
    /// No mount: a filler on the data dir's own (small) file system.
    SameFileSystem { reason: String },
    /// No way to fill the disk safely.
    Unavailable { reason: String },
}

pub struct DataDisk {
    pub dir: PathBuf,
    pub kind: DiskKind,
    filler: PathBuf,
    mounted: bool,
}

/// Largest free space a same-file-system filler may take.
const MAX_FILLER_BYTES: u64 = 2 << 30;

impl DataDisk {
    /// Mounts a tmpfs of `size_mb` on `dir` (created), or falls back.
    pub fn prepare(dir: &Path, size_mb: u64, try_mount: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let filler = dir.join("soak-filler.bin");
        let mount_error = if try_mount {
            let output = Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size_mb}m,mode=0700"))
                .arg("tmpfs")
                .arg(dir)
                .output();
            match output {
                Ok(out) if out.status.success() => {
                    return Ok(Self {
                        dir: dir.to_owned(),
                        kind: DiskKind::Tmpfs { size_mb },
                        filler,
                        mounted: true,
                    });
                }
                Ok(out) => format!(
                    "mount -t tmpfs failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                Err(error) => format!("cannot run mount: {error}"),
            }
        } else {
            "--no-tmpfs given".to_owned()
        };
        let kind = match available_bytes(dir) {
            Some(free) if free <= MAX_FILLER_BYTES => DiskKind::SameFileSystem {
                reason: format!(
                    "{mount_error}; the data dir's file system has {} MiB free, filled by a filler file",
                    free >> 20
                ),
            },
            Some(free) => DiskKind::Unavailable {
                reason: format!(
                    "{mount_error}; the data dir's file system has {} MiB free, too much to fill on a shared machine: disk-full periods skipped",
                    free >> 20
                ),
            },
            None => DiskKind::Unavailable {
                reason: format!("{mount_error}; free space unknown: disk-full periods skipped"),
            },
        };
        Ok(Self {
            dir: dir.to_owned(),
            kind,
            filler,
            mounted: false,
        })
    }

    pub fn can_fill(&self) -> bool {
        !matches!(self.kind, DiskKind::Unavailable { .. })
    }

    /// Appends to the filler until the file system is full; returns the
    /// bytes added. Called again while full, it takes whatever was freed.
    pub fn fill(&self) -> std::io::Result<u64> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)?;
        let mut added = 0u64;
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512] {
            let zeros = vec![0u8; chunk];
            loop {
                match file.write(&zeros) {
                    Ok(0) => break,
                    Ok(n) => added += n as u64,
                    Err(error) if is_full(&error) => break,
                    Err(error) => return Err(error),
                }
            }
        }
        let _ = file.flush();
        Ok(added)
    }

    /// Deletes the filler: the disk grows back.
    pub fn free(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.filler) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    pub fn available(&self) -> Option<u64> {
        available_bytes(&self.dir)
    }

    /// Unmounts the tmpfs (the server must have stopped); lazily if busy.
    pub fn unmount(&mut self) {
        let _ = self.free();
        if !self.mounted {
            return;
        }
        // A server killed as its handle dropped may still hold files for a
        // moment: try a few times, then detach it lazily.
        let umount = |lazy: bool| {
            let mut command = Command::new("umount");
            if lazy {
                command.arg("-l");
            }
            command
                .arg(&self.dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let mut done = false;
        for _ in 0..20 {
            if umount(false) {
                done = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let done = done || umount(true);
        if !done {
            eprintln!(
                "soak: could not unmount {}; run `umount -l {}`",
                self.dir.display(),
                self.dir.display()
            );
        }
        self.mounted = false;
    }
}

impl Drop for DataDisk {
    fn drop(&mut self) {
        self.unmount();
    }
}

fn is_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
        || error.kind() == std::io::ErrorKind::QuotaExceeded
        || error.raw_os_error() == Some(28)
}

/// Free bytes of the file system holding `dir` (from `df`).
fn available_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}
