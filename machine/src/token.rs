//! The device token on disk: 64 hex characters (256 bits), root-only.

use crate::paths::Paths;

#[derive(Debug, thiserror::Error)]
#[error("cannot read the device token {path}: {message}")]
pub struct TokenError {
    pub path: String,
    pub message: String,
}

/// Reads the device token.
pub fn read_token(paths: &Paths) -> Result<String, TokenError> {
    let path = paths.device_token();
    let error = |message: String| TokenError {
        path: path.display().to_string(),
        message,
    };
    let token = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
    let token = token.trim().to_owned();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(error(
            "not a ccgate device token (64 hex characters)".into(),
        ));
    }
    Ok(token)
}
