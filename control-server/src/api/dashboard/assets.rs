//! The embedded assets (`control-server/assets/`) and how they are served:
//! under `/dashboard/static/<version>/…`, where the version is a hash of
//! every asset, so a browser may keep them forever and a new build still
//! reaches it at once. Modules import each other by relative paths, which
//! stay inside the same version.

use std::collections::BTreeSet;
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

/// The modules a page runs: `js/main.js`, `js/pages/<page>.js` and all they
/// import, for `<link rel="modulepreload">` (fetched side by side instead of
/// one import level after the other).
pub fn modules_of_page(page: &str) -> Vec<String> {
    let mut wanted = vec!["js/main.js".to_owned(), format!("js/pages/{page}.js")];
    let mut found = BTreeSet::new();
    while let Some(path) = wanted.pop() {
        let Some(file) = Assets::get(&path) else {
            continue;
        };
        if !found.insert(path.clone()) {
            continue;
        }
        let source = String::from_utf8_lossy(&file.data);
        wanted.extend(static_imports(&source).map(|import| resolve(&path, import)));
    }
    found.into_iter().collect()
}

/// The relative specifiers of `import … from './x.js'` and `import './x.js'`.
fn static_imports(source: &str) -> impl Iterator<Item = &str> {
    let after = |marker: &'static str| source.split(marker).skip(1);
    after("from '")
        .chain(after("import '"))
        .filter_map(|rest| rest.split_once('\'').map(|(specifier, _)| specifier))
        .filter(|specifier| specifier.starts_with("./") || specifier.starts_with("../"))
}

/// `import` (relative) resolved against the module at `from`.
fn resolve(from: &str, import: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in import.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_preloads_its_own_modules_and_their_imports_only() {
        let login = modules_of_page("login");
        for needed in ["js/main.js", "js/pages/login.js", "js/dom.js", "js/api.js"] {
            assert!(login.iter().any(|m| m == needed), "{needed} in {login:?}");
        }
        assert!(!login.iter().any(|m| m == "js/pages/overview.js"));
        assert!(!login.iter().any(|m| m == "js/components/chart.js"));
        let user = modules_of_page("user");
        assert!(user.iter().any(|m| m == "js/components/chart.js"));
        assert!(
            modules_of_page("nope")
                .iter()
                .all(|m| m != "js/pages/nope.js")
        );
    }

    #[test]
    fn imports_resolve_relative_to_the_importing_module() {
        assert_eq!(resolve("js/pages/user.js", "../dom.js"), "js/dom.js");
        assert_eq!(
            resolve("js/main.js", "./components/topbar.js"),
            "js/components/topbar.js"
        );
        let source = "import { a } from './a.js';\nimport {\n  b,\n} from '../b.js';\nimport './c.js';\nconst x = import(`./d.js`);";
        assert_eq!(
            static_imports(source).collect::<Vec<_>>(),
            ["./a.js", "../b.js", "./c.js"]
        );
    }
}
