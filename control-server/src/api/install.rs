//! What a developer machine installs from: `GET /install.sh` (the POSIX
//! script the setup command pipes to `sh`) and `GET /downloads/<file>`
//! (the agent binaries and their `SHA256SUMS`). No login: the binaries are
//! not secret, and the install code the person pastes is what registers.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::public_url;
use crate::agent_bundle::{SIGNATURE_FILE, SUMS_FILE};
use crate::error::{Error, Result};
use crate::state::AppState;

const SCRIPT: &str = include_str!("../install.sh");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/install.sh", get(install_script))
        .route("/downloads/{file}", get(download))
}

/// The script, with this server's address in it (single quotes cannot
/// appear: `public_url` allows only URL characters without them).
async fn install_script(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let url = public_url(&state, &headers).replace('\'', "");
    let note = state
        .agent
        .as_ref()
        .map_or_else(
            || "this server has no agent binaries to serve".to_owned(),
            |bundle| format!("this server serves {}", bundle.describe()),
        )
        .replace('\'', "");
    let script = SCRIPT
        .replace("@SERVER_URL@", &url)
        .replace("@SERVER_NOTE@", &note);
    (
        [
            (header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        script,
    )
        .into_response()
}

async fn download(State(state): State<AppState>, Path(file): Path<String>) -> Result<Response> {
    let bundle = state.agent.as_ref().ok_or_else(|| {
        Error::not_found(
            "this ccgate server has no agent binaries (see AGENT_DIR in the server's docs)",
        )
        .with_code("no_agent_bundle")
    })?;
    if file == SIGNATURE_FILE {
        let signature = bundle.signature().ok_or_else(|| {
            Error::not_found("this server's agent bundle is not signed")
                .with_code("unsigned_agent_bundle")
        })?;
        return Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            signature.to_owned(),
        )
            .into_response());
    }
    if file == SUMS_FILE {
        return Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            bundle.sums(),
        )
            .into_response());
    }
    let path = bundle
        .path_of(&file)
        .ok_or_else(|| Error::not_found(format!("no download named {file:?}")))?;
    let opened = tokio::fs::File::open(path).await.map_err(|error| {
        tracing::error!(path = %path.display(), %error, "cannot open an agent binary");
        Error::internal()
    })?;
    let length = opened.metadata().await.map(|m| m.len()).ok();
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(opened)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/octet-stream".parse().expect("static"),
    );
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, length.into());
    }
    Ok(response)
}
