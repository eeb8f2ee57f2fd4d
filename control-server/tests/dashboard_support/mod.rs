//! Headless Chromium driven over WebDriver, for the dashboard's browser
//! tests and its page-load benchmark. Each [`Browser`] starts its own
//! chromedriver on a free loopback port (in its own process group, so
//! chromedriver and the Chromium it starts end together) with a fresh
//! profile directory, and stops them when dropped. Also a local receiver
//! in Slack's incoming-webhook format for the alert channels.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The flags headless Chromium needs in this sandbox (no GPU, no network
/// beyond loopback, no background services) plus a fixed language.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--lang=en-US",
];

/// How long a condition in the page may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

const INSTALL_HINT: &str = "run `bash scripts/test.sh` once (it installs Debian's chromium and \
     chromium-driver), or `sudo apt-get install chromium chromium-driver`; set CCGATE_CHROMIUM / \
     CCGATE_CHROMEDRIVER to use other binaries";

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn program(variable: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    on_path(names).unwrap_or_else(|| {
        panic!(
            "{} is not installed, so the dashboard's browser tests cannot run: {INSTALL_HINT}",
            names[0]
        )
    })
}

/// chromedriver and the Chromium it started: killed together, by the
/// process group this test created.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().unwrap().port()
}

pub struct Browser {
    pub client: Client,
    /// The server's base URL, e.g. `http://127.0.0.1:4321`.
    pub base: String,
    driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width`×`height` window.
    pub async fn start(base: &str, width: u32, height: u32) -> Self {
        use std::os::unix::process::CommandExt;

        let chromium = program(
            "CCGATE_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let chromedriver = program("CCGATE_CHROMEDRIVER", &["chromedriver"]);
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {}: {error}; {INSTALL_HINT}",
                    chromedriver.display()
                )
            });
        let driver = Driver { child };
        let driver_url = format!("http://127.0.0.1:{port}");
        wait_for_driver(&driver_url).await;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::rustls()
            .expect("TLS roots for the WebDriver client")
            .capabilities(capabilities)
            .connect(&driver_url)
            .await
            .unwrap_or_else(|error| {
                panic!("chromedriver could not start Chromium: {error}; {INSTALL_HINT}")
            });
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            driver,
            _profile: profile,
        }
    }

    /// Loads `path` and waits until the page says it is rendered.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
        self.wait_ready().await;
    }

    /// Waits for `body[data-ready]`, which each page sets once its data is shown.
    pub async fn wait_ready(&self) {
        self.wait_until(
            "the page to be rendered",
            "return document.body?.dataset.ready === '1'",
        )
        .await;
        let violations = self
            .eval("return document.body.dataset.cspViolations ?? null")
            .await;
        assert!(
            violations.is_null(),
            "Content-Security-Policy violations: {violations}"
        );
    }

    /// Fills in and sends the login form of the page that is open.
    pub async fn log_in(&self, username: Option<&str>, password: &str) {
        if let Some(name) = username {
            self.type_into("#username", name).await;
        }
        self.type_into("#password", password).await;
        self.click("button[type=submit]").await;
    }

    /// Waits until a login has led to the overview and it is rendered.
    pub async fn wait_for_overview(&self) {
        self.wait_until(
            "the overview",
            "return location.pathname === '/dashboard' && document.body.dataset.ready === '1'",
        )
        .await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls `script` until it returns something truthy; fails after [`WAIT`].
    pub async fn wait_until(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = self
                .client
                .execute(script, vec![])
                .await
                .unwrap_or(Value::Null);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let url = self
                    .client
                    .current_url()
                    .await
                    .map(|u| u.to_string())
                    .unwrap_or_default();
                let text = self
                    .client
                    .execute("return document.body?.innerText ?? ''", vec![])
                    .await
                    .unwrap_or_default();
                panic!("waited {WAIT:?} for {what} on {url}; the page shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css}: {error}"))
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Replaces the text of an input.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
    }

    /// A PNG of the whole page at `width` (up to `max_height` tall) saved as `dir/name.png`.
    pub async fn screenshot(&self, dir: &Path, name: &str, width: u32, max_height: u32) {
        self.set_size(width, 800).await;
        let height = self
            .eval("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
            .await
            .as_u64()
            .unwrap_or(800) as u32;
        // The window is taller than the page's viewport by the browser's own bars.
        let bars = self
            .eval("return window.outerHeight - window.innerHeight")
            .await
            .as_u64()
            .unwrap_or(0) as u32;
        self.set_size(width, height.clamp(480, max_height) + bars)
            .await;
        // Let layout settle after the resize (charts redraw on resize).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// A PNG of the element `css` alone, with the window `width` wide and as
    /// tall as the page (so the element is drawn whole), saved as `dir/name.png`.
    pub async fn element_screenshot(&self, dir: &Path, name: &str, width: u32, css: &str) {
        self.set_size(width, 800).await;
        let height = self
            .eval("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
            .await
            .as_u64()
            .unwrap_or(800) as u32;
        let bars = self
            .eval("return window.outerHeight - window.innerHeight")
            .await
            .as_u64()
            .unwrap_or(0) as u32;
        self.set_size(width, height.clamp(480, 8000) + bars).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.find(css).await.screenshot().await.unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Ends the WebDriver session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.close().await;
        drop(self.driver);
    }
}

async fn wait_for_driver(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(response) = http.get(format!("{url}/status")).send().await
            && let Ok(status) = response.json::<Value>().await
            && status["value"]["ready"] == true
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("chromedriver did not answer on {url}; {INSTALL_HINT}");
}

/// Where screenshots go: `CCGATE_SCREENSHOTS_DIR` (the committed ones are
/// made with `docs/screenshots`), else a directory under the target dir.
/// A relative path is taken from the repository root.
pub fn screenshot_dir() -> PathBuf {
    match std::env::var_os("CCGATE_SCREENSHOTS_DIR") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots"),
    }
}

/// A Slack incoming webhook on 127.0.0.1: it answers `ok` to a JSON body
/// with `text` (and keeps it), `invalid_payload` to anything else, and 500
/// to the first `failures` posts (`u32::MAX`: to every post).
#[derive(Clone, Default)]
pub struct SlackReceiver {
    received: Arc<Mutex<Vec<Value>>>,
    failures: Arc<Mutex<u32>>,
}

impl SlackReceiver {
    /// Starts one; returns it and its webhook URL.
    pub async fn start(failures: u32) -> (Self, String) {
        let receiver = Self::default();
        *receiver.failures.lock().unwrap() = failures;
        let app = axum::Router::new()
            .route("/services/T000/B000/XXXX", axum::routing::post(Self::hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/services/T000/B000/XXXX",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    async fn hook(
        axum::extract::State(receiver): axum::extract::State<Self>,
        body: String,
    ) -> (axum::http::StatusCode, &'static str) {
        {
            let mut failures = receiver.failures.lock().unwrap();
            if *failures > 0 {
                if *failures != u32::MAX {
                    *failures -= 1;
                }
                return (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                );
            }
        }
        match serde_json::from_str::<Value>(&body) {
            Ok(value) if value["text"].is_string() => {
                receiver.received.lock().unwrap().push(value);
                (axum::http::StatusCode::OK, "ok")
            }
            _ => (axum::http::StatusCode::BAD_REQUEST, "invalid_payload"),
        }
    }

    /// The `text` of every message taken, oldest first.
    pub fn texts(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}
