//! Setup's undo log: every file it writes and directory it creates is
//! recorded first, so that a failure half-way puts everything back.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ccgate_machine::fsutil::write_atomic;
use ccgate_machine::manifest::copy_atomic;

use crate::error::{InstallError, Result};

enum Undo {
    /// Put back the file's earlier content and mode, or remove it.
    File {
        path: PathBuf,
        previous: Option<(Vec<u8>, u32)>,
    },
    Dir(PathBuf),
    Action(String, Box<dyn FnOnce() -> Result<()> + Send>),
}

#[derive(Default)]
pub struct Journal {
    undo: Vec<Undo>,
}

impl Journal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a file that something else is about to write.
    pub fn track(&mut self, path: &Path) -> Result<()> {
        let previous = match std::fs::read(path) {
            Ok(bytes) => {
                let mode = std::fs::metadata(path)
                    .map_err(InstallError::io("read", path))?
                    .permissions()
                    .mode()
                    & 0o7777;
                Some((bytes, mode))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(InstallError::io("read", path)(e)),
        };
        self.undo.push(Undo::File {
            path: path.to_owned(),
            previous,
        });
        Ok(())
    }

    /// Writes `bytes` to `path` atomically with `mode`, root-owned.
    pub fn write(&mut self, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        self.track(path)?;
        write_atomic(path, bytes, mode).map_err(InstallError::io("write", path))?;
        std::os::unix::fs::chown(path, Some(0), Some(0)).map_err(InstallError::io("chown", path))
    }

    /// Copies `from` to `path` atomically with `mode`, root-owned.
    pub fn copy(&mut self, from: &Path, path: &Path, mode: u32) -> Result<()> {
        self.track(path)?;
        copy_atomic(from, path, mode).map_err(InstallError::io("write", path))?;
        std::os::unix::fs::chown(path, Some(0), Some(0)).map_err(InstallError::io("chown", path))
    }

    /// Removes a file (it comes back on rollback).
    pub fn remove(&mut self, path: &Path) -> Result<()> {
        self.track(path)?;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(InstallError::io("remove", path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Creates `dir` and its missing parents; returns those it created,
    /// parents first. A created `dir` gets `mode`, created parents 0755; an
    /// existing directory is left as it is.
    pub fn create_dir(&mut self, dir: &Path, mode: u32) -> Result<Vec<PathBuf>> {
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.exists())
            .map(Path::to_owned)
            .collect();
        missing.reverse();
        for created in &missing {
            std::fs::create_dir(created).map_err(InstallError::io("create", created))?;
            self.undo.push(Undo::Dir(created.clone()));
            let mode = if created == dir { mode } else { 0o755 };
            std::fs::set_permissions(created, std::fs::Permissions::from_mode(mode))
                .map_err(InstallError::io("set the mode of", created))?;
        }
        Ok(missing)
    }

    /// Runs `undo` on rollback (stopping a started service, say).
    pub fn on_rollback(
        &mut self,
        what: impl Into<String>,
        undo: impl FnOnce() -> Result<()> + Send + 'static,
    ) {
        self.undo.push(Undo::Action(what.into(), Box::new(undo)));
    }

    /// Undoes everything, newest first. Returns what could not be undone.
    pub fn rollback(self) -> Vec<String> {
        let mut problems = Vec::new();
        for step in self.undo.into_iter().rev() {
            let result = match step {
                Undo::File { path, previous } => match previous {
                    Some((bytes, mode)) => write_atomic(&path, &bytes, mode)
                        .map_err(|e| format!("cannot put back {}: {e}", path.display())),
                    None => match std::fs::remove_file(&path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            Err(format!("cannot remove {}: {e}", path.display()))
                        }
                        _ => Ok(()),
                    },
                },
                Undo::Dir(dir) => {
                    // Whatever else landed in it (a log, a ledger) goes too:
                    // setup created the directory, so nothing in it predates us.
                    std::fs::remove_dir_all(&dir)
                        .or_else(|e| {
                            if e.kind() == std::io::ErrorKind::NotFound {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })
                        .map_err(|e| format!("cannot remove {}: {e}", dir.display()))
                }
                Undo::Action(what, undo) => undo().map_err(|e| format!("cannot {what}: {e}")),
            };
            if let Err(problem) = result {
                problems.push(problem);
            }
        }
        problems
    }

    /// Keeps everything: setup succeeded.
    pub fn commit(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_puts_every_file_and_directory_back() {
        let root = tempfile::tempdir().unwrap();
        let existing = root.path().join("keep.json");
        std::fs::write(&existing, b"{\"a\":1}").unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = listing(root.path());

        let mut journal = Journal::new();
        let created = journal
            .create_dir(&root.path().join("etc/ccgate"), 0o700)
            .unwrap();
        assert_eq!(created.len(), 2);
        journal
            .write(&root.path().join("etc/ccgate/token"), b"secret", 0o600)
            .unwrap();
        journal.write(&existing, b"{\"a\":2}", 0o644).unwrap();
        std::fs::write(
            root.path().join("etc/ccgate/state.db"),
            b"made by the daemon",
        )
        .unwrap();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        journal.on_rollback("stop the service", move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        assert!(journal.rollback().is_empty());
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(listing(root.path()), before);
    }

    fn listing(dir: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            if path.is_dir() {
                out.push((path.clone(), mode, vec![]));
                out.extend(listing(&path));
            } else {
                out.push((path.clone(), mode, std::fs::read(&path).unwrap()));
            }
        }
        out.sort();
        out
    }
}
