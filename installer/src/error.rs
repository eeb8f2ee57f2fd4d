//! The installer's one error type; every message says what went wrong in
//! words a person can act on.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    #[error(
        "ccgate {command} changes system files and must run as root: run sudo ccgate {command} …"
    )]
    NotRoot { command: &'static str },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot reach the ccgate server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the ccgate server refused {what} ({status}): {message}")]
    Refused {
        what: &'static str,
        status: u16,
        /// The server's error code, e.g. `install_code_used`.
        code: Option<String>,
        message: String,
    },
    #[error("the ccgate daemon is not answering on {address}: {detail}")]
    DaemonDown { address: String, detail: String },
    #[error("{0}")]
    Service(String),
    #[error("{0}")]
    Invalid(String),
}

impl InstallError {
    /// A closure for `map_err` on an I/O result about `path`.
    pub fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self + use<> {
        let path = path.to_owned();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}

pub type Result<T, E = InstallError> = std::result::Result<T, E>;
