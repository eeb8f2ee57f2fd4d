//! The embedded assets (`control-server/assets/`) and how they are served:
//! under `/dashboard/static/<version>/…`, where the version is a hash of
//! every asset, so a browser may keep them forever and a new build still
//! reaches it at once. Modules import each other by relative paths, which
//! stay inside the same version.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

/// `debug-embed` (Cargo.toml) embeds in debug builds too, so tests serve
/// exactly what a release serves. A *new* file needs a rebuild of this crate
/// (`touch` this file): only the existing ones are tracked.
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Server-side templates: embedded but never served as they are.
const TEMPLATE_DIR: &str = "templates/";

/// The first 12 hex digits of a hash over every asset's path and content.
pub fn asset_version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in names {
            if let Some(file) = Assets::get(&name) {
                hasher.update(name.as_bytes());
                hasher.update([0]);
                hasher.update(file.metadata.sha256_hash());
            }
        }
        hex::encode(hasher.finalize())[..12].to_owned()
    });
    &VERSION
}

/// Where the current assets are served.
pub fn static_base() -> String {
    format!("/dashboard/static/{}", asset_version())
}

/// A template's text (`templates/<name>`).
pub fn template(name: &str) -> String {
    Assets::get(&format!("{TEMPLATE_DIR}{name}"))
        .map(|file| String::from_utf8_lossy(&file.data).into_owned())
        .unwrap_or_default()
}

/// Every JavaScript module, for `<link rel="modulepreload">`.
pub fn modules() -> impl Iterator<Item = String> {
    let mut names: Vec<String> = Assets::iter()
        .filter(|name| name.ends_with(".js"))
        .map(|name| name.into_owned())
        .collect();
    names.sort();
    names.into_iter()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

pub async fn serve(
    Path((version, path)): Path<(String, String)>,
    request_headers: HeaderMap,
) -> Response {
    let file = (!path.starts_with(TEMPLATE_DIR))
        .then(|| Assets::get(&path))
        .flatten();
    let Some(file) = file else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    // An old page asking for an older version gets today's file, revalidated.
    let cache = if version == asset_version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    let unchanged = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|sent| sent.split(',').any(|tag| tag.trim() == etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    (headers, file.data.into_owned()).into_response()
}
