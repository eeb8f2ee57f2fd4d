//! The agent binaries this server hands to developer machines (`GET
//! /downloads/<file>`, used by `/install.sh`).
//!
//! A release bundle is a directory with `SHA256SUMS` (sha256sum's format:
//! `<hex>  <file>`), the files it lists (`ccgate-<os>-<arch>`,
//! `ccgate-proxy-<os>-<arch>`) and a `VERSION` file. Without one, the
//! server offers `ccgate` and `ccgate-proxy` found beside its own binary,
//! for its own platform, with checksums computed at start: a plain `cargo
//! build --release` tree serves installs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ccgate_quota::release::{AgentRelease, VERSION_FILE, file_name, parse_sums};
pub use ccgate_quota::release::{PROGRAMS, SIGNATURE_FILE, SUMS_FILE, this_platform};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line} is not `<sha256>  <file>`")]
    BadSums { path: PathBuf, line: usize },
    #[error("{file} in {dir} does not match its SHA256SUMS line")]
    Mismatch { dir: PathBuf, file: String },
}

/// Where the files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleSource {
    /// A release bundle directory.
    Release,
    /// The binaries beside the server's own, for its own platform.
    BesideServer,
}

#[derive(Debug)]
pub struct AgentBundle {
    pub source: BundleSource,
    pub dir: PathBuf,
    /// What devices are told of it at each sync.
    pub release: AgentRelease,
    /// File name as served → where it is.
    paths: BTreeMap<String, PathBuf>,
    /// The release signature over `SHA256SUMS`, if the bundle has one.
    signature: Option<String>,
}

impl AgentBundle {
    /// The bundle in `agent_dir` if it holds `SHA256SUMS`; else `ccgate`
    /// and `ccgate-proxy` in `binaries_dir`; `None` when there is neither.
    pub fn find(agent_dir: &Path, binaries_dir: &Path) -> Result<Option<Self>, BundleError> {
        if agent_dir.join(SUMS_FILE).is_file() {
            return Self::release(agent_dir).map(Some);
        }
        Self::beside_server(binaries_dir)
    }

    /// A release bundle: every listed file must be there with its checksum,
    /// so a half-copied bundle is refused at start, not at install.
    pub fn release(dir: &Path) -> Result<Self, BundleError> {
        let sums_path = dir.join(SUMS_FILE);
        let text = read_text(&sums_path)?;
        let listed = parse_sums(&text).map_err(|line| BundleError::BadSums {
            path: sums_path.clone(),
            line,
        })?;
        let mut paths = BTreeMap::new();
        for (file, sha256) in &listed {
            let path = dir.join(file);
            if sha256_file(&path)? != *sha256 {
                return Err(BundleError::Mismatch {
                    dir: dir.to_owned(),
                    file: file.clone(),
                });
            }
            paths.insert(file.clone(), path);
        }
        let version = read_text(&dir.join(VERSION_FILE))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let signature_path = dir.join(SIGNATURE_FILE);
        let signature = if signature_path.is_file() {
            Some(read_text(&signature_path)?)
        } else {
            None
        };
        Ok(Self {
            source: BundleSource::Release,
            dir: dir.to_owned(),
            release: AgentRelease {
                version,
                files: listed,
                signed: signature.is_some(),
            },
            paths,
            signature,
        })
    }

    fn beside_server(dir: &Path) -> Result<Option<Self>, BundleError> {
        let platform = this_platform();
        let (mut files, mut paths) = (BTreeMap::new(), BTreeMap::new());
        for program in PROGRAMS {
            let path = dir.join(program);
            if !path.is_file() {
                return Ok(None);
            }
            let name = file_name(program, &platform);
            files.insert(name.clone(), sha256_file(&path)?);
            paths.insert(name, path);
        }
        Ok(Some(Self {
            source: BundleSource::BesideServer,
            dir: dir.to_owned(),
            release: AgentRelease {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                files,
                signed: false,
            },
            paths,
            signature: None,
        }))
    }

    /// `SHA256SUMS` as served.
    pub fn sums(&self) -> String {
        self.release
            .files
            .iter()
            .map(|(name, sha256)| format!("{sha256}  {name}\n"))
            .collect()
    }

    /// `SHA256SUMS.minisig`, if the bundle is signed.
    pub fn signature(&self) -> Option<&str> {
        self.signature.as_deref()
    }

    /// The path of a listed file; `None` for anything not listed (no path
    /// from a request ever reaches the file system).
    pub fn path_of(&self, file: &str) -> Option<&Path> {
        self.paths.get(file).map(PathBuf::as_path)
    }

    /// What the log and `/install.sh` say about where the binaries come from.
    pub fn describe(&self) -> String {
        match self.source {
            BundleSource::Release => format!(
                "agent {} from the release bundle in {}{}",
                self.release.version,
                self.dir.display(),
                if self.signature.is_some() {
                    ""
                } else {
                    " (unsigned: devices will not update to it)"
                }
            ),
            BundleSource::BesideServer => format!(
                "agent {} for {} only, taken from beside the server binary in {} (no release bundle; set AGENT_DIR to one for other platforms)",
                self.release.version,
                this_platform(),
                self.dir.display()
            ),
        }
    }
}

fn read_text(path: &Path) -> Result<String, BundleError> {
    std::fs::read_to_string(path).map_err(|source| BundleError::Read {
        path: path.to_owned(),
        source,
    })
}

pub fn sha256_file(path: &Path) -> Result<String, BundleError> {
    let read_error = |source| BundleError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(read_error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_bundle_is_checked_at_load_and_serves_only_what_it_lists() {
        let dir = tempfile::tempdir().unwrap();
        let file = "ccgate-linux-x86_64";
        std::fs::write(dir.path().join(file), b"binary").unwrap();
        std::fs::write(dir.path().join("other"), b"not listed").unwrap();
        let sum = sha256_file(&dir.path().join(file)).unwrap();
        std::fs::write(dir.path().join(SUMS_FILE), format!("{sum}  {file}\n")).unwrap();
        std::fs::write(dir.path().join(VERSION_FILE), "1.2.3\n").unwrap();
        let bundle = AgentBundle::release(dir.path()).unwrap();
        assert_eq!(bundle.release.version, "1.2.3");
        assert!(!bundle.release.signed);
        assert_eq!(bundle.path_of(file), Some(dir.path().join(file).as_path()));
        assert_eq!(bundle.path_of("other"), None);
        assert_eq!(bundle.path_of(SUMS_FILE), None);
        assert_eq!(bundle.sums(), format!("{sum}  {file}\n"));

        std::fs::write(dir.path().join(file), b"changed").unwrap();
        assert!(matches!(
            AgentBundle::release(dir.path()),
            Err(BundleError::Mismatch { .. })
        ));
    }

    #[test]
    fn without_a_bundle_the_binaries_beside_the_server_are_offered() {
        let dir = tempfile::tempdir().unwrap();
        let agent_dir = dir.path().join("agent");
        assert!(AgentBundle::find(&agent_dir, dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join("ccgate"), b"cli").unwrap();
        std::fs::write(dir.path().join("ccgate-proxy"), b"daemon").unwrap();
        let bundle = AgentBundle::find(&agent_dir, dir.path()).unwrap().unwrap();
        assert_eq!(bundle.source, BundleSource::BesideServer);
        let name = format!("ccgate-proxy-{}", this_platform());
        assert_eq!(
            bundle.path_of(&name),
            Some(dir.path().join("ccgate-proxy").as_path())
        );
        assert!(bundle.sums().contains(&format!(
            "{}  {name}",
            sha256_file(&dir.path().join("ccgate-proxy")).unwrap()
        )));
        assert!(bundle.describe().contains("beside the server binary"));
    }
}
