//! Errors. [`ServerError`] stops the server from starting or running;
//! [`Error`] is the one error type of every request handler, with a status,
//! a stable code and a message meant for the person or script that sent the
//! request (vaultwarden's pattern). Internal details go to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::ConfigError;
use crate::db::DbError;

/// Why the server could not start or stopped. Each message is complete on
/// its own (no error chain to print), for `main` to show as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("configuration: {0}")]
    Config(ConfigError),
    #[error("data directory {path}: {error}")]
    DataDir {
        path: std::path::PathBuf,
        error: String,
    },
    #[error("database: {0}")]
    Db(String),
    #[error("{0}")]
    Password(String),
    /// The server key is missing, unreadable, malformed, or does not open
    /// the credentials in the database.
    #[error("{0}")]
    SecretKey(String),
    #[error("serving HTTP: {0}")]
    Io(String),
    /// `AGENT_DIR` holds a release bundle that does not check out.
    #[error("agent bundle: {0}")]
    AgentBundle(#[from] crate::agent_bundle::BundleError),
}

impl From<ConfigError> for ServerError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

impl From<DbError> for ServerError {
    fn from(error: DbError) -> Self {
        Self::Db(error.to_string())
    }
}

impl From<crate::key_file::KeyFileError> for ServerError {
    fn from(error: crate::key_file::KeyFileError) -> Self {
        Self::SecretKey(error.to_string())
    }
}

impl From<crate::secrets::PasswordError> for ServerError {
    fn from(error: crate::secrets::PasswordError) -> Self {
        Self::Password(error.to_string())
    }
}

impl From<std::io::Error> for ServerError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error.to_string())
    }
}

/// A request failure: `{"error": message, "code": code}` with `status`.
#[derive(Debug, Clone)]
pub struct Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, code, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// 503 with `Retry-After`: the server cannot take this now (its event
    /// queue is full, or the database failed for a moment); clients retry.
    pub fn busy(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error (see the server log)",
        )
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }
}

pub use ccgate_quota::error_chain;

impl From<DbError> for Error {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict(message) => Error::conflict(message),
            DbError::NotFound(message) => Error::not_found(message),
            other if crate::db::is_transient(&other) => {
                tracing::warn!(error = %other, "the database is unavailable for a moment");
                Error::busy("the database is busy; try again shortly", 5)
            }
            other => {
                tracing::error!(error = %other, "database failure");
                Error::internal()
            }
        }
    }
}

impl From<crate::secrets::PasswordError> for Error {
    fn from(error: crate::secrets::PasswordError) -> Self {
        tracing::error!(%error, "password hashing");
        Error::internal()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "code": self.code });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: std::ffi::c_int) -> DbError {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    }

    #[test]
    fn a_database_that_is_busy_or_full_is_a_503_to_retry() {
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_LOCKED,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_IOERR,
        ] {
            let error = Error::from(sqlite(code));
            assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert!(error.retry_after.is_some());
        }
        let error = Error::from(sqlite(rusqlite::ffi::SQLITE_CONSTRAINT));
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        // A PostgreSQL check that ran out of time.
        let error = Error::from(DbError::Postgres(crate::postgres::PgError::Timeout));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.retry_after.is_some());
    }
}
