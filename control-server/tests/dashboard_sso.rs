//! Single sign-on in the dashboard, in headless Chromium against the real
//! server and a real OpenID provider (`common::oidc`, Node's
//! `oidc-provider`): the login page offers "Sign in with single sign-on"
//! above the password form; people sign in on the provider's own pages and
//! get the role their groups give. An admin lands where they were going and
//! changes things (adds a person, sees the identities in Settings → Single
//! sign-on); a viewer sees the overview without any control and a change is
//! refused; a member, linked to their person by e-mail, lands on their own
//! page with their usage, their block and its message, sets an alert
//! threshold that stays after a reload, is sent back to their page from
//! every admin page and is refused the admin API; someone the server cannot
//! link is told so. Needs Debian's `chromium` and `chromium-driver`, Node.js
//! and `npm ci --prefix tests/oidc` (scripts/test.sh does both).

mod common;
mod dashboard_support;

use std::time::Duration;

use ccgate_server::sso::OidcConfig;
use common::oidc::{ClientConfig, OidcProvider, ProviderConfig, UserConfig};
use common::{ADMIN_PASSWORD, TestServer, request_event};
use dashboard_support::Browser;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// One Chromium at a time: the machines that run these have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CLIENT_ID: &str = "ccgate-dashboard";
const CLIENT_SECRET: &str = "ccgate-dashboard-secret";
const ADMINS: &str = "ccgate-admins";
const VIEWERS: &str = "ccgate-viewers";
const MEMBERS: &str = "ccgate-members";

/// (login, password, name, group) of the people at the provider.
const ADA: (&str, &str, &str, &str) = ("ada", "ada-password", "Ada Admin", ADMINS);
const VIC: (&str, &str, &str, &str) = ("vic", "vic-password", "Vic Viewer", VIEWERS);
const MEL: (&str, &str, &str, &str) = ("mel", "mel-password", "Mel Member", MEMBERS);
/// A member whose e-mail no person of the team has.
const NED: (&str, &str, &str, &str) = ("ned", "ned-password", "Ned Nobody", MEMBERS);

/// The page has been rendered (every page sets it once its data shows).
const READY: &str = "document.body?.dataset.ready === '1'";

fn email(login: &str) -> String {
    format!("{login}@example.test")
}

fn person((login, password, name, group): (&str, &str, &str, &str)) -> UserConfig {
    UserConfig::new(login, password)
        .with_email(&email(login))
        .with_name(name)
        .with_groups(&[group, "staff"])
}

/// The server, on a listener bound first so the provider knows its
/// callback, and the provider with the four people.
struct Sso {
    server: TestServer,
    provider: OidcProvider,
    _data: tempfile::TempDir,
}

impl Sso {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let redirect = format!("{base}/auth/oidc/callback");
        let provider = OidcProvider::start(ProviderConfig::new(
            vec![ClientConfig::new(CLIENT_ID, CLIENT_SECRET, &redirect)],
            [ADA, VIC, MEL, NED].map(person).to_vec(),
        ))
        .await;
        let data = tempfile::tempdir().unwrap();
        let mut config = common::config(data.path());
        let mut oidc = OidcConfig::new(provider.issuer(), CLIENT_ID, &redirect);
        oidc.client_secret = Some(CLIENT_SECRET.to_owned());
        oidc.scopes = ["openid", "email", "profile", "groups"]
            .map(str::to_owned)
            .to_vec();
        oidc.admin_groups = vec![ADMINS.to_owned()];
        oidc.viewer_groups = vec![VIEWERS.to_owned()];
        oidc.member_groups = vec![MEMBERS.to_owned()];
        config.oidc = Some(oidc);
        let server = TestServer::launch_on(config, listener).await;
        Self {
            server,
            provider,
            _data: data,
        }
    }

    /// A fresh Chromium (no cookies: neither ours nor the provider's).
    async fn browser(&self) -> Browser {
        Browser::start(&self.server.url, 1280, 900).await
    }

    /// Opens `start` (a login page), follows "Sign in with single sign-on"
    /// and signs in on the provider's page as `who`.
    async fn sign_in(&self, browser: &Browser, start: &str, who: (&str, &str, &str, &str)) {
        let (login, password, _, _) = who;
        browser.open(start).await;
        browser.click("#sso-login").await;
        browser
            .wait_until(
                "the provider's sign-in page",
                &format!(
                    "return location.origin === {:?} && !!document.getElementById('login')",
                    self.provider.issuer()
                ),
            )
            .await;
        browser.type_into("#username", login).await;
        browser.type_into("#password", password).await;
        browser.click("#login").await;
    }
}

/// Waits until the browser shows `path`, rendered.
async fn wait_for_page(browser: &Browser, path: &str) {
    browser
        .wait_until(
            &format!("{path}, rendered"),
            &format!("return location.pathname === {path:?} && {READY}"),
        )
        .await;
}

/// The status the server answers to `method path` sent from the page (the
/// session cookie and the page's CSRF token go along).
async fn status_from_page(browser: &Browser, method: &str, path: &str, body: Value) -> u64 {
    let script = format!(
        "const init = {{ method: {method:?}, credentials: 'same-origin',
             headers: {{ 'Content-Type': 'application/json', 'X-CSRF-Token': document.body.dataset.csrf ?? '' }} }};
         if ({method:?} !== 'GET') init.body = JSON.stringify({body});
         return fetch({path:?}, init).then(r => r.status);"
    );
    browser.eval(&script).await.as_u64().unwrap()
}

/// The text of the page's recent alerts once there is one (the page is
/// loaded again until then).
async fn recent_alerts(browser: &Browser) -> String {
    let deadline = tokio::time::Instant::now() + dashboard_support::WAIT;
    loop {
        browser.open("/dashboard/me").await;
        let list = browser
            .eval("const l = document.getElementById('me-alert-list'); return l.tagName === 'OL' ? l.innerText : null")
            .await;
        if let Some(text) = list.as_str() {
            return text.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alert listed: {}",
            browser.text("#me-alerts").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The login page offers single sign-on and keeps the password form; the
/// link comes back to the page asked for.
#[tokio::test]
async fn the_login_page_offers_single_sign_on_above_the_password_form() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let sso = Sso::start().await;
    let (status, login) = sso.server.admin_get("/api/admin/login").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["sso"]["enabled"], true, "{login}");
    let browser = sso.browser().await;

    browser.open("/dashboard/login").await;
    let dir = dashboard_support::screenshot_dir();
    for (suffix, width) in [("desktop", 1280), ("phone", 390)] {
        browser.set_size(width, 900).await;
        browser
            .screenshot(&dir, &format!("login-sso-{suffix}"), width, 900)
            .await;
    }
    browser.set_size(1280, 900).await;
    let shown = browser
        .eval(
            "const link = document.getElementById('sso-login');
             const form = document.querySelector('form.login__form');
             return [link.textContent, link.getAttribute('href'),
                     !!(link.compareDocumentPosition(form) & Node.DOCUMENT_POSITION_FOLLOWING),
                     !!document.getElementById('password'),
                     !!document.getElementById('password-login-note')]",
        )
        .await;
    assert_eq!(
        shown,
        json!([
            "Sign in with single sign-on",
            "/auth/oidc/login",
            true,
            true,
            false
        ])
    );

    // A page asked for goes to the provider and back.
    browser
        .open("/dashboard/login?next=/dashboard/activity")
        .await;
    let href = browser
        .eval("return document.getElementById('sso-login').getAttribute('href')")
        .await;
    assert_eq!(href, "/auth/oidc/login?return_to=%2Fdashboard%2Factivity");

    // Passwords for the built-in admin only: the form stays, and says so.
    let (status, body) = sso
        .server
        .put_settings(json!({ "password_login": "builtin_admin_only" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser.open("/dashboard/login").await;
    let note = browser.text("#password-login-note").await;
    assert_eq!(note, "Password sign-in is for the built-in admin only.");
    // The built-in admin still gets in with the password.
    browser.log_in(None, ADMIN_PASSWORD).await;
    browser.wait_for_overview().await;
    browser.close().await;
}

#[tokio::test]
async fn an_admin_signs_in_through_the_provider_and_changes_things() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let sso = Sso::start().await;
    let browser = sso.browser().await;

    // Asked for Settings: the login page, the provider, back to Settings.
    browser.open("/dashboard/settings").await;
    assert_eq!(
        browser.path().await,
        "/dashboard/login?next=/dashboard/settings"
    );
    sso.sign_in(&browser, "/dashboard/login?next=/dashboard/settings", ADA)
        .await;
    wait_for_page(&browser, "/dashboard/settings").await;
    assert_eq!(
        browser.eval("return document.body.dataset.role").await,
        "admin"
    );

    // Settings → Single sign-on lists the admin's identity with the role
    // their groups give, and the two sign-in settings.
    let contents = browser
        .eval("return !!document.querySelector('nav.contents a[href=\"#sso-title\"]')")
        .await;
    assert_eq!(contents, true, "the contents lead to the card");
    let row = browser
        .wait_until(
            "Ada's identity",
            &format!(
                "const row = [...document.querySelectorAll('#identities-table tbody tr')]
                   .find(r => r.textContent.includes({:?}));
                 return row && [row.innerText, row.cells[3].textContent]",
                email("ada")
            ),
        )
        .await;
    let text = row[0].as_str().unwrap();
    assert!(text.contains("Ada Admin"), "{text}");
    assert!(text.contains(ADMINS), "{text}");
    assert_eq!(row[1], "Admin", "the role her groups give: {text}");
    assert_eq!(
        browser
            .eval("return document.getElementById('sso-link-by-email').checked")
            .await,
        true,
        "linking by e-mail is on by default"
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('password-login').value")
            .await,
        "everyone"
    );

    // The overview, with the controls an admin has.
    browser.open("/dashboard").await;
    assert!(
        browser.text("nav.nav").await.contains("Add user"),
        "an admin may add people"
    );
    assert!(!browser.text(".whoami").await.contains("read-only"));

    // An admin adds a person, with the page's own form.
    browser.open("/dashboard/users/new").await;
    browser.type_into("#new-name", "Grace Hopper").await;
    browser.click("#create-user").await;
    browser.find("#install-code").await;
    let (_, users) = sso.server.admin_get("/api/admin/users").await;
    let grace = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["name"] == "Grace Hopper")
        .cloned()
        .expect("the person was added");

    // Their page: the admin sets the e-mail.
    browser
        .open(&format!("/dashboard/users/{}", grace["id"]))
        .await;
    assert_eq!(
        browser.text("#user-identity").await,
        "No single sign-on identity linked."
    );
    browser.type_into("#user-email", "grace@example.test").await;
    browser.click("#email-form button[type=submit]").await;
    let stored = common::eventually(Duration::from_secs(10), || async {
        let user = sso.server.user(grace["id"].as_i64().unwrap()).await;
        user["email"].as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(stored, "grace@example.test");

    // The sign-in settings are saved through the settings API.
    browser.open("/dashboard/settings").await;
    browser
        .eval(
            "const select = document.getElementById('password-login');
             select.value = 'builtin_admin_only';
             select.dispatchEvent(new Event('change'));
             return true",
        )
        .await;
    browser.click("#sso-form button[type=submit]").await;
    let saved = common::eventually(Duration::from_secs(10), || async {
        let (_, body) = sso.server.admin_get("/api/admin/settings").await;
        (body["settings"]["password_login"] == "builtin_admin_only").then_some(body)
    })
    .await;
    assert_eq!(saved["settings"]["sso_link_by_email"], true, "{saved}");

    let dir = dashboard_support::screenshot_dir();
    browser
        .element_screenshot(&dir, "settings-sso-desktop", 1280, "#sso")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_sees_the_overview_without_controls_and_a_change_is_refused() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let sso = Sso::start().await;
    sso.server.create_user("Bob", json!([])).await;
    let browser = sso.browser().await;

    sso.sign_in(&browser, "/dashboard/login", VIC).await;
    wait_for_page(&browser, "/dashboard").await;
    assert_eq!(
        browser.eval("return document.body.dataset.role").await,
        "viewer"
    );
    assert!(browser.text(".whoami").await.contains("read-only"));
    assert!(browser.text("#user-cards").await.contains("Bob"));
    let add_links = browser
        .eval("return document.querySelectorAll(\"a[href='/dashboard/users/new']\").length")
        .await;
    assert_eq!(add_links, 0, "no way to add people");

    // Settings, Single sign-on included: values, no control.
    browser.open("/dashboard/settings").await;
    browser.find("#identities-table").await;
    let editable = browser
        .eval("return [...document.querySelectorAll('main input:not([disabled]), main select:not([disabled]), main button:not([disabled])')].map(e => e.id || e.outerHTML.slice(0, 60))")
        .await;
    assert_eq!(editable, json!([]), "settings are shown, not editable");

    // A change sent anyway is refused.
    let status = status_from_page(
        &browser,
        "PUT",
        "/api/admin/settings",
        json!({ "team_name": "Taken over" }),
    )
    .await;
    assert_eq!(status, 403);
    let status = status_from_page(
        &browser,
        "POST",
        "/api/admin/users",
        json!({ "name": "Mallory" }),
    )
    .await;
    assert_eq!(status, 403);
    let (_, settings) = sso.server.admin_get("/api/admin/settings").await;
    assert_ne!(settings["settings"]["team_name"], "Taken over");
    browser.close().await;
}

#[tokio::test]
async fn a_member_sees_their_own_page_sets_an_alert_and_nothing_else() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let sso = Sso::start().await;
    let server = &sso.server;

    // Mel's person, with her e-mail (linked at her first sign-in: linking
    // by e-mail is on by default), a limit of one Opus prompt a day and a
    // machine; her second prompt was refused.
    let (status, body) = server
        .post_user(json!({
            "name": MEL.2,
            "email": email("mel"),
            "limits": [{ "type": "per_model", "model": "opus", "window": "daily", "value": 1 }],
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mel_id = body["user"]["id"].as_i64().unwrap();
    let code = body["install_code"].as_str().unwrap().to_owned();
    let (_, token, _) = server.register_proxy(&code, "mel-laptop").await;
    assert!(server.allowed(&token, "s:1", "claude-opus-4-5").await);
    let refused = server.check(&token, "s:2", "claude-opus-4-5").await;
    assert_eq!(refused["allowed"], false, "{refused}");
    let message = refused["message"].as_str().unwrap().to_owned();
    // The refusal is stored (asynchronously) before she looks.
    server
        .wait_for_events(&format!("user_id={mel_id}&type=blocked"))
        .await;
    // Someone else of the team.
    let (other_id, _) = server.create_user("Otto Other", json!([])).await;

    let browser = sso.browser().await;
    sso.sign_in(&browser, "/dashboard/login", MEL).await;
    wait_for_page(&browser, "/dashboard/me").await;
    assert_eq!(
        browser.eval("return document.body.dataset.role").await,
        "member"
    );

    // Her own page: her name, no navigation, a Sign out button.
    assert!(browser.text("#me-name").await.contains(MEL.2));
    let topbar = browser.text("#topbar").await;
    assert!(
        topbar.contains(MEL.2) && topbar.contains("Sign out") && !topbar.contains("null"),
        "{topbar}"
    );
    assert_eq!(
        browser
            .eval("return document.querySelector('nav.nav')")
            .await,
        Value::Null,
        "no navigation to admin pages"
    );
    assert_eq!(browser.text("#logout").await, "Sign out");
    assert!(browser.text(".whoami").await.contains(MEL.2));

    // Her usage against the limit, with when it resets.
    let limits = browser.text("#me-limits").await;
    assert!(limits.contains("Opus"), "{limits}");
    assert!(limits.contains("1 / 1"), "{limits}");
    assert!(limits.contains("resets in"), "{limits}");
    // Her device and her block with the message she got.
    assert!(browser.text("#me-devices").await.contains("mel-laptop"));
    let blocks = browser.text("#me-block-list").await;
    let first_line = message.lines().next().unwrap_or_default();
    assert!(blocks.contains(first_line), "{blocks} has {first_line}");

    // An alert threshold, saved, and still there after a reload.
    browser.type_into("#alert-threshold-1", "75").await;
    browser.click("#me-alerts-form button[type=submit]").await;
    browser
        .wait_until(
            "the saved notice",
            "return document.getElementById('notices').textContent.includes('Your alerts are saved')",
        )
        .await;
    browser.open("/dashboard/me").await;
    assert_eq!(
        browser
            .eval("return document.getElementById('alert-threshold-1').value")
            .await,
        "75"
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('alert-threshold-2').value")
            .await,
        ""
    );

    // Her next counted prompt finds her at 100 % of her Opus limit: her
    // alert fires and is listed on her page.
    let event = request_event(
        "6f1f7c1e-3a43-4c59-9d0b-0a5f1b2c3d4e",
        &jiff::Timestamp::now().to_string(),
        "claude-opus-4-5",
        "s:1",
        true,
        1000,
    );
    let (status, body) = server
        .agent(&token, "/events", json!({ "events": [event] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recent = recent_alerts(&browser).await;
    assert!(recent.contains("100"), "{recent}");
    assert!(
        recent.contains("opus prompts"),
        "the limit named as people read it: {recent}"
    );

    let dir = dashboard_support::screenshot_dir();
    for (suffix, width) in [("desktop", 1280), ("phone", 390)] {
        browser.set_size(width, 900).await;
        browser.open("/dashboard/me").await;
        let sideways = browser
            .eval("return document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert_eq!(sideways, 0, "nothing scrolls sideways at {width} px");
        browser
            .screenshot(&dir, &format!("member-{suffix}"), width, 4000)
            .await;
    }
    browser.set_size(1280, 900).await;

    // Another threshold: both kept.
    browser.type_into("#alert-threshold-2", "90").await;
    browser.click("#me-alerts-form button[type=submit]").await;
    browser
        .wait_until(
            "the second threshold saved",
            "return !document.querySelector('#me-alerts-form button[type=submit]').disabled",
        )
        .await;
    browser.open("/dashboard/me").await;
    let kept = browser
        .eval("return [1, 2, 3].map(n => document.getElementById(`alert-threshold-${n}`).value)")
        .await;
    assert_eq!(kept, json!(["75", "90", ""]));
    // A threshold kept is the same rule: its alert stays listed.
    assert_eq!(recent_alerts(&browser).await, recent);

    // Out of range: refused in the form, nothing changes.
    browser.type_into("#alert-threshold-2", "150").await;
    browser.click("#me-alerts-form button[type=submit]").await;
    let problem = browser
        .wait_until(
            "the refusal",
            "const p = document.querySelector('#me-alerts-form .form__problem'); return p && !p.hidden && p.textContent",
        )
        .await;
    assert!(problem.as_str().unwrap().contains("150"), "{problem}");

    // Admin pages send her back to her own page.
    for path in [
        "/dashboard".to_owned(),
        format!("/dashboard/users/{other_id}"),
        format!("/dashboard/users/{mel_id}"),
        "/dashboard/settings".to_owned(),
        "/dashboard/activity".to_owned(),
        "/dashboard/users/new".to_owned(),
        "/dashboard/login".to_owned(),
    ] {
        browser
            .client
            .goto(&format!("{}{path}", browser.base))
            .await
            .unwrap();
        wait_for_page(&browser, "/dashboard/me").await;
    }
    // The admin API refuses her.
    for path in [
        "/api/admin/users".to_owned(),
        format!("/api/admin/users/{other_id}"),
        "/api/admin/settings".to_owned(),
        "/api/admin/identities".to_owned(),
    ] {
        let status = status_from_page(&browser, "GET", &path, Value::Null).await;
        assert_eq!(status, 403, "{path}");
    }
    let status = status_from_page(
        &browser,
        "PUT",
        &format!("/api/admin/users/{mel_id}"),
        json!({ "limits": [] }),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        server.user(mel_id).await["limits"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "her limit stays"
    );

    // The admin sees her identity linked to her person, and the threshold
    // as her own alert rule.
    let (_, identities) = server.admin_get("/api/admin/identities").await;
    let mel = identities["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|identity| identity["email"] == email("mel"))
        .cloned()
        .expect("Mel's identity");
    assert_eq!(mel["role"], "member", "{mel}");
    assert_eq!(mel["person"]["id"], mel_id, "{mel}");
    let user = server.user(mel_id).await;
    assert_eq!(user["identity"]["id"], mel["id"], "{user}");

    // Sign out: the login page.
    browser.click("#logout").await;
    browser
        .wait_until(
            "the login page",
            &format!("return location.pathname === '/dashboard/login' && {READY}"),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn someone_without_a_person_is_told_so_until_an_admin_links_them_in_settings() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let sso = Sso::start().await;
    let (ned_id, _) = sso.server.create_user("Ned N.", json!([])).await;
    let ned = sso.browser().await;
    sso.sign_in(&ned, "/dashboard/login", NED).await;
    wait_for_page(&ned, "/dashboard/me").await;
    let text = ned.text("#not-linked").await;
    assert!(text.contains("Not linked yet"), "{text}");
    assert!(text.contains("ask an admin"), "{text}");

    // The built-in admin (password) links him in Settings → Single sign-on.
    let admin = sso.browser().await;
    admin.open("/dashboard/login").await;
    admin.log_in(None, ADMIN_PASSWORD).await;
    admin.wait_for_overview().await;
    admin.open("/dashboard/settings").await;
    let row = format!(
        "[...document.querySelectorAll('#identities-table tbody tr')].find(r => r.textContent.includes({:?}))",
        email("ned")
    );
    let cells = admin
        .eval(&format!(
            "const row = {row}; return [row.cells[3].textContent, row.querySelector('[data-field=user_id]').value]"
        ))
        .await;
    assert_eq!(cells, json!(["Member (own page)", ""]));
    admin
        .eval(&format!(
            "const select = {row}.querySelector('[data-field=user_id]');
             select.value = '{ned_id}';
             select.dispatchEvent(new Event('change'));
             return true"
        ))
        .await;
    let linked = common::eventually(Duration::from_secs(10), || async {
        let user = sso.server.user(ned_id).await;
        (!user["identity"].is_null()).then_some(user)
    })
    .await;
    assert_eq!(linked["identity"]["email"], email("ned"), "{linked}");
    admin
        .wait_until(
            "the select showing the person",
            &format!("return {row}?.querySelector('[data-field=user_id]').value === '{ned_id}'"),
        )
        .await;

    // His page now shows his usage.
    ned.open("/dashboard/me").await;
    assert!(ned.text("#me-name").await.contains("Ned N."));

    // A role set by hand wins over his groups.
    admin
        .eval(&format!(
            "const select = {row}.querySelector('[data-field=role_override]');
             select.value = 'viewer';
             select.dispatchEvent(new Event('change'));
             return true"
        ))
        .await;
    let role = common::eventually(Duration::from_secs(10), || async {
        let (_, body) = sso.server.admin_get("/api/admin/identities").await;
        let identity = body["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|identity| identity["email"] == email("ned"))
            .cloned()
            .unwrap();
        (identity["role_override"] == "viewer").then_some(identity)
    })
    .await;
    assert_eq!(role["role"], "viewer", "{role}");
    assert_eq!(role["group_role"], "member", "{role}");
    admin
        .wait_until(
            "the role he signs in with",
            &format!("return {row}?.innerText.includes('Signs in as: Viewer')"),
        )
        .await;

    // Deleted after a confirmation: his session ends.
    admin
        .eval(&format!(
            "{row}.querySelector('button[data-action=delete]').click(); return true"
        ))
        .await;
    let dialog = admin.text("dialog[open]").await;
    assert!(dialog.contains(&email("ned")), "{dialog}");
    admin.click("dialog[open] .button--danger").await;
    admin
        .wait_until(
            "the identity gone from the table",
            &format!("return !{row}"),
        )
        .await;
    ned.client
        .goto(&format!("{}/dashboard/me", ned.base))
        .await
        .unwrap();
    ned.wait_until(
        "the login page",
        &format!("return location.pathname === '/dashboard/login' && {READY}"),
    )
    .await;
    admin.close().await;
    ned.close().await;
}
