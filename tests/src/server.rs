//! The real control server, in-process on 127.0.0.1:0 with a temp data dir,
//! and an admin client for it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub url: String,
    pub address: std::net::SocketAddr,
    pub data_dir: PathBuf,
    admin_token: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(dir.path(), None).await;
        server._dir = Some(dir);
        server
    }

    /// A fresh server whose configuration `tweak` changes first.
    pub async fn start_with(tweak: impl FnOnce(&mut ccgate_server::ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self::launch(dir.path(), None, tweak).await;
        server._dir = Some(dir);
        server
    }

    /// Starts on `data_dir` (a restart when it holds a database), on
    /// `address` if given.
    pub async fn start_in(data_dir: &Path, address: Option<std::net::SocketAddr>) -> Self {
        Self::launch(data_dir, address, |_| {}).await
    }

    /// Starts on `data_dir` and `address` (a restart) with `tweak` applied.
    pub async fn launch(
        data_dir: &Path,
        address: Option<std::net::SocketAddr>,
        tweak: impl FnOnce(&mut ccgate_server::ServerConfig),
    ) -> Self {
        let listener = TcpListener::bind(address.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
            .await
            .expect("bind server");
        let address = listener.local_addr().unwrap();
        let mut config = ccgate_server::ServerConfig::new(data_dir);
        config.admin_password = Some(ADMIN_PASSWORD.to_owned());
        config.public_url = Some(format!("http://{address}"));
        tweak(&mut config);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            ccgate_server::serve(config, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        let http = reqwest::Client::new();
        let url = format!("http://{address}");
        let mut admin_token = String::new();
        for _ in 0..200 {
            if let Ok(response) = http
                .post(format!("{url}/api/admin/login"))
                .json(&json!({"password": ADMIN_PASSWORD}))
                .send()
                .await
            {
                let body: Value = response.json().await.expect("login answer");
                admin_token = body["token"].as_str().expect("token").to_owned();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(!admin_token.is_empty(), "the server did not start");
        Self {
            url,
            address,
            data_dir: data_dir.to_owned(),
            admin_token,
            http,
            stop: Some(stop),
            task,
            _dir: None,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/admin{path}", self.url))
            .bearer_auth(&self.admin_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn get(&self, path: &str) -> Value {
        self.admin(reqwest::Method::GET, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        self.admin(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Value {
        self.admin(reqwest::Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.admin(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates a user with `limits`; returns (user id, install code).
    pub async fn create_user(&self, name: &str, limits: Value) -> (i64, String) {
        self.add_user(json!({"name": name, "limits": limits})).await
    }

    /// `POST /users` with `body`; returns (user id, install code).
    async fn add_user(&self, body: Value) -> (i64, String) {
        let created = self.post("/users", body).await;
        (
            created["user"]["id"].as_i64().expect("user id"),
            created["install_code"]
                .as_str()
                .expect("install code")
                .to_owned(),
        )
    }

    /// Enrols a subscription's credential; returns its id.
    pub async fn create_subscription(&self, name: &str, credential: &str) -> i64 {
        let created = self
            .post(
                "/subscriptions",
                json!({"name": name, "credential": credential}),
            )
            .await;
        created["subscription"]["id"]
            .as_i64()
            .expect("subscription id")
    }

    /// Creates a user on subscription `subscription_id` (team-credential
    /// mode); returns (user id, install code).
    pub async fn create_team_user(
        &self,
        name: &str,
        limits: Value,
        subscription_id: i64,
    ) -> (i64, String) {
        self.add_user(json!({"name": name, "limits": limits, "subscription_id": subscription_id}))
            .await
    }

    /// The user's events of one type (`request`, `blocked`, …), newest first.
    pub async fn events(&self, user_id: i64, kind: &str) -> Vec<Value> {
        let events = self
            .get(&format!("/events?user_id={user_id}&type={kind}"))
            .await;
        events["events"].as_array().cloned().unwrap_or_default()
    }

    /// Today's usage of a user, added up over models (`prompts` is the
    /// rows' `count`).
    pub async fn usage_today(&self, user_id: i64) -> ccgate_quota::Totals {
        let usage = self.get(&format!("/usage?user_id={user_id}&days=1")).await;
        let mut sums = ccgate_quota::Totals::default();
        for row in usage["daily"].as_array().expect("daily rows") {
            let n = |k: &str| row[k].as_u64().unwrap_or(0);
            sums += ccgate_quota::Totals {
                prompts: n("count"),
                credits: n("credits"),
                input_tokens: n("input_tokens"),
                output_tokens: n("output_tokens"),
                cache_creation_input_tokens: n("cache_creation_input_tokens"),
                cache_read_input_tokens: n("cache_read_input_tokens"),
            };
        }
        sums
    }
}
