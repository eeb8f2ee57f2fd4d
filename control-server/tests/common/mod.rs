//! A real ccgate-server in-process on 127.0.0.1:0 with a temp data dir, and
//! helpers that talk to it over real HTTP.
#![allow(dead_code)]

pub mod oidc;
pub mod postgres;
pub mod process;
pub mod sse;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccgate_server::{Clock, ServerConfig, ServerError};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_PASSWORD: &str = "correct horse battery";

pub struct TestServer {
    pub url: String,
    pub clock: Clock,
    pub client: Client,
    pub admin_token: String,
    data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    _temp: Option<tempfile::TempDir>,
}

/// A server's configuration with its data in `data_dir`. When the test
/// script runs the suite on PostgreSQL (`CCGATE_TEST_POSTGRES`, see
/// scripts/with-postgres.sh), the record goes to a database of its own,
/// named after `data_dir` so a restart on the same directory finds it.
pub fn config(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir);
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    if let Some(url) = postgres::shared_database_for(data_dir) {
        config.database = ccgate_server::config::Database::postgres(url);
    }
    config
}

/// Whether this run keeps the record in SQLite; when not, says which test
/// is skipped and why (it looks at the SQLite file itself).
pub fn on_sqlite(test: &str) -> bool {
    let sqlite = !postgres::shared_cluster();
    if !sqlite {
        eprintln!("{test}: skipped on PostgreSQL (it reads the SQLite file itself)");
    }
    sqlite
}

impl TestServer {
    /// A server with default settings in a fresh temp dir.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let mut config = config(temp.path());
        tweak(&mut config);
        let mut server = Self::launch(config).await;
        server._temp = Some(temp);
        server
    }

    pub async fn launch(config: ServerConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::launch_on(config, listener).await
    }

    /// A server on `listener` (say, the address of one that was stopped).
    pub async fn launch_on(config: ServerConfig, listener: tokio::net::TcpListener) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let clock = config.clock.clone();
        let data_dir = config.data_dir.clone();
        let task = tokio::spawn(ccgate_server::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        let client = Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut server = Self {
            url,
            clock,
            client,
            admin_token: String::new(),
            data_dir,
            stop: Some(stop),
            task: Some(task),
            _temp: None,
        };
        server.wait_ready().await;
        server.admin_token = server.login(None, ADMIN_PASSWORD).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.client.get(self.path("/healthz")).send().await
                && response.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not come up");
    }

    /// Stops the server and waits until it has written everything; the
    /// data dir (if temporary) is handed back for a restart.
    pub async fn stop(mut self) -> (Option<tempfile::TempDir>, PathBuf) {
        self.shutdown().await;
        (self._temp.take(), self.data_dir.clone())
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The server's data directory (`ccgate.db`, `secret.key`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.path(path))
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(&self.admin_token)
    }

    pub async fn admin_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.admin(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    /// `GET` of an admin API path as the built-in admin.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        self.admin_json(Method::GET, path, None).await
    }

    /// `DELETE` of an admin API path as the built-in admin: the status.
    pub async fn admin_delete(&self, path: &str) -> StatusCode {
        self.admin_json(Method::DELETE, path, None).await.0
    }

    /// `POST /api/admin/users` with `body`.
    pub async fn post_user(&self, body: Value) -> (StatusCode, Value) {
        self.admin_json(Method::POST, "/api/admin/users", Some(body))
            .await
    }

    /// `PUT /api/admin/users/{id}` with `body`.
    pub async fn put_user(&self, id: i64, body: Value) -> (StatusCode, Value) {
        self.admin_json(Method::PUT, &format!("/api/admin/users/{id}"), Some(body))
            .await
    }

    /// `PUT /api/admin/settings` with `body`.
    pub async fn put_settings(&self, body: Value) -> (StatusCode, Value) {
        self.admin_json(Method::PUT, "/api/admin/settings", Some(body))
            .await
    }

    /// `POST /api/admin/subscriptions` with `body`.
    pub async fn post_subscription(&self, body: Value) -> (StatusCode, Value) {
        self.admin_json(Method::POST, "/api/admin/subscriptions", Some(body))
            .await
    }

    /// `PUT /api/admin/subscriptions/{id}` with `body`.
    pub async fn put_subscription(&self, id: i64, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/admin/subscriptions/{id}");
        self.admin_json(Method::PUT, &path, Some(body)).await
    }

    /// Enrols a subscription holding `credential`; its id.
    pub async fn create_subscription(&self, name: &str, credential: &str) -> i64 {
        let (status, body) = self
            .post_subscription(json!({ "name": name, "credential": credential }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["subscription"]["id"].as_i64().unwrap()
    }

    /// `POST /api/agent/v1/credential` as the device `token`.
    pub async fn fetch_credential(&self, token: &str) -> (StatusCode, Value) {
        self.agent(token, "/credential", json!({})).await
    }

    /// The policy the device `token` syncs.
    pub async fn policy(&self, token: &str) -> Value {
        let (status, body) = self.agent(token, "/sync", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["policy"].clone()
    }

    /// `POST /api/admin/accounts`: a dashboard account with `role`.
    pub async fn add_account(
        &self,
        username: &str,
        password: &str,
        role: &str,
    ) -> (StatusCode, Value) {
        self.admin_json(
            Method::POST,
            "/api/admin/accounts",
            Some(json!({ "username": username, "password": password, "role": role })),
        )
        .await
    }

    /// Logs the built-in admin in again (after moving the clock past the session).
    pub async fn relogin(&mut self) {
        self.admin_token = self.login(None, ADMIN_PASSWORD).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
    }

    /// `POST /api/admin/login`, whatever it answers.
    pub async fn login_response(&self, username: Option<&str>, password: &str) -> Response {
        let mut body = json!({ "password": password });
        if let Some(name) = username {
            body["username"] = json!(name);
        }
        self.request(Method::POST, "/api/admin/login")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, username: Option<&str>, password: &str) -> Value {
        let (status, value) = read(self.login_response(username, password).await).await;
        assert_eq!(status, StatusCode::OK, "login failed: {value}");
        value
    }

    /// Creates a user; returns (user id, install code).
    pub async fn create_user(&self, name: &str, limits: Value) -> (i64, String) {
        let (status, body) = self
            .post_user(json!({ "name": name, "limits": limits }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["user"]["id"].as_i64().unwrap(),
            body["install_code"].as_str().unwrap().to_owned(),
        )
    }

    /// A hook code for user `id` (`POST /api/admin/users/{id}/hook-code`):
    /// the only kind the claude-code-limiter hook API takes.
    pub async fn hook_code(&self, id: i64) -> String {
        let path = format!("/api/admin/users/{id}/hook-code");
        let (status, body) = self.admin_json(Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["install_code"].as_str().unwrap().to_owned()
    }

    /// Registers a proxy with `code`; returns (device id, token, full answer).
    pub async fn register_proxy(&self, code: &str, hostname: &str) -> (i64, String, Value) {
        let (status, body) = self.register_proxy_raw(code, hostname).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["device_id"].as_i64().unwrap(),
            body["device_token"].as_str().unwrap().to_owned(),
            body,
        )
    }

    pub async fn register_proxy_raw(&self, code: &str, hostname: &str) -> (StatusCode, Value) {
        send(
            self.request(Method::POST, "/api/agent/v1/register")
                .json(&json!({
                    "code": code,
                    "device": {
                        "hostname": hostname, "os": "linux", "arch": "x86_64",
                        "os_user": "dev", "claude_version": "2.1.0", "agent_version": "0.1.0",
                    },
                })),
        )
        .await
    }

    /// A user with `limits` and one registered proxy: (user id, device token).
    pub async fn user_with_proxy(&self, name: &str, limits: Value) -> (i64, String) {
        let (user_id, code) = self.create_user(name, limits).await;
        let (_, token, _) = self.register_proxy(&code, &format!("{name}-laptop")).await;
        (user_id, token)
    }

    pub async fn agent(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.request(Method::POST, &format!("/api/agent/v1{path}"))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn check(&self, token: &str, turn_key: &str, model: &str) -> Value {
        let (status, body) = self
            .agent(
                token,
                "/check",
                json!({ "turn_key": turn_key, "model": model }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Whether a check of `turn_key` for `model` is allowed.
    pub async fn allowed(&self, token: &str, turn_key: &str, model: &str) -> bool {
        self.check(token, turn_key, model).await["allowed"] == true
    }

    /// The titles of the alerts raised so far, newest first.
    pub async fn alert_titles(&self) -> Vec<String> {
        let (status, log) = self.admin_get("/api/admin/alerts/log").await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|alert| alert["title"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn user(&self, id: i64) -> Value {
        let (status, body) = self.admin_get(&format!("/api/admin/users/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["user"].clone()
    }

    pub async fn set_status(&self, id: i64, status: &str) {
        let (code, body) = self.put_user(id, json!({ "status": status })).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }

    /// Events of the feed, newest first.
    pub async fn events(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.admin_get(&format!("/api/admin/events?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["events"].as_array().unwrap().clone()
    }

    /// Events of the feed, newest first, once there are any (they are
    /// stored asynchronously); waits up to ten seconds.
    pub async fn wait_for_events(&self, query: &str) -> Vec<Value> {
        eventually(Duration::from_secs(10), || async {
            let events = self.events(query).await;
            (!events.is_empty()).then_some(events)
        })
        .await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a server with `config` and returns why it refused to start.
pub async fn start_error(config: ServerConfig) -> ServerError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ccgate_server::serve(config, listener, std::future::pending())
        .await
        .expect_err("the server must refuse to start")
}

/// Sends `request`: the status and JSON body (`Value::Null` when the body is not JSON).
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    read(request.send().await.unwrap()).await
}

/// Sends `request` and asserts that it answers `expected`; returns the JSON body.
pub async fn expect_status(request: RequestBuilder, expected: StatusCode) -> Value {
    let (status, body) = send(request).await;
    assert_eq!(status, expected, "{body}");
    body
}

/// Status and JSON body (`Value::Null` when the body is not JSON).
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A request event for the agent API.
pub fn request_event(
    id: &str,
    at: &str,
    model: &str,
    turn_key: &str,
    counted: bool,
    input_tokens: u64,
) -> Value {
    json!({
        "id": id, "at": at, "type": "request", "model": model, "kind": "prompt",
        "turn_key": turn_key, "session_id": "s1", "prompt_counted": counted, "status": 200,
        "outcome": "completed", "stop_reason": "end_turn",
        "usage": { "input_tokens": input_tokens, "output_tokens": 7,
                   "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
        "duration_ms": 1200,
    })
}

/// Polls `probe` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A websocket client of the server's `/ws`.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next `/ws` message of type `kind` (others are skipped), within 10 s.
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = socket.next().await.expect("socket open").unwrap();
            if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == kind {
                    return value;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} message"))
}
