//! The person's `~/.claude`, as root touches it: the kill switch removes the
//! login there and team-credential mode moves it out and back. Everything
//! below the home directory belongs to the person, so nothing they link is
//! followed: `.claude` is opened with no-follow and must belong to the
//! home's owner, and the login file is read, removed and written relative to
//! that open directory. A `.claude` that is a link is refused, not chased.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::process::{Gid, Uid};

const CLAUDE_DIR: &str = ".claude";
/// Claude Code's login file on Linux.
pub const CREDENTIALS_FILE: &str = ".credentials.json";
/// A login is a small JSON document; anything larger is not one.
const MAX_LOGIN_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClaudeHomeError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is a symbolic link or not a directory; ccgate does not follow it")]
    NotADirectory { path: PathBuf },
    #[error("{path} belongs to uid {found}, not to the home's owner (uid {expected})")]
    WrongOwner {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("{path} is not a plain file of its own (a link, a device, or over 1 MiB)")]
    NotAPlainFile { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl ClaudeHomeError {
    /// Whether the person placed something ccgate refuses to act through
    /// (a link, a file of someone else's): worth telling the admins.
    pub fn is_planted(&self) -> bool {
        matches!(
            self,
            Self::NotADirectory { .. } | Self::WrongOwner { .. } | Self::NotAPlainFile { .. }
        )
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Open { path, .. }
            | Self::NotADirectory { path }
            | Self::WrongOwner { path, .. }
            | Self::NotAPlainFile { path }
            | Self::Io { path, .. } => path,
        }
    }
}

/// Why the person's Claude login could not be removed or moved.
#[derive(Debug, thiserror::Error)]
pub enum LoginFileError {
    #[error(transparent)]
    Home(#[from] ClaudeHomeError),
    #[error("{0}")]
    Other(String),
}

impl From<String> for LoginFileError {
    fn from(problem: String) -> Self {
        Self::Other(problem)
    }
}

impl LoginFileError {
    /// The refusal to report, when the person planted something.
    pub fn planted(&self) -> Option<&ClaudeHomeError> {
        match self {
            Self::Home(error) if error.is_planted() => Some(error),
            _ => None,
        }
    }
}

/// A login file's owner and mode, so it comes back as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// An open `~/.claude` that is really the person's directory.
#[derive(Debug)]
pub struct ClaudeDir {
    dir: OwnedFd,
    path: PathBuf,
    owner: FileOwner,
}

impl ClaudeDir {
    /// Opens `home/.claude`; `None` when it does not exist. With `create`, a
    /// missing one is made (mode 0700, owned by the home's owner).
    pub fn open(home: &Path, create: bool) -> Result<Option<Self>, ClaudeHomeError> {
        // The home directory itself comes from the account database (or
        // ccgate's config), not from the person, so its path is trusted.
        let home_dir = rustix::fs::open(
            home,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ClaudeHomeError::Open {
            path: home.to_owned(),
            source: e.into(),
        })?;
        let home_stat = fstat(&home_dir, home)?;
        let path = home.join(CLAUDE_DIR);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = match rustix::fs::openat(&home_dir, CLAUDE_DIR, flags, Mode::empty()) {
            Ok(dir) => dir,
            Err(rustix::io::Errno::NOENT) if create => {
                rustix::fs::mkdirat(&home_dir, CLAUDE_DIR, Mode::from_raw_mode(0o700))
                    .map_err(|e| io_error("create", &path, e))?;
                let dir = rustix::fs::openat(&home_dir, CLAUDE_DIR, flags, Mode::empty())
                    .map_err(|e| io_error("open", &path, e))?;
                chown(&dir, home_stat.st_uid, home_stat.st_gid, &path)?;
                dir
            }
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                return Err(ClaudeHomeError::NotADirectory { path });
            }
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let stat = fstat(&dir, &path)?;
        if stat.st_uid != home_stat.st_uid {
            return Err(ClaudeHomeError::WrongOwner {
                path,
                found: stat.st_uid,
                expected: home_stat.st_uid,
            });
        }
        Ok(Some(Self {
            dir,
            path,
            owner: FileOwner {
                uid: stat.st_uid,
                gid: stat.st_gid,
                mode: 0o600,
            },
        }))
    }

    fn login_path(&self) -> PathBuf {
        self.path.join(CREDENTIALS_FILE)
    }

    /// Whether a login file (or anything by that name) is there.
    pub fn has_login(&self) -> Result<bool, ClaudeHomeError> {
        match rustix::fs::statat(&self.dir, CREDENTIALS_FILE, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(io_error("look at", &self.login_path(), e)),
        }
    }

    /// The login's bytes and how the file was; `None` when there is none.
    /// Only a plain file of the directory's owner with one name is read.
    pub fn read_login(&self) -> Result<Option<(Vec<u8>, FileOwner)>, ClaudeHomeError> {
        let path = self.login_path();
        // NONBLOCK: a FIFO by that name must not hang the daemon.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(&self.dir, CREDENTIALS_FILE, flags, Mode::empty()) {
            Ok(file) => file,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => return Err(ClaudeHomeError::NotAPlainFile { path }),
            Err(e) => return Err(io_error("open", &path, e)),
        };
        let stat = fstat(&file, &path)?;
        let plain = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
            && stat.st_nlink == 1
            && (stat.st_size as u64) <= MAX_LOGIN_BYTES;
        if !plain {
            return Err(ClaudeHomeError::NotAPlainFile { path });
        }
        if stat.st_uid != self.owner.uid {
            return Err(ClaudeHomeError::WrongOwner {
                path,
                found: stat.st_uid,
                expected: self.owner.uid,
            });
        }
        let mut bytes = Vec::new();
        std::fs::File::from(file)
            .take(MAX_LOGIN_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|source| ClaudeHomeError::Io {
                action: "read",
                path,
                source,
            })?;
        let owner = FileOwner {
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: (stat.st_mode & 0o7777) as u32,
        };
        Ok(Some((bytes, owner)))
    }

    /// Removes the login file (a link by that name goes, not its target).
    /// False when there was none.
    pub fn remove_login(&self) -> Result<bool, ClaudeHomeError> {
        match rustix::fs::unlinkat(&self.dir, CREDENTIALS_FILE, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(io_error("remove", &self.login_path(), e)),
        }
    }

    /// Writes the login file whole (a new file renamed into place), owned
    /// as `owner` says, or by the directory's owner when not known.
    pub fn write_login(
        &self,
        bytes: &[u8],
        owner: Option<FileOwner>,
    ) -> Result<(), ClaudeHomeError> {
        let owner = owner.unwrap_or(self.owner);
        let path = self.login_path();
        let temp = format!("{CREDENTIALS_FILE}.ccgate-{}", std::process::id());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        // A leftover from a crash is ours to replace; a link is only unlinked.
        let _ = rustix::fs::unlinkat(&self.dir, temp.as_str(), AtFlags::empty());
        let file = rustix::fs::openat(&self.dir, temp.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(|e| io_error("create", &path, e))?;
        let result = (|| {
            chown(&file, owner.uid, owner.gid, &path)?;
            rustix::fs::fchmod(&file, Mode::from_raw_mode(owner.mode as _))
                .map_err(|e| io_error("set the mode of", &path, e))?;
            let mut file = std::fs::File::from(file);
            file.write_all(bytes)
                .and_then(|()| file.sync_all())
                .map_err(|source| ClaudeHomeError::Io {
                    action: "write",
                    path: path.clone(),
                    source,
                })?;
            rustix::fs::renameat(&self.dir, temp.as_str(), &self.dir, CREDENTIALS_FILE)
                .map_err(|e| io_error("put in place", &path, e))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir, temp.as_str(), AtFlags::empty());
        }
        result
    }
}

fn fstat(fd: &OwnedFd, path: &Path) -> Result<Stat, ClaudeHomeError> {
    rustix::fs::fstat(fd).map_err(|e| io_error("look at", path, e))
}

/// Gives `fd` to `uid:gid`; a no-op when it already has them (so tests,
/// which do not run as root, can write their own files).
fn chown(fd: &OwnedFd, uid: u32, gid: u32, path: &Path) -> Result<(), ClaudeHomeError> {
    let stat = fstat(fd, path)?;
    if stat.st_uid == uid && stat.st_gid == gid {
        return Ok(());
    }
    rustix::fs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        .map_err(|e| io_error("give back", path, e))
}

fn io_error(action: &'static str, path: &Path, errno: rustix::io::Errno) -> ClaudeHomeError {
    ClaudeHomeError::Io {
        action,
        path: path.to_owned(),
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn home_with_login() -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(CLAUDE_DIR)).unwrap();
        std::fs::write(
            home.path().join(".claude/.credentials.json"),
            b"{\"mine\":1}",
        )
        .unwrap();
        home
    }

    #[test]
    fn a_login_is_read_removed_and_written_back() {
        let home = home_with_login();
        let dir = ClaudeDir::open(home.path(), false).unwrap().unwrap();
        let (bytes, owner) = dir.read_login().unwrap().unwrap();
        assert_eq!(bytes, b"{\"mine\":1}");
        assert!(dir.remove_login().unwrap());
        assert!(!dir.has_login().unwrap());
        assert!(!dir.remove_login().unwrap());
        let owner = FileOwner {
            mode: 0o640,
            ..owner
        };
        dir.write_login(&bytes, Some(owner)).unwrap();
        let file = home.path().join(".claude/.credentials.json");
        assert_eq!(std::fs::read(&file).unwrap(), bytes);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert_eq!(
            std::fs::read_dir(home.path().join(CLAUDE_DIR))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn a_linked_claude_directory_is_refused_and_its_target_untouched() {
        let home = tempfile::tempdir().unwrap();
        let elsewhere = home_with_login();
        symlink(
            elsewhere.path().join(CLAUDE_DIR),
            home.path().join(CLAUDE_DIR),
        )
        .unwrap();
        let error = ClaudeDir::open(home.path(), true).unwrap_err();
        assert!(
            matches!(error, ClaudeHomeError::NotADirectory { .. }),
            "{error}"
        );
        assert!(elsewhere.path().join(".claude/.credentials.json").exists());
    }

    #[test]
    fn a_linked_login_file_is_not_read_and_removing_it_removes_the_link() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(CLAUDE_DIR)).unwrap();
        let secret = home.path().join("secret");
        std::fs::write(&secret, b"root's").unwrap();
        symlink(&secret, home.path().join(".claude/.credentials.json")).unwrap();
        let dir = ClaudeDir::open(home.path(), false).unwrap().unwrap();
        let error = dir.read_login().unwrap_err();
        assert!(
            matches!(error, ClaudeHomeError::NotAPlainFile { .. }),
            "{error}"
        );
        assert!(dir.remove_login().unwrap());
        assert_eq!(std::fs::read(&secret).unwrap(), b"root's");
    }

    #[test]
    fn a_hard_linked_or_odd_login_file_is_not_read() {
        let home = home_with_login();
        let other = home.path().join("other-name");
        std::fs::hard_link(home.path().join(".claude/.credentials.json"), &other).unwrap();
        let dir = ClaudeDir::open(home.path(), false).unwrap().unwrap();
        assert!(matches!(
            dir.read_login().unwrap_err(),
            ClaudeHomeError::NotAPlainFile { .. }
        ));
        std::fs::remove_file(&other).unwrap();
        std::fs::remove_file(home.path().join(".claude/.credentials.json")).unwrap();
        std::fs::create_dir(home.path().join(".claude/.credentials.json")).unwrap();
        assert!(dir.read_login().is_err());
    }

    #[test]
    fn writing_replaces_a_planted_link_instead_of_following_it() {
        let home = tempfile::tempdir().unwrap();
        let dir = ClaudeDir::open(home.path(), true).unwrap().unwrap();
        let target = home.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let temp = format!("{CREDENTIALS_FILE}.ccgate-{}", std::process::id());
        symlink(&target, home.path().join(CLAUDE_DIR).join(temp)).unwrap();
        symlink(&target, home.path().join(".claude/.credentials.json")).unwrap();
        dir.write_login(b"login", None).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        let file = home.path().join(".claude/.credentials.json");
        assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
        assert_eq!(std::fs::read(&file).unwrap(), b"login");
    }

    #[test]
    fn no_claude_directory_is_none_unless_asked_to_create_it() {
        let home = tempfile::tempdir().unwrap();
        assert!(ClaudeDir::open(home.path(), false).unwrap().is_none());
        let dir = ClaudeDir::open(home.path(), true).unwrap().unwrap();
        assert!(!dir.has_login().unwrap());
        let mode = std::fs::metadata(home.path().join(CLAUDE_DIR))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
