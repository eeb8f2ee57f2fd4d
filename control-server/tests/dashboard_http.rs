//! The dashboard over plain HTTP: which pages need a login, the security
//! headers, how assets are versioned and cached, and that every module a
//! page loads is really served.

mod common;

use std::collections::BTreeSet;

use common::{ADMIN_PASSWORD, TestServer};
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode, redirect};

/// GETs the pages of a server as a browser would, but follows no redirects.
struct Pages<'a> {
    http: Client,
    server: &'a TestServer,
}

impl<'a> Pages<'a> {
    fn new(server: &'a TestServer) -> Self {
        let http = Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap();
        Self { http, server }
    }

    /// `GET path`, with the session `cookie` when given.
    async fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut request = self.http.get(self.server.path(path));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// The body of `GET path`.
    async fn text(&self, path: &str, cookie: Option<&str>) -> String {
        self.get(path, cookie).await.text().await.unwrap()
    }
}

async fn session_cookie(server: &TestServer) -> (String, String) {
    let login = server.login(None, ADMIN_PASSWORD).await;
    (
        format!("ccgate_session={}", login["token"].as_str().unwrap()),
        login["csrf_token"].as_str().unwrap().to_owned(),
    )
}

/// The `href`/`src` values of a page that point at its static assets.
fn asset_urls(html: &str) -> BTreeSet<String> {
    html.split(['"', '\''])
        .filter(|part| part.starts_with("/dashboard/static/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn pages_need_a_session_and_send_the_browser_to_the_login() {
    let server = TestServer::start().await;
    let pages = Pages::new(&server);
    for (path, next) in [
        ("/dashboard", "/dashboard"),
        ("/dashboard/users/new", "/dashboard/users/new"),
        ("/dashboard/users/7", "/dashboard/users/7"),
        ("/dashboard/settings", "/dashboard/settings"),
        ("/dashboard/activity", "/dashboard/activity"),
    ] {
        let response = pages.get(path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            response.headers()[LOCATION],
            format!("/dashboard/login?next={next}").as_str()
        );
    }
    // An API token is not a browser session.
    let api_token = format!("ccgate_session={}", server.admin_token);
    let (_, token) = server
        .admin_json(
            reqwest::Method::POST,
            "/api/admin/tokens",
            Some(serde_json::json!({ "name": "script", "role": "admin" })),
        )
        .await;
    let as_cookie = format!("ccgate_session={}", token["token"].as_str().unwrap());
    let response = pages.get("/dashboard", Some(&as_cookie)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // A login session is.
    let response = pages.get("/dashboard", Some(&api_token)).await;
    assert_eq!(response.status(), StatusCode::OK);

    let root = pages.get("/", None).await;
    assert_eq!(root.headers()[LOCATION], "/dashboard");
    let unknown = pages.get("/dashboard/users/abc", None).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_shell_carries_the_session_and_a_strict_policy() {
    let server = TestServer::start().await;
    let pages = Pages::new(&server);
    let (cookie, csrf) = session_cookie(&server).await;
    let response = pages.get("/dashboard/settings", Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let html = response.text().await.unwrap();
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let policy = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(html.contains("data-page=\"settings\""));
    assert!(html.contains("data-role=\"admin\""));
    assert!(html.contains(&format!("data-csrf=\"{csrf}\"")));
    // No inline script or handler: the policy would refuse them anyway.
    assert!(!html.contains("<script>"), "inline script");
    let lower = html.to_lowercase();
    for handler in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        "javascript:",
    ] {
        assert!(!lower.contains(handler), "{handler}");
    }

    // The login page is public and sends a logged-in browser on.
    let login = pages.get("/dashboard/login", None).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.text().await.unwrap().contains("data-page=\"login\""));
    let onward = pages
        .get("/dashboard/login?next=/dashboard/activity", Some(&cookie))
        .await;
    assert_eq!(onward.headers()[LOCATION], "/dashboard/activity");
    let elsewhere = pages
        .get("/dashboard/login?next=https://evil.example/", Some(&cookie))
        .await;
    assert_eq!(elsewhere.headers()[LOCATION], "/dashboard");
}

#[tokio::test]
async fn every_asset_and_module_is_served_versioned_and_cached() {
    let server = TestServer::start().await;
    let pages = Pages::new(&server);
    let html = pages.text("/dashboard/login", None).await;
    let urls = asset_urls(&html);
    let version = ccgate_server::api::dashboard::asset_version();
    let base = format!("/dashboard/static/{version}/");
    assert!(urls.iter().all(|u| u.starts_with(&base)), "{urls:?}");
    assert!(urls.contains(&format!("{base}js/main.js")));
    // Every module the shell preloads, and every relative import in them,
    // is served with the right type and kept for good by the browser.
    let mut modules: BTreeSet<String> = urls
        .iter()
        .filter(|u| u.ends_with(".js"))
        .cloned()
        .collect();
    assert!(modules.contains(&format!("{base}js/pages/login.js")));
    // Each page preloads its own module (main.js imports it by name).
    let (cookie, _) = session_cookie(&server).await;
    for (page, path) in [
        ("overview", "/dashboard"),
        ("user", "/dashboard/users/1"),
        ("add-user", "/dashboard/users/new"),
        ("settings", "/dashboard/settings"),
        ("activity", "/dashboard/activity"),
    ] {
        let shell = pages.text(path, Some(&cookie)).await;
        let own = format!("{base}js/pages/{page}.js");
        let preloaded = asset_urls(&shell);
        assert!(preloaded.contains(&own), "{own} preloaded by {path}");
        modules.extend(preloaded.into_iter().filter(|u| u.ends_with(".js")));
    }
    let mut checked = BTreeSet::new();
    while let Some(url) = modules.pop_first() {
        if !checked.insert(url.clone()) {
            continue;
        }
        let response = pages.get(&url, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            response.headers()[CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let source = response.text().await.unwrap();
        assert!(!source.contains("innerHTML"), "{url} writes markup");
        for import in source
            .split(['\'', '`'])
            .filter(|s| s.starts_with("./") || s.starts_with("../"))
            .filter(|s| s.ends_with(".js") && !s.contains("${"))
        {
            let dir = url.rsplit_once('/').unwrap().0;
            let mut parts: Vec<&str> = dir.split('/').collect();
            for part in import.split('/') {
                match part {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    other => parts.push(other),
                }
            }
            modules.insert(parts.join("/"));
        }
    }
    assert!(checked.len() > 20, "{checked:?}");
    for url in urls.iter().filter(|u| u.ends_with(".css")) {
        let response = pages.get(url, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    }

    // Revalidation, an older version, templates and unknown files.
    let main = format!("{base}js/main.js");
    let etag = pages.get(&main, None).await.headers()["etag"].clone();
    let again = pages
        .http
        .get(server.path(&main))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let old = pages
        .get("/dashboard/static/000000000000/js/main.js", None)
        .await;
    assert_eq!(old.status(), StatusCode::OK);
    assert_eq!(old.headers()[CACHE_CONTROL], "no-cache");
    for missing in ["templates/page.html", "js/nope.js", "../Cargo.toml"] {
        let response = pages.get(&format!("{base}{missing}"), None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}
