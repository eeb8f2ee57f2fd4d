//! A real OpenID provider for the single sign-on tests: panva's certified
//! `oidc-provider` (npm, pinned in `tests/oidc/`, installed by
//! `scripts/test.sh`), run by `tests/oidc/provider.mjs` with Node.js on
//! 127.0.0.1 over plain HTTP, with the clients and users a test gives it.
//!
//! - [`OidcProvider::start`] spawns it and waits (bounded) for its ready line;
//!   it is killed on drop, and exits by itself when its stdin closes (a test
//!   process that was killed leaves nothing running).
//! - [`HttpAgent`] is a small browser over reqwest: a cookie jar and redirects
//!   followed by hand, so a test sees every hop.
//! - [`OidcProvider::sign_in`] follows redirects from any URL (the server's
//!   `/auth/oidc/login`, or an authorization URL) through the provider's login
//!   form up to a redirect URI; [`OidcProvider::login`] builds the
//!   authorization request itself (state, nonce, PKCE S256) and returns the
//!   code, for tests of the provider alone.
//! - The provider's pages for a headless browser: `#username`, `#password`,
//!   button `#login`; a refused login shows `#error`.
//!
//! The provider's issuer is `http://127.0.0.1:PORT`. Its clients' redirect
//! URIs are fixed at start, so a server test binds the server's listener
//! first (`TestServer::launch_on`), then starts the provider with
//! `http://127.0.0.1:SERVER_PORT/auth/oidc/callback`, then the server with the
//! issuer.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// How long the provider may take to print its ready line (about half a
/// second when the machine is idle; generous for a busy CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(20);
const START_ATTEMPTS: usize = 3;
/// How long one command on its stdin may take to be answered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How many redirects a sign-in follows at most.
const MAX_HOPS: usize = 20;

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with client_id and client_secret.
    SecretBasic,
    /// client_id and client_secret in the form body.
    SecretPost,
}

impl ClientAuth {
    fn method(self) -> &'static str {
        match self {
            ClientAuth::SecretBasic => "client_secret_basic",
            ClientAuth::SecretPost => "client_secret_post",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub auth: ClientAuth,
}

impl ClientConfig {
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            post_logout_redirect_uris: Vec::new(),
            auth: ClientAuth::SecretBasic,
        }
    }

    pub fn with_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "token_endpoint_auth_method": self.auth.method(),
        })
    }
}

/// A person at the provider; they sign in with their `sub` or their e-mail.
#[derive(Clone, Debug)]
pub struct UserConfig {
    pub sub: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: String,
    pub groups: Vec<String>,
}

impl UserConfig {
    /// `sub` with the e-mail `sub@example.test` and the name `sub`.
    pub fn new(sub: &str, password: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            email: Some(format!("{sub}@example.test")),
            name: Some(sub.to_owned()),
            password: password.to_owned(),
            groups: Vec::new(),
        }
    }

    pub fn with_email(mut self, email: &str) -> Self {
        self.email = Some(email.to_owned());
        self
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    pub fn with_groups(mut self, groups: &[&str]) -> Self {
        self.groups = groups.iter().map(|group| (*group).to_owned()).collect();
        self
    }

    fn to_json(&self) -> Value {
        let mut user = json!({
            "sub": self.sub,
            "password": self.password,
            "groups": self.groups,
        });
        if let Some(email) = &self.email {
            user["email"] = json!(email);
        }
        if let Some(name) = &self.name {
            user["name"] = json!(name);
        }
        user
    }
}

/// What the provider's token endpoint does to the ID tokens it hands out
/// (both grants), set by [`OidcProvider::set_id_token_tamper`]: each mode
/// breaks one thing a relying party must check, and only that one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTokenTamper {
    /// The tokens as issued (the start).
    None,
    /// The claims changed (`sub` [`Self::FORGED_SUB`], `email`
    /// [`Self::FORGED_EMAIL`]) under the original signature, which no longer
    /// matches them.
    Signature,
    /// Re-signed with the provider's key for the audience
    /// [`Self::FOREIGN_AUDIENCE`].
    Audience,
    /// Re-signed, issued 2 h and expired 1 h before the provider's clock.
    Expired,
    /// Re-signed with the issuer [`Self::FOREIGN_ISSUER`].
    Issuer,
    /// Re-signed with the nonce [`Self::REPLAYED_NONCE`].
    Nonce,
}

impl IdTokenTamper {
    pub const ALL: [IdTokenTamper; 6] = [
        IdTokenTamper::None,
        IdTokenTamper::Signature,
        IdTokenTamper::Audience,
        IdTokenTamper::Expired,
        IdTokenTamper::Issuer,
        IdTokenTamper::Nonce,
    ];
    pub const FORGED_SUB: &str = "forged";
    pub const FORGED_EMAIL: &str = "forged@example.test";
    pub const FOREIGN_AUDIENCE: &str = "someone-else";
    pub const FOREIGN_ISSUER: &str = "http://127.0.0.1:1/evil";
    pub const REPLAYED_NONCE: &str = "replayed-nonce";

    /// Its name in the provider's `set_id_token_tamper` command.
    pub fn mode(self) -> &'static str {
        match self {
            IdTokenTamper::None => "none",
            IdTokenTamper::Signature => "signature",
            IdTokenTamper::Audience => "audience",
            IdTokenTamper::Expired => "expired",
            IdTokenTamper::Issuer => "issuer",
            IdTokenTamper::Nonce => "nonce",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub clients: Vec<ClientConfig>,
    pub users: Vec<UserConfig>,
    /// The name of the claim that lists a user's groups.
    pub groups_claim: String,
    /// The groups in every ID token, not only with the scope `groups`.
    pub groups_always: bool,
    pub id_token_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// The provider's sessions and grants.
    pub session_ttl: Duration,
    /// The provider's clock against the real one, in seconds (negative: its
    /// tokens are dated in the past). Keep it within the session TTL.
    pub clock_offset_secs: i64,
    /// 0: any free port.
    pub port: u16,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            users: Vec::new(),
            groups_claim: "groups".to_owned(),
            groups_always: false,
            id_token_ttl: Duration::from_secs(3600),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(86_400),
            session_ttl: Duration::from_secs(3600),
            clock_offset_secs: 0,
            port: 0,
        }
    }
}

impl ProviderConfig {
    pub fn new(clients: Vec<ClientConfig>, users: Vec<UserConfig>) -> Self {
        Self {
            clients,
            users,
            ..Self::default()
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "port": self.port,
            "clients": self.clients.iter().map(ClientConfig::to_json).collect::<Vec<_>>(),
            "users": self.users.iter().map(UserConfig::to_json).collect::<Vec<_>>(),
            "groups_claim": self.groups_claim,
            "groups_always": self.groups_always,
            "id_token_ttl": self.id_token_ttl.as_secs(),
            "access_token_ttl": self.access_token_ttl.as_secs(),
            "refresh_token_ttl": self.refresh_token_ttl.as_secs(),
            "session_ttl": self.session_ttl.as_secs(),
            "interaction_ttl": self.session_ttl.as_secs().max(600),
            "clock_offset_secs": self.clock_offset_secs,
        })
    }
}

/// The directory of `provider.mjs` and its `node_modules`.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/oidc")
}

/// The running provider; killed when dropped.
pub struct OidcProvider {
    issuer: String,
    port: u16,
    config: ProviderConfig,
    child: Child,
    /// Its stdin (commands) and the lines it answers with.
    control: tokio::sync::Mutex<(ChildStdin, mpsc::UnboundedReceiver<String>)>,
    stderr: Arc<Mutex<String>>,
    /// How long it took from spawn to the ready line.
    pub startup: Duration,
}

impl OidcProvider {
    /// Spawns `node tests/oidc/provider.mjs` and waits for its ready line.
    /// A start that hangs (seen once in CI on a loaded machine: Node alive,
    /// silent for a minute) is killed and tried again; panics (with the
    /// provider's stderr) after [`START_ATTEMPTS`].
    pub async fn start(config: ProviderConfig) -> Self {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(config.clone()).await {
                Ok(provider) => return provider,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "the OpenID provider did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    async fn try_start(config: ProviderConfig) -> Result<Self, String> {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "oidc-provider is not installed in {}: run `npm ci --prefix tests/oidc` (scripts/test.sh does it)",
            dir.display()
        );
        let node = std::env::var("CCGATE_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
        let began = Instant::now();
        let mut child = Command::new(&node)
            .arg(dir.join("provider.mjs"))
            .arg("--config-json")
            .arg(config.to_json().to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {node} (Node.js): {error}"));

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut child_stderr = child.stderr.take().unwrap();
        let log = stderr.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = child_stderr.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        let (lines_tx, mut lines) = mpsc::unbounded_channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let ready = match tokio::time::timeout(START_TIMEOUT, lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => {
                let status = child.wait().await;
                panic!(
                    "the OpenID provider exited before it was ready ({status:?}):\n{}",
                    stderr.lock().unwrap()
                );
            }
            Err(_) => {
                let failure = format!(
                    "the OpenID provider was not ready within {START_TIMEOUT:?} (exited: {:?}):\n{}",
                    child.try_wait(),
                    stderr.lock().unwrap()
                );
                let _ = child.kill().await;
                return Err(failure);
            }
        };
        let startup = began.elapsed();
        let ready: Value = serde_json::from_str(&ready)
            .unwrap_or_else(|_| panic!("the provider's ready line is no JSON: {ready}"));
        let issuer = ready["issuer"].as_str().unwrap().to_owned();
        let port = u16::try_from(ready["port"].as_u64().unwrap()).unwrap();
        let stdin = child.stdin.take().unwrap();
        Ok(Self {
            issuer,
            port,
            config,
            child,
            control: tokio::sync::Mutex::new((stdin, lines)),
            stderr,
            startup,
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// What the provider wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn client(&self, client_id: &str) -> &ClientConfig {
        self.config
            .clients
            .iter()
            .find(|client| client.client_id == client_id)
            .unwrap_or_else(|| panic!("no client {client_id} in the provider's config"))
    }

    /// The discovery document.
    pub async fn discovery(&self) -> Value {
        let response = plain_client()
            .get(format!("{}/.well-known/openid-configuration", self.issuer))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "discovery");
        response.json().await.unwrap()
    }

    /// Adds a user, or replaces the one with the same `sub` (new groups show
    /// in the next ID token, a refreshed one included).
    pub async fn upsert_user(&self, user: &UserConfig) {
        self.command(json!({ "op": "upsert_user", "user": user.to_json() }))
            .await;
    }

    /// The user is gone: they cannot sign in, and their refresh tokens fail
    /// with `invalid_grant`.
    pub async fn remove_user(&self, sub: &str) {
        self.command(json!({ "op": "remove_user", "sub": sub }))
            .await;
    }

    /// Moves the provider's clock: tokens issued from now on are dated
    /// `secs` from the real time (negative: expired on arrival, given a short
    /// ID token TTL).
    pub async fn set_clock_offset(&self, secs: i64) {
        self.command(json!({ "op": "set_clock_offset", "secs": secs }))
            .await;
    }

    /// From now on the token endpoint hands out bad ID tokens (see
    /// [`IdTokenTamper`]), made from the ones it issues;
    /// [`IdTokenTamper::None`] stops it.
    pub async fn set_id_token_tamper(&self, mode: IdTokenTamper) {
        self.command(json!({ "op": "set_id_token_tamper", "mode": mode.mode() }))
            .await;
    }

    async fn command(&self, command: Value) {
        let mut control = self.control.lock().await;
        let (stdin, replies) = &mut *control;
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        let reply = tokio::time::timeout(COMMAND_TIMEOUT, replies.recv())
            .await
            .unwrap_or_else(|_| panic!("the provider did not answer {command}"))
            .unwrap_or_else(|| panic!("the provider exited:\n{}", self.stderr()));
        let reply: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(reply["ok"], true, "{command} -> {reply}");
    }

    /// Follows redirects from `start` (say, the server's `/auth/oidc/login`
    /// or an authorization URL), fills in the provider's login form with
    /// `username` and `password` when it shows, and stops at the first
    /// redirect to a URL that begins with `redirect_uri`, which it returns
    /// without fetching it (the agent keeps every cookie set on the way).
    pub async fn sign_in(
        &self,
        agent: &mut HttpAgent,
        start: &str,
        username: &str,
        password: &str,
        redirect_uri: &str,
    ) -> Result<Url, LoginError> {
        let mut url = Url::parse(start).unwrap();
        let mut submitted = false;
        for _ in 0..MAX_HOPS {
            let response = agent.get(url.as_str()).await;
            let status = response.status();
            if status.is_redirection() {
                let next = location(&url, &response);
                if next.as_str().starts_with(redirect_uri) {
                    return Ok(next);
                }
                url = next;
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            let on_form = url
                .as_str()
                .starts_with(&format!("{}/interaction/", self.issuer));
            if status != StatusCode::OK || !on_form || !body.contains("id=\"password\"") {
                return Err(LoginError::Page { url, status, body });
            }
            if submitted {
                return Err(LoginError::Page { url, status, body });
            }
            // The form's action: this interaction's `/login`.
            let action = format!("{}/login", url.as_str().trim_end_matches('/'));
            let response = agent
                .post_form(&action, &[("username", username), ("password", password)])
                .await;
            submitted = true;
            let status = response.status();
            if !status.is_redirection() {
                let body = response.text().await.unwrap_or_default();
                return Err(LoginError::Refused {
                    status,
                    message: element_text(&body, "error").unwrap_or(body),
                });
            }
            let next = location(&url, &response);
            if next.as_str().starts_with(redirect_uri) {
                return Ok(next);
            }
            url = next;
        }
        Err(LoginError::TooManyRedirects(url))
    }

    /// The authorization request of a client, as a relying party builds it
    /// (fresh state, nonce and PKCE verifier; `scope` like "openid email").
    pub fn authorization_request(&self, client_id: &str, scope: &str) -> AuthorizationRequest {
        let client = self.client(client_id);
        let redirect_uri = client.redirect_uris[0].clone();
        let code_verifier = random_token();
        let code_challenge = base64url_encode(&Sha256::digest(code_verifier.as_bytes()));
        let state = random_token();
        let nonce = random_token();
        let mut url = Url::parse(&format!("{}/auth", self.issuer)).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &code_challenge)
            .append_pair("code_challenge_method", "S256");
        AuthorizationRequest {
            url,
            client_id: client_id.to_owned(),
            redirect_uri,
            state,
            nonce,
            code_verifier,
        }
    }

    /// A whole authorization-code + PKCE sign-in of `username` for
    /// `client_id` over plain HTTP: discovery, the authorization request,
    /// the login form, redirects up to the client's (first) redirect URI.
    pub async fn login(
        &self,
        client_id: &str,
        scope: &str,
        username: &str,
        password: &str,
    ) -> Result<Login, LoginError> {
        let discovery = self.discovery().await;
        let mut request = self.authorization_request(client_id, scope);
        let endpoint = discovery["authorization_endpoint"].as_str().unwrap();
        let query = request.url.query().unwrap().to_owned();
        request.url = Url::parse(endpoint).unwrap();
        request.url.set_query(Some(&query));
        let mut agent = HttpAgent::new();
        let callback = self
            .sign_in(
                &mut agent,
                request.url.as_str(),
                username,
                password,
                &request.redirect_uri,
            )
            .await?;
        let params: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
        if let Some(error) = params.get("error") {
            return Err(LoginError::Provider {
                error: error.clone(),
                description: params.get("error_description").cloned(),
            });
        }
        let code = params
            .get("code")
            .cloned()
            .ok_or_else(|| LoginError::Provider {
                error: format!("no code in {callback}"),
                description: None,
            })?;
        Ok(Login {
            code,
            state: params.get("state").cloned().unwrap_or_default(),
            iss: params.get("iss").cloned(),
            callback,
            request,
            agent,
        })
    }

    /// The token endpoint's answer for a code (status and JSON body), the
    /// client authenticating as configured.
    pub async fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> (StatusCode, Value) {
        self.token_request(
            client_id,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
            ],
        )
        .await
    }

    /// The token endpoint's answer for a refresh token.
    pub async fn refresh(&self, client_id: &str, refresh_token: &str) -> (StatusCode, Value) {
        self.token_request(
            client_id,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn token_request(&self, client_id: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let client = self.client(client_id);
        let mut params = params.to_vec();
        let mut request = plain_client().post(format!("{}/token", self.issuer));
        match client.auth {
            ClientAuth::SecretBasic => {
                let credentials = format!(
                    "{}:{}",
                    form_encode_component(&client.client_id),
                    form_encode_component(&client.client_secret)
                );
                request = request.header(
                    AUTHORIZATION,
                    format!("Basic {}", base64_encode(credentials.as_bytes())),
                );
            }
            ClientAuth::SecretPost => {
                params.push(("client_id", &client.client_id));
                params.push(("client_secret", &client.client_secret));
            }
        }
        let response = request
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_encode(&params))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "the OpenID provider's stderr:\n{}",
                self.stderr.lock().unwrap()
            );
        }
    }
}

/// An authorization request built by [`OidcProvider::authorization_request`].
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    pub url: Url,
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
}

/// A finished sign-in: the code and state the provider redirected with.
pub struct Login {
    pub code: String,
    pub state: String,
    /// The `iss` parameter of the response (RFC 9207).
    pub iss: Option<String>,
    /// The whole redirect URL.
    pub callback: Url,
    pub request: AuthorizationRequest,
    /// The agent, with the provider's session cookie.
    pub agent: HttpAgent,
}

#[derive(Debug)]
pub enum LoginError {
    /// The login form came back: wrong username or password (`#error`).
    Refused {
        status: StatusCode,
        message: String,
    },
    /// The redirect URI was reached with `error=…` instead of a code.
    Provider {
        error: String,
        description: Option<String>,
    },
    /// A page that is neither a redirect nor the login form.
    Page {
        url: Url,
        status: StatusCode,
        body: String,
    },
    TooManyRedirects(Url),
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginError::Refused { status, message } => {
                write!(f, "login refused ({status}): {message}")
            }
            LoginError::Provider { error, description } => {
                write!(f, "the provider answered {error}: {description:?}")
            }
            LoginError::Page { url, status, body } => {
                write!(f, "unexpected page {url} ({status}): {body}")
            }
            LoginError::TooManyRedirects(url) => {
                write!(f, "more than {MAX_HOPS} redirects, at {url}")
            }
        }
    }
}

/// A browser without a browser: reqwest with its own cookie jar, following
/// no redirect by itself. Cookies are kept per host (any port, as browsers
/// do) and path.
pub struct HttpAgent {
    pub client: Client,
    cookies: Vec<Cookie>,
}

#[derive(Clone, Debug)]
struct Cookie {
    host: String,
    path: String,
    name: String,
    value: String,
}

impl Default for HttpAgent {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpAgent {
    pub fn new() -> Self {
        Self {
            client: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    pub async fn get(&mut self, url: &str) -> reqwest::Response {
        let request = self.client.get(url);
        self.send(url, request).await
    }

    pub async fn post_form(&mut self, url: &str, params: &[(&str, &str)]) -> reqwest::Response {
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_encode(params));
        self.send(url, request).await
    }

    /// Sends `request` (made for `url`) with the jar's cookies, and keeps
    /// the ones it sets.
    pub async fn send(&mut self, url: &str, request: reqwest::RequestBuilder) -> reqwest::Response {
        let parsed = Url::parse(url).unwrap();
        let request = match self.cookie_header(&parsed) {
            Some(header) => request.header(COOKIE, header),
            None => request,
        };
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
        for header in response.headers().get_all(SET_COOKIE) {
            if let Ok(header) = header.to_str() {
                self.store(&parsed, header);
            }
        }
        response
    }

    /// The value of the cookie `name` for `url`, if the jar has one.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).unwrap();
        self.matching(&url)
            .find(|cookie| cookie.name == name)
            .map(|cookie| cookie.value.clone())
    }

    fn matching<'a>(&'a self, url: &'a Url) -> impl Iterator<Item = &'a Cookie> + 'a {
        let host = url.host_str().unwrap_or_default();
        self.cookies.iter().filter(move |cookie| {
            cookie.host == host
                && (url.path() == cookie.path
                    || url
                        .path()
                        .starts_with(&format!("{}/", cookie.path.trim_end_matches('/'))))
        })
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let pairs: Vec<String> = self
            .matching(url)
            .map(|cookie| format!("{}={}", cookie.name, cookie.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn store(&mut self, url: &Url, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        // The default path: the request path's directory.
        let mut path = match url.path().rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(end) => url.path()[..end].to_owned(),
        };
        let mut expired = value.is_empty();
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "path" if val.starts_with('/') => path = val.trim().to_owned(),
                "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|age| age <= 0),
                "expires" => expired |= val.contains("1970"),
                _ => {}
            }
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        self.cookies
            .retain(|cookie| !(cookie.host == host && cookie.path == path && cookie.name == name));
        if !expired {
            self.cookies.push(Cookie {
                host,
                path,
                name,
                value,
            });
        }
    }
}

/// A client that follows no redirect, for single requests.
fn plain_client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

fn location(base: &Url, response: &reqwest::Response) -> Url {
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("a redirect from {base} without Location"));
    base.join(location).unwrap()
}

/// The text of the element with `id` (no markup inside), if the page has one.
fn element_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let open = start + html[start..].find('>')? + 1;
    let close = open + html[open..].find('<')?;
    Some(html[open..close].trim().to_owned())
}

/// 32 random bytes, base64url: a PKCE verifier, a state, a nonce.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    base64url_encode(&bytes)
}

/// application/x-www-form-urlencoded.
pub fn form_encode(params: &[(&str, &str)]) -> String {
    let mut url = Url::parse("http://127.0.0.1/").unwrap();
    url.query_pairs_mut().extend_pairs(params);
    url.query().unwrap_or_default().to_owned()
}

fn form_encode_component(text: &str) -> String {
    let mut url = Url::parse("http://127.0.0.1/").unwrap();
    url.query_pairs_mut().append_pair("x", text);
    url.query().unwrap()[2..].to_owned()
}

/// Standard base64 with padding (HTTP Basic).
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// base64url without padding (JWTs, PKCE).
pub fn base64url_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url, padded or not; `None` for anything else.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

/// A JWT's header and claims, decoded without checking its signature.
pub fn decode_jwt_unverified(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = |what: &str| -> Value {
        let text = parts
            .next()
            .unwrap_or_else(|| panic!("no {what} in the JWT {token}"));
        serde_json::from_slice(&base64url_decode(text).expect("base64url")).expect("JSON")
    };
    let header = part("header");
    let claims = part("claims");
    (header, claims)
}
