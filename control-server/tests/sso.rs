//! Single sign-on against a real OpenID provider (`oidc-provider` on
//! loopback): roles from groups, people linked to identities, a member's
//! own page, refused ID tokens and states, sessions the provider ends.

mod common;

use std::time::Duration;

use ccgate_server::sso::OidcConfig;
use common::TestServer;
use common::oidc::{
    ClientConfig, HttpAgent, IdTokenTamper, OidcProvider, ProviderConfig, UserConfig,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";

struct Sso {
    server: TestServer,
    provider: OidcProvider,
    redirect: String,
    _data: tempfile::TempDir,
}

fn people() -> Vec<UserConfig> {
    vec![
        UserConfig::new("ada", PASSWORD).with_groups(&["ccgate-admins", "staff"]),
        UserConfig::new("vic", PASSWORD).with_groups(&["ccgate-viewers"]),
        UserConfig::new("mel", PASSWORD).with_groups(&["ccgate-members"]),
        UserConfig::new("otto", PASSWORD).with_groups(&["sales"]),
    ]
}

async fn start_with(
    provider_tweak: impl FnOnce(&mut ProviderConfig),
    tweak: impl FnOnce(&mut OidcConfig),
) -> Sso {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let redirect = format!("http://127.0.0.1:{port}/auth/oidc/callback");
    let mut provider_config = ProviderConfig::new(
        vec![ClientConfig::new("ccgate", "client-secret-1", &redirect)],
        people(),
    );
    provider_tweak(&mut provider_config);
    let provider = OidcProvider::start(provider_config).await;
    let data = tempfile::tempdir().unwrap();
    let mut config = common::config(data.path());
    let mut oidc = OidcConfig::new(provider.issuer(), "ccgate", &redirect);
    oidc.client_secret = Some("client-secret-1".to_owned());
    oidc.scopes = ["openid", "email", "profile", "groups"]
        .map(str::to_owned)
        .to_vec();
    oidc.admin_groups = vec!["ccgate-admins".to_owned()];
    oidc.viewer_groups = vec!["ccgate-viewers".to_owned()];
    oidc.member_groups = vec!["ccgate-members".to_owned()];
    tweak(&mut oidc);
    config.oidc = Some(oidc);
    let server = TestServer::launch_on(config, listener).await;
    Sso {
        server,
        provider,
        redirect,
        _data: data,
    }
}

async fn start() -> Sso {
    start_with(|_| {}, |_| {}).await
}

/// A browser signed in (or refused) through the provider's pages.
struct Browser {
    agent: HttpAgent,
    /// The callback's answer.
    status: StatusCode,
    page: String,
}

impl Sso {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// Signs in at the provider and returns the callback URL, not yet followed.
    async fn to_callback(&self, agent: &mut HttpAgent, user: &str) -> String {
        self.provider
            .sign_in(
                agent,
                &self.url("/auth/oidc/login"),
                user,
                PASSWORD,
                &self.redirect,
            )
            .await
            .unwrap_or_else(|error| panic!("{user} could not sign in: {error}"))
            .to_string()
    }

    async fn sign_in(&self, user: &str) -> Browser {
        let mut agent = HttpAgent::new();
        let callback = self.to_callback(&mut agent, user).await;
        let response = agent.get(&callback).await;
        let status = response.status();
        let page = response.text().await.unwrap();
        Browser {
            agent,
            status,
            page,
        }
    }

    async fn audit_kinds(&self, kind: &str) -> Vec<Value> {
        let (status, body) = self
            .server
            .admin_get(&format!("/api/admin/audit?kind={kind}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["entries"].as_array().cloned().unwrap_or_default()
    }

    async fn identity_of(&self, subject: &str) -> Value {
        let (_, list) = self.server.admin_get("/api/admin/identities").await;
        list["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["subject"] == subject)
            .cloned()
            .unwrap_or_else(|| panic!("no identity {subject} in {list}"))
    }
}

impl Browser {
    async fn call(
        &mut self,
        sso: &Sso,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = sso.url(path);
        let mut request = self.agent.client.request(method.clone(), &url);
        if method != Method::GET {
            let csrf = self.csrf(sso).await;
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = self.agent.send(&url, request).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&mut self, sso: &Sso, path: &str) -> (StatusCode, Value) {
        self.call(sso, Method::GET, path, None).await
    }

    async fn csrf(&mut self, sso: &Sso) -> String {
        let url = sso.url("/api/admin/me");
        let request = self.agent.client.get(&url);
        let me: Value = self.agent.send(&url, request).await.json().await.unwrap();
        me["csrf_token"].as_str().unwrap_or_default().to_owned()
    }

    fn has_session(&self, sso: &Sso) -> bool {
        self.agent
            .cookie(&sso.server.url, "ccgate_session")
            .is_some()
    }
}

#[tokio::test]
async fn groups_give_roles_and_a_member_sees_only_their_own_page() {
    let sso = start().await;
    let (status, mel) = sso
        .server
        .admin_json(
            Method::POST,
            "/api/admin/users",
            Some(json!({ "name": "Mel", "email": "MEL@example.test",
                    "limits": [{ "type": "credits", "window": "daily", "value": 40 }] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mel}");
    let mel_id = mel["user"]["id"].as_i64().unwrap();
    assert_eq!(mel["user"]["email"], "MEL@example.test");
    let (_, other) = sso
        .server
        .admin_json(
            Method::POST,
            "/api/admin/users",
            Some(json!({ "name": "Other" })),
        )
        .await;
    let other_id = other["user"]["id"].as_i64().unwrap();

    // An admin: reads and changes.
    let mut ada = sso.sign_in("ada").await;
    assert_eq!(ada.status, StatusCode::OK, "{}", ada.page);
    assert!(ada.page.contains("url=/dashboard\""), "{}", ada.page);
    assert!(ada.has_session(&sso));
    let (_, me) = ada.get(&sso, "/api/admin/me").await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["via"], "sso");
    assert_eq!(me["username"], "ada@example.test");
    let (status, _) = ada
        .call(
            &sso,
            Method::POST,
            "/api/admin/users",
            Some(json!({ "name": "Made by Ada" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // A viewer: reads only.
    let mut vic = sso.sign_in("vic").await;
    let (_, me) = vic.get(&sso, "/api/admin/me").await;
    assert_eq!(me["role"], "viewer");
    let (status, _) = vic.get(&sso, "/api/admin/users").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = vic
        .call(
            &sso,
            Method::POST,
            "/api/admin/users",
            Some(json!({ "name": "Nope" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A member: linked by verified e-mail (case aside), their own page only.
    let mut member = sso.sign_in("mel").await;
    assert_eq!(member.status, StatusCode::OK, "{}", member.page);
    assert!(
        member.page.contains("url=/dashboard/me\""),
        "{}",
        member.page
    );
    let (_, me) = member.get(&sso, "/api/admin/me").await;
    assert_eq!(me["role"], "member");
    assert_eq!(me["person"]["id"], mel_id);
    let (status, page) = member.get(&sso, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["user"]["name"], "Mel");
    assert_eq!(page["user"]["limits"][0]["value"], 40);
    assert_eq!(page["user"]["identity"]["subject"], "mel");
    for path in [
        "/api/admin/users",
        &format!("/api/admin/users/{other_id}"),
        "/api/admin/audit",
        "/api/admin/events",
        "/api/admin/identities",
    ] {
        let (status, body) = member.get(&sso, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["code"], "member", "{path}");
    }
    // Their own alert thresholds are the one thing they change (with CSRF).
    let url = sso.url("/api/me/alerts");
    let request = member
        .agent
        .client
        .put(&url)
        .json(&json!({ "thresholds": [80] }));
    let response = member.agent.send(&url, request).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "no CSRF header");
    let (status, alerts) = member
        .call(
            &sso,
            Method::PUT,
            "/api/me/alerts",
            Some(json!({ "thresholds": [80, 50] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    assert_eq!(alerts["thresholds"], json!([50.0, 80.0]));
    let (status, _) = member
        .call(
            &sso,
            Method::PUT,
            "/api/me/alerts",
            Some(json!({ "thresholds": [0] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, page) = member.get(&sso, "/api/me").await;
    assert_eq!(page["alerts"]["thresholds"], json!([50.0, 80.0]));
    let (_, rules) = sso.server.admin_get("/api/admin/alerts/rules").await;
    let owned: Vec<&Value> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["owner_user_id"] == mel_id)
        .collect();
    assert_eq!(owned.len(), 2, "{rules}");

    // The audit log has each sign-in and the link.
    let logins = sso.audit_kinds("login").await;
    for actor in [
        "sso:ada@example.test",
        "sso:vic@example.test",
        "sso:mel@example.test",
    ] {
        assert!(
            logins
                .iter()
                .any(|e| e["actor"] == actor && e["detail"]["via"] == "sso"),
            "{actor} in {logins:?}"
        );
    }
    let links = sso.audit_kinds("identity_linked").await;
    assert!(links.iter().any(|e| e["user_id"] == mel_id), "{links:?}");
}

#[tokio::test]
async fn no_role_is_refused_until_an_admin_gives_one_and_links_a_person() {
    let sso = start().await;
    let otto = sso.sign_in("otto").await;
    assert_eq!(otto.status, StatusCode::FORBIDDEN, "{}", otto.page);
    assert!(otto.page.contains("no role"), "{}", otto.page);
    assert!(!otto.has_session(&sso));
    let refused = sso.audit_kinds("login_refused").await;
    assert!(
        refused.iter().any(|e| e["detail"]["reason"] == "no role"),
        "{refused:?}"
    );
    let identity = sso.identity_of("otto").await;
    assert_eq!(identity["role"], Value::Null);
    assert_eq!(identity["groups"], json!(["sales"]));
    let id = identity["id"].as_i64().unwrap();

    let (status, changed) = sso
        .server
        .admin_json(
            Method::PUT,
            &format!("/api/admin/identities/{id}"),
            Some(json!({ "role_override": "member" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["identity"]["role"], "member");
    let mut otto = sso.sign_in("otto").await;
    assert_eq!(otto.status, StatusCode::OK, "{}", otto.page);
    let (status, body) = otto.get(&sso, "/api/me").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_linked");

    let (_, person) = sso
        .server
        .admin_json(
            Method::POST,
            "/api/admin/users",
            Some(json!({ "name": "Otto" })),
        )
        .await;
    let person_id = person["user"]["id"].as_i64().unwrap();
    let (status, _) = sso
        .server
        .admin_json(
            Method::PUT,
            &format!("/api/admin/identities/{id}"),
            Some(json!({ "user_id": person_id })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, page) = otto.get(&sso, "/api/me").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["user"]["name"], "Otto");

    // A hand-set role wins over groups, and the session follows at once.
    sso.server
        .admin_json(
            Method::PUT,
            &format!("/api/admin/identities/{id}"),
            Some(json!({ "role_override": "viewer" })),
        )
        .await;
    let (_, me) = otto.get(&sso, "/api/admin/me").await;
    assert_eq!(me["role"], "viewer");
    let changes = sso.audit_kinds("identity_role_changed").await;
    assert_eq!(changes.len(), 2, "{changes:?}");
    // Deleting the identity ends its sessions.
    assert_eq!(
        sso.server
            .admin_delete(&format!("/api/admin/identities/{id}"))
            .await,
        StatusCode::OK
    );
    let (status, _) = otto.get(&sso, "/api/admin/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Signing in again after losing one's groups ends the sessions one had.
    let mut ada = sso.sign_in("ada").await;
    assert_eq!(ada.get(&sso, "/api/admin/me").await.1["role"], "admin");
    sso.provider
        .upsert_user(&UserConfig::new("ada", PASSWORD).with_groups(&["sales"]))
        .await;
    let again = sso.sign_in("ada").await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.page);
    let (status, _) = ada.get(&sso, "/api/admin/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_used_state_or_one_from_another_browser_is_refused() {
    let sso = start().await;
    let mut agent = HttpAgent::new();
    let callback = sso.to_callback(&mut agent, "ada").await;
    let first = agent.get(&callback).await;
    assert_eq!(first.status(), StatusCode::OK);
    let replayed = agent.get(&callback).await;
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
    assert!(replayed.text().await.unwrap().contains("already used"));

    // The callback delivered to a browser that did not start the login.
    let mut victim = HttpAgent::new();
    let mut attacker = HttpAgent::new();
    let callback = sso.to_callback(&mut attacker, "ada").await;
    let response = victim.get(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("another browser"));
    assert!(victim.cookie(&sso.server.url, "ccgate_session").is_none());
    // That state is spent too: the attacker cannot use it afterwards.
    let response = attacker.get(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let forged = sso.url("/auth/oidc/callback?code=abc&state=made-up");
    assert_eq!(agent.get(&forged).await.status(), StatusCode::BAD_REQUEST);
    let refused = sso.audit_kinds("login_refused").await;
    assert_eq!(refused.len(), 4, "{refused:?}");
}

#[tokio::test]
async fn tampered_foreign_expired_and_replayed_id_tokens_are_refused() {
    let sso = start().await;
    for mode in [
        IdTokenTamper::Signature,
        IdTokenTamper::Audience,
        IdTokenTamper::Expired,
        IdTokenTamper::Issuer,
        IdTokenTamper::Nonce,
    ] {
        sso.provider.set_id_token_tamper(mode).await;
        let browser = sso.sign_in("ada").await;
        assert_eq!(
            browser.status,
            StatusCode::UNAUTHORIZED,
            "{mode:?}: {}",
            browser.page
        );
        assert!(
            browser.page.contains("did not pass"),
            "{mode:?}: {}",
            browser.page
        );
        assert!(!browser.has_session(&sso), "{mode:?}");
    }
    let refused = sso.audit_kinds("login_refused").await;
    assert_eq!(refused.len(), 5, "{refused:?}");
    let (_, list) = sso.server.admin_get("/api/admin/identities").await;
    assert_eq!(
        list["identities"],
        json!([]),
        "no identity from a bad token"
    );
    sso.provider.set_id_token_tamper(IdTokenTamper::None).await;
    let browser = sso.sign_in("ada").await;
    assert_eq!(browser.status, StatusCode::OK, "{}", browser.page);
}

#[tokio::test]
async fn a_minute_of_clock_skew_is_tolerated_and_no_more() {
    let sso = start_with(|p| p.id_token_ttl = Duration::from_secs(60), |_| {}).await;
    // Expired 30 s ago by our clock: within the skew.
    sso.provider.set_clock_offset(-90).await;
    let browser = sso.sign_in("ada").await;
    assert_eq!(browser.status, StatusCode::OK, "{}", browser.page);
    // Expired 140 s ago.
    sso.provider.set_clock_offset(-200).await;
    let browser = sso.sign_in("ada").await;
    assert_eq!(browser.status, StatusCode::UNAUTHORIZED, "{}", browser.page);
}

/// Polls `check` until it is true, for at most ~20 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} did not happen in time");
}

#[tokio::test]
async fn the_provider_removing_a_person_ends_their_session_and_new_groups_change_roles() {
    let sso = start_with(|_| {}, |oidc| oidc.recheck = Duration::from_secs(1)).await;
    let mut vic = sso.sign_in("vic").await;
    let mut mel = sso.sign_in("mel").await;
    let (_, me) = vic.get(&sso, "/api/admin/me").await;
    assert_eq!(me["role"], "viewer");

    sso.provider
        .upsert_user(&UserConfig::new("vic", PASSWORD).with_groups(&["ccgate-admins"]))
        .await;
    eventually("vic becoming an admin", async || {
        vic.get(&sso, "/api/admin/me").await.1["role"] == "admin"
    })
    .await;
    let changes = sso.audit_kinds("identity_role_changed").await;
    assert!(
        changes.iter().any(|e| e["detail"]["by"] == "groups"),
        "{changes:?}"
    );

    sso.provider.remove_user("mel").await;
    eventually("mel's session ending", async || {
        mel.get(&sso, "/api/admin/me").await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let ended = sso.audit_kinds("session_ended_by_provider").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["actor"], "sso:mel@example.test");
    // Vic's session lives on.
    let (status, _) = vic.get(&sso, "/api/admin/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn password_sign_in_can_be_kept_for_the_builtin_admin_alone() {
    let sso = start().await;
    let (status, _) = sso
        .server
        .admin_json(
            Method::POST,
            "/api/admin/accounts",
            Some(json!({ "username": "carol", "password": "carol-password-1", "role": "admin" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = sso
        .server
        .admin_json(
            Method::POST,
            "/api/admin/accounts",
            Some(json!({ "username": "mia", "password": "mia-password-12", "role": "member" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "members come from single sign-on"
    );
    let options: Value = sso
        .server
        .client
        .get(sso.url("/api/admin/login"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options["sso"]["enabled"], true);
    assert_eq!(options["password_login"], "everyone");
    let response = sso
        .server
        .login_response(Some("carol"), "carol-password-1")
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let (status, _) = sso
        .server
        .admin_json(
            Method::PUT,
            "/api/admin/settings",
            Some(json!({ "password_login": "builtin_admin_only" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let response = sso
        .server
        .login_response(Some("carol"), "carol-password-1")
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "password_login_off");
    let response = sso
        .server
        .login_response(None, common::ADMIN_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "break-glass");
}

#[tokio::test]
async fn without_an_issuer_single_sign_on_is_off() {
    let server = TestServer::start().await;
    let options: Value = server
        .client
        .get(format!("{}/api/admin/login", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options["sso"]["enabled"], false);
    let response = server
        .client
        .get(format!("{}/auth/oidc/login", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
