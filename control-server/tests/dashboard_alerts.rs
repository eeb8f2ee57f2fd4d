//! Alerts and shares in the dashboard, in headless Chromium against the real
//! server: a Slack channel pointing at a local receiver is added, tested
//! (and a failing one shows its failure), renamed without its secret; a
//! default rule is routed to it and fires when a reading crosses 75 %, and
//! the Activity page shows the alert and its delivery attempts as they
//! happen; the limits editor saves a share rule; a subscription's card
//! shows who used its window and the use outside ccgate, a person's page
//! their share and their own alerts; nothing scrolls sideways at phone
//! width. Needs Debian's `chromium` and `chromium-driver`.

mod common;
mod dashboard_support;

use std::time::Duration;

use common::{ADMIN_PASSWORD, TestServer, eventually, request_event};
use dashboard_support::{Browser, SlackReceiver, WAIT};
use jiff::SignedDuration;
use reqwest::Method;
use serde_json::{Value, json};

/// One Chromium at a time: the machines that run these have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether the top bar says the live feed is connected.
const LIVE: &str = "return document.getElementById('live-status')?.dataset.state === 'live'";
/// How far the page scrolls sideways (0: not at all).
const SIDEWAYS: &str = "return document.documentElement.scrollWidth - window.innerWidth";

const ACCOUNT: &str = "a1e47000-0000-4000-8000-00000000d001";

/// Alerts are checked every 100 ms, and a failed delivery is retried after
/// 20 ms, 40 ms…: a test sees them at once.
async fn start() -> TestServer {
    TestServer::start_with(|config| {
        config.alert_tick = Duration::from_millis(100);
        config.alert_retry = ccgate_alerts::RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(20),
            factor: 2,
            max_delay: Duration::from_millis(100),
        };
    })
    .await
}

async fn log_in_as_admin(browser: &Browser) {
    browser.open("/dashboard/login").await;
    browser.log_in(None, ADMIN_PASSWORD).await;
    browser.wait_for_overview().await;
}

/// A script expression for the list item of the channel named `name`.
fn channel(name: &str) -> String {
    format!(
        "[...document.querySelectorAll('#alert-channels .channel')].find(c => c.querySelector('.channel__name').textContent === {name:?})"
    )
}

/// A script expression for the list item of the rule named `name`.
fn rule(name: &str) -> String {
    format!(
        "[...document.querySelectorAll('#alert-rules .alert-rule')].find(r => r.querySelector('.alert-rule__name')?.textContent === {name:?})"
    )
}

/// Sets a form control the way a person would: the value changes and its event fires.
async fn set_value(browser: &Browser, css: &str, value: &str) {
    let script = format!(
        "const field = document.querySelector({css:?});
         field.value = {value:?};
         field.dispatchEvent(new Event(field.tagName === 'SELECT' ? 'change' : 'input'));
         return field.value;"
    );
    assert_eq!(browser.eval(&script).await, value, "{css}");
}

/// Adds a channel through the form: name, kind Slack, webhook URL.
async fn add_slack_channel(browser: &Browser, name: &str, url: &str) {
    browser.click("#add-channel").await;
    browser.type_into("#channel-name", name).await;
    assert_eq!(
        browser
            .eval("return document.getElementById('channel-kind').value")
            .await,
        "slack"
    );
    let secret_type = browser
        .eval("return document.getElementById('channel-webhook_url').type")
        .await;
    assert_eq!(secret_type, "password", "a secret is typed unseen");
    browser.type_into("#channel-webhook_url", url).await;
    browser.click("#channel-form button[type=submit]").await;
    browser
        .wait_until(
            &format!("the channel {name} in the list"),
            &format!("return !!{}", channel(name)),
        )
        .await;
}

/// Presses the channel's Test button; what its result says, once it says it.
async fn test_channel(browser: &Browser, name: &str) -> (bool, String) {
    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=test]').click(); return true",
            channel(name)
        ))
        .await;
    let result = browser
        .wait_until(
            &format!("the test result of {name}"),
            &format!(
                "const r = {}.querySelector('.test-result');
                 return r && !r.hidden && r.dataset.ok !== undefined && [r.dataset.ok, r.textContent]",
                channel(name)
            ),
        )
        .await;
    (
        result[0] == "true",
        result[1].as_str().unwrap_or_default().to_owned(),
    )
}

async fn channels(server: &TestServer) -> Vec<Value> {
    let (_, body) = server.admin_get("/api/admin/alerts/channels").await;
    body["channels"].as_array().unwrap().clone()
}

async fn rules(server: &TestServer) -> Vec<Value> {
    let (_, body) = server.admin_get("/api/admin/alerts/rules").await;
    body["rules"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_admin_adds_tests_and_renames_a_slack_channel_without_retyping_its_secret() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = start().await;
    let (receiver, url) = SlackReceiver::start(0).await;
    let (broken, broken_url) = SlackReceiver::start(u32::MAX).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;

    // Settings has the alerts, and the page's contents lead there.
    browser.open("/dashboard/settings").await;
    let link = browser
        .eval("return document.querySelector('nav.contents a[href=\"#alerts\"]')?.textContent")
        .await;
    assert_eq!(link, "Alerts");
    let defaults = browser
        .eval("return document.querySelectorAll('#alert-rules .alert-rule').length")
        .await;
    assert_eq!(defaults, 15, "every team starts with the default rules");
    assert!(
        browser
            .text("#alert-channels-title")
            .await
            .contains("Channels")
    );

    // The kind select shows only that kind's settings.
    browser.click("#add-channel").await;
    set_value(&browser, "#channel-kind", "email").await;
    let email_fields = browser
        .eval("return [...document.querySelectorAll('#channel-settings input, #channel-settings select, #channel-settings textarea')].map(e => e.id)")
        .await;
    assert_eq!(
        email_fields,
        json!([
            "channel-host",
            "channel-port",
            "channel-security",
            "channel-username",
            "channel-password",
            "channel-from",
            "channel-to"
        ])
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('channel-password').type")
            .await,
        "password"
    );
    set_value(&browser, "#channel-kind", "slack").await;
    // A bad setting is refused with the server's reason, in the form.
    browser.type_into("#channel-name", "Outside").await;
    browser
        .type_into("#channel-webhook_url", "http://hooks.example.com/x")
        .await;
    browser.click("#channel-form button[type=submit]").await;
    let problem = browser
        .wait_until(
            "the refusal",
            "const p = document.querySelector('#channel-form .form__problem'); return p && !p.hidden && p.textContent",
        )
        .await;
    assert!(
        problem
            .as_str()
            .unwrap()
            .contains("must be an https:// URL"),
        "{problem}"
    );
    browser
        .click("#channel-form .form__actions .button:not([type=submit])")
        .await;
    assert!(channels(&server).await.is_empty());

    // A channel that works: its Test button says it was delivered.
    add_slack_channel(&browser, "Team chat", &url).await;
    let target = browser
        .eval(&format!(
            "return {}.querySelector('.channel__target').textContent",
            channel("Team chat")
        ))
        .await;
    assert_eq!(
        target, "delivers to 127.0.0.1",
        "where it goes, not the secret"
    );
    assert!(
        !browser.text("main").await.contains("T000/B000"),
        "the webhook URL is never shown again"
    );
    let (ok, text) = test_channel(&browser, "Team chat").await;
    assert!(ok, "{text}");
    assert!(
        text.starts_with("✓ Test delivered: attempt 1/1: delivered (status 200)"),
        "{text}"
    );
    assert_eq!(receiver.texts().len(), 1);
    assert!(
        receiver.texts()[0].contains("Test alert from ccgate"),
        "{:?}",
        receiver.texts()
    );

    // One that fails says so, with the reason.
    add_slack_channel(&browser, "Broken hook", &broken_url).await;
    let (ok, text) = test_channel(&browser, "Broken hook").await;
    assert!(!ok, "{text}");
    assert!(
        text.starts_with("✕ Test failed: attempt 1/1: failed:"),
        "{text}"
    );
    assert!(text.contains("500"), "{text}");
    assert!(broken.texts().is_empty());
    let marked = browser
        .eval(&format!(
            "return getComputedStyle({}.querySelector('.test-result')).borderLeftStyle",
            channel("Broken hook")
        ))
        .await;
    assert_eq!(marked, "solid", "a failure is marked by more than colour");

    // Renamed without typing the secret again: the secret stays.
    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=edit]').click(); return true",
            channel("Team chat")
        ))
        .await;
    let edit = browser
        .eval("const f = document.getElementById('channel-webhook_url'); return [f.value, f.type, f.placeholder, !!document.getElementById('channel-kind')?.isConnected]")
        .await;
    assert_eq!(
        edit,
        json!(["", "password", "stored (unchanged)", false]),
        "the secret is not sent to the page; the kind stays"
    );
    browser.type_into("#channel-name", "Ops chat").await;
    browser.click("#channel-form button[type=submit]").await;
    browser
        .wait_until(
            "the renamed channel",
            &format!("return !!{}", channel("Ops chat")),
        )
        .await;
    let stored = channels(&server).await;
    let ops = stored.iter().find(|c| c["name"] == "Ops chat").unwrap();
    assert_eq!(ops["config"]["webhook_url"], "••••");
    let (ok, text) = test_channel(&browser, "Ops chat").await;
    assert!(ok, "the stored URL still works: {text}");
    assert_eq!(receiver.texts().len(), 2);

    // Deleting asks first.
    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=delete]').click(); return true",
            channel("Broken hook")
        ))
        .await;
    let dialog = browser.text("dialog[open]").await;
    assert!(
        dialog.contains("Delete the channel “Broken hook”?"),
        "{dialog}"
    );
    browser.click("dialog[open] .button--danger").await;
    browser
        .wait_until(
            "the channel to leave the list",
            &format!("return !{}", channel("Broken hook")),
        )
        .await;
    assert_eq!(channels(&server).await.len(), 1);
    browser.close().await;
}

/// A kind of channel, the settings typed into its form (field id, value)
/// and the config the API then shows.
type KindCase = (&'static str, &'static [(&'static str, &'static str)], Value);

/// Fills in the channel form's settings: `(field id, value)`, typed into
/// inputs and textareas or chosen in selects.
async fn fill_settings(browser: &Browser, settings: &[(&str, &str)]) {
    for (id, value) in settings {
        let tag = browser
            .eval(&format!("return document.getElementById('{id}').tagName"))
            .await;
        if tag == "SELECT" {
            set_value(browser, &format!("#{id}"), value).await;
        } else {
            browser.type_into(&format!("#{id}"), value).await;
        }
    }
}

#[tokio::test]
async fn each_kind_of_channel_is_saved_in_the_shape_the_api_takes() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = start().await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;
    browser.open("/dashboard/settings#alerts").await;

    let kinds: [KindCase; 6] = [
        (
            "discord",
            &[(
                "channel-webhook_url",
                "https://discord.com/api/webhooks/1/abc",
            )],
            json!({ "kind": "discord", "webhook_url": "••••" }),
        ),
        (
            "pushover",
            &[("channel-token", "app-token"), ("channel-user", "user-key")],
            json!({ "kind": "pushover", "token": "••••", "user": "••••", "api_url": "https://api.pushover.net/1/messages.json" }),
        ),
        (
            "matrix",
            &[
                ("channel-homeserver", "https://matrix.example.org"),
                ("channel-access_token", "syt_secret"),
                ("channel-room_id", "!room:example.org"),
            ],
            json!({ "kind": "matrix", "homeserver": "https://matrix.example.org", "access_token": "••••", "room_id": "!room:example.org" }),
        ),
        (
            "ntfy",
            &[("channel-topic", "team-alerts")],
            json!({ "kind": "ntfy", "server": "https://ntfy.sh", "topic": "team-alerts", "token": null }),
        ),
        (
            "email",
            &[
                ("channel-host", "smtp.example.org"),
                ("channel-port", "465"),
                ("channel-security", "tls"),
                ("channel-username", "alerts"),
                ("channel-password", "mail password"),
                ("channel-from", "ccgate <alerts@example.org>"),
                ("channel-to", "ann@example.org\nbob@example.org"),
            ],
            json!({ "kind": "email", "host": "smtp.example.org", "port": 465, "security": "tls",
                    "username": "alerts", "password": "••••", "from": "ccgate <alerts@example.org>",
                    "to": ["ann@example.org", "bob@example.org"] }),
        ),
        (
            "webhook",
            &[
                ("channel-url", "https://example.org/hook"),
                ("channel-method", "PUT"),
                ("channel-body_template", r#"{"text": "{title}: {message}"}"#),
            ],
            json!({ "kind": "webhook", "url": "••••", "method": "PUT",
                    "headers": { "Authorization": "••••" }, "body_template": r#"{"text": "{title}: {message}"}"# }),
        ),
    ];
    for (kind, settings, expected) in kinds {
        browser.click("#add-channel").await;
        browser
            .type_into("#channel-name", &format!("My {kind}"))
            .await;
        set_value(&browser, "#channel-kind", kind).await;
        fill_settings(&browser, settings).await;
        if kind == "webhook" {
            browser.click("#channel-add-header").await;
            browser
                .type_into(".header-row input[type=text]", "Authorization")
                .await;
            browser
                .type_into(".header-row input[type=password]", "Bearer s3cret")
                .await;
        }
        browser.click("#channel-form button[type=submit]").await;
        browser
            .wait_until(
                &format!("the {kind} channel in the list"),
                &format!("return !!{}", channel(&format!("My {kind}"))),
            )
            .await;
        let stored = channels(&server).await;
        let saved = stored
            .iter()
            .find(|c| c["name"] == format!("My {kind}").as_str())
            .unwrap();
        assert_eq!(saved["config"], expected, "{kind}");
    }

    // The webhook renamed: its URL and header value are kept though not retyped.
    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=edit]').click(); return true",
            channel("My webhook")
        ))
        .await;
    let header = browser
        .eval("const r = document.querySelector('.header-row'); return [r.querySelector('input[type=text]').value, r.querySelector('input[type=password]').value, r.querySelector('input[type=password]').placeholder]")
        .await;
    assert_eq!(header, json!(["Authorization", "", "stored (unchanged)"]));
    browser.type_into("#channel-name", "Our webhook").await;
    browser.click("#channel-form button[type=submit]").await;
    browser
        .wait_until(
            "the renamed webhook",
            &format!("return !!{}", channel("Our webhook")),
        )
        .await;
    let stored = channels(&server).await;
    let renamed = stored.iter().find(|c| c["name"] == "Our webhook").unwrap();
    assert_eq!(
        renamed["config"]["headers"],
        json!({ "Authorization": "••••" })
    );
    assert_eq!(renamed["config"]["method"], "PUT");
    browser.close().await;
}

/// Reports the subscription's 5-hour window at `percent`, as a device
/// whose request's reply carried the headers.
async fn report(server: &TestServer, token: &str, n: u32, percent: f64) {
    let now = server.clock.now();
    let id = format!("94000000-0000-4000-8000-{n:012}");
    let mut event = request_event(&id, &now.to_string(), "claude-sonnet-4-5", "t", false, 10);
    event["account"] = json!(ACCOUNT);
    event["utilization"] = json!({
        "observed_at": now,
        "windows": { "5h": { "utilization": percent / 100.0, "resets_at": now + SignedDuration::from_hours(3) } },
    });
    let (status, body) = server
        .agent(token, "/events", json!({ "events": [event] }))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_rule_routed_to_a_channel_fires_and_the_activity_page_shows_it_and_its_deliveries_live() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = start().await;
    // The receiver fails the first post: the first attempt fails, the retry gets through.
    let (receiver, url) = SlackReceiver::start(1).await;
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/channels",
            Some(json!({ "name": "Team chat", "config": { "kind": "slack", "webhook_url": url } })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let channel_id = body["channel"]["id"].as_i64().unwrap();
    let (_, token) = server.user_with_proxy("Ann", json!([])).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;

    // The default 75 % rule is sent to the channel, with a quiet time of 1 hour.
    browser.open("/dashboard/settings#alerts").await;
    let at_75 = "5-hour window at 75 %";
    let sentence = browser
        .eval(&format!(
            "return {}.querySelector('.alert-rule__condition').textContent",
            rule(at_75)
        ))
        .await;
    assert_eq!(
        sentence,
        "When a subscription’s 5-hour window reaches 75\u{a0}%"
    );
    let details = browser
        .eval(&format!(
            "return {}.querySelector('.alert-rule__details').textContent",
            rule(at_75)
        ))
        .await;
    assert_eq!(
        details,
        "→ No channel: listed on the Activity page only · at most once every 4 h"
    );
    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=edit]').click(); return true",
            rule(at_75)
        ))
        .await;
    browser.find("#rule-form").await;
    assert_eq!(
        browser
            .eval("return [document.getElementById('rule-window').value, document.getElementById('rule-threshold').value, document.getElementById('rule-cooldown').value]")
            .await,
        json!(["five_hour", "75", "4"])
    );
    browser.click(&format!("#rule-channel-{channel_id}")).await;
    browser.type_into("#rule-cooldown", "1").await;
    browser.click("#rule-form button[type=submit]").await;
    browser
        .wait_until(
            "the rule to say where it sends",
            &format!(
                "return {}?.querySelector('.alert-rule__details')?.textContent === '→ Team chat · at most once every 1 h'",
                rule(at_75)
            ),
        )
        .await;
    let stored = rules(&server).await;
    let routed = stored.iter().find(|r| r["name"] == at_75).unwrap();
    assert_eq!(routed["channels"], json!([channel_id]));
    assert_eq!(routed["cooldown_secs"], 3600);
    assert_eq!(routed["condition"]["threshold"], 75.0);

    // A threshold the server refuses shows at the field before it is sent.
    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=edit]').click(); return true",
            rule("5-hour window at 90 %")
        ))
        .await;
    browser.type_into("#rule-threshold", "0").await;
    browser
        .wait_until(
            "the field's problem",
            "return document.getElementById('rule-threshold').hasAttribute('aria-invalid')",
        )
        .await;
    browser
        .click("#rule-form .form__actions .button:not([type=submit])")
        .await;

    // The 90 % rule is switched off at once with its switch.
    let switch = format!(
        "{}.querySelector('button[role=switch]')",
        rule("5-hour window at 90 %")
    );
    assert_eq!(
        browser
            .eval(&format!(
                "return [{switch}.getAttribute('aria-checked'), {switch}.textContent]"
            ))
            .await,
        json!(["true", "On"])
    );
    browser
        .eval(&format!("{switch}.click(); return true"))
        .await;
    browser
        .wait_until(
            "the switch to say off",
            &format!("return {switch}.getAttribute('aria-checked') === 'false' && {switch}.textContent === 'Off'"),
        )
        .await;
    let off = rules(&server).await;
    assert_eq!(
        off.iter()
            .find(|r| r["name"] == "5-hour window at 90 %")
            .unwrap()["enabled"],
        false
    );

    // The Activity page is open when the reading crosses 75 %.
    browser.open("/dashboard/activity").await;
    browser.wait_until("the live connection", LIVE).await;
    browser.eval("window.notReloaded = true; return true").await;
    server.clock.advance(SignedDuration::from_mins(5));
    report(&server, &token, 1, 50.0).await;
    let posted_at = std::time::Instant::now();
    report(&server, &token, 2, 92.0).await;
    let alert = "[...document.querySelectorAll('#alert-list .alert-item')].find(a => a.textContent.includes('5-hour window at 92 %'))";
    browser
        .wait_until(
            "the alert and its delivery after a failed attempt",
            &format!(
                "const a = {alert}; return a && a.querySelectorAll('.delivery--failed').length === 1 && a.querySelectorAll('.delivery--ok').length === 1"
            ),
        )
        .await;
    eprintln!(
        "the alert and its deliveries showed {:?} after the reading was posted",
        posted_at.elapsed()
    );
    let shown = browser
        .eval(&format!(
            "const a = {alert};
             return [a.dataset.severity, a.querySelector('.severity').textContent,
                     [...a.querySelectorAll('.delivery')].map(d => d.textContent)]"
        ))
        .await;
    assert_eq!(shown[0], "warning");
    assert_eq!(shown[1], "▲Warning", "the severity in words and an icon");
    let lines = shown[2].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{shown}");
    let failed = lines[0].as_str().unwrap();
    assert!(
        failed.starts_with("✕Failed to Team chat (attempt 1): attempt 1/3: failed:")
            && failed.contains("500"),
        "{failed}"
    );
    assert!(
        lines[1].as_str().unwrap().starts_with(
            "✓Delivered to Team chat (attempt 2): attempt 2/3: delivered (status 200)"
        ),
        "{shown}"
    );
    // The 90 % rule is off: it raised nothing; the channel got one message.
    let texts = browser.text("#alert-list").await;
    assert!(!texts.contains("(alert at 90 %)"), "{texts}");
    assert!(texts.contains("(alert at 75 %)"), "{texts}");
    assert_eq!(receiver.texts().len(), 1, "{:?}", receiver.texts());
    assert_eq!(
        browser.eval("return window.notReloaded === true").await,
        true
    );

    // After a reload the same alert is listed from the log, with both attempts.
    browser.open("/dashboard/activity").await;
    let again = browser
        .eval(&format!(
            "const a = {alert}; return a && [...a.querySelectorAll('.delivery')].map(d => d.dataset.ok)"
        ))
        .await;
    assert_eq!(again, json!(["false", "true"]));
    // The audit log names the changes.
    let audit = browser.text("#audit-rows").await;
    assert!(audit.contains("Alert rule changed"), "{audit}");
    browser.close().await;
}

/// Ann's and Bob's Sonnet requests through the same account, each reply
/// carrying the 5-hour window: Ann's cost 2 points, Bob's 1, and once the
/// window jumps 8 points with no request behind it.
async fn seed_shares(server: &TestServer) -> (i64, i64) {
    let (ann, ann_token) = server
        .user_with_proxy(
            "Ann",
            json!([{ "type": "share", "window": "five_hour", "value": 40 }]),
        )
        .await;
    let (bob, bob_token) = server.user_with_proxy("Bob", json!([])).await;
    server.clock.advance(SignedDuration::from_mins(45));
    let now = server.clock.now();
    let start = now - SignedDuration::from_mins(40);
    let resets = now + SignedDuration::from_hours(3);
    let mut used = 0.0_f64;
    let mut n = 0u32;
    for round in 0..10 {
        for (token, output, cost) in [(&ann_token, 40_000, 0.02), (&bob_token, 20_000, 0.01)] {
            n += 1;
            used += cost;
            if round == 5 && cost > 0.015 {
                used += 0.08;
            }
            let at = start + SignedDuration::from_secs(i64::from(n) * 60);
            let id = format!("95000000-0000-4000-8000-{n:012}");
            let mut event = request_event(
                &id,
                &at.to_string(),
                "claude-sonnet-4-5",
                &format!("t{n}"),
                false,
                0,
            );
            event["usage"]["output_tokens"] = json!(output);
            event["account"] = json!(ACCOUNT);
            event["utilization"] = json!({
                "observed_at": at + SignedDuration::from_secs(30),
                "windows": { "5h": { "utilization": (used * 100.0).round() / 100.0, "resets_at": resets } },
            });
            let (status, body) = server
                .agent(token, "/events", json!({ "events": [event] }))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }
    (ann, bob)
}

/// The subscription's 5-hour window as the API attributes it, once both
/// people and the unexplained jump are in it.
async fn attributed(server: &TestServer) -> Value {
    eventually(Duration::from_secs(20), || async {
        let (_, body) = server.admin_get("/api/admin/subscriptions").await;
        let window = body["subscriptions"][0]["windows"]
            .as_array()?
            .iter()
            .find(|w| w["window"] == "five_hour")?
            .clone();
        let people = window["people"].as_array()?.len();
        (people == 2 && window["unattributed"].as_f64()? > 0.02).then_some(window)
    })
    .await
}

fn percent_text(fraction: f64) -> String {
    let percent = fraction * 100.0;
    if percent > 0.0 && percent < 0.5 {
        return "under 1 %".to_owned();
    }
    format!("{} %", (percent.round() as i64).min(99))
}

#[tokio::test]
async fn a_card_shows_who_used_the_window_and_a_person_page_their_share_and_own_alerts() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = start().await;
    let (ann, _) = seed_shares(&server).await;
    let window = attributed(&server).await;
    let people = window["people"].as_array().unwrap();
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;

    // The card: each person's share in words with a bar, biggest first, and
    // the use outside ccgate apart.
    let lines = browser
        .wait_until(
            "the shares on the card",
            "const w = document.querySelector('#subscription-cards .shares__window[data-window=five_hour]');
             return w && [...w.querySelectorAll('.share')].map(s => [s.className, s.querySelector('.share__text').textContent, !!s.querySelector('[role=meter]')])",
        )
        .await;
    let lines = lines.as_array().unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, person) in lines.iter().zip(people) {
        let expected = format!(
            "{}: {} of this 5-hour window",
            person["name"].as_str().unwrap(),
            percent_text(person["share"].as_f64().unwrap())
        );
        assert_eq!(line[1], expected.as_str(), "{lines:?}");
        assert_eq!(line[2], true, "a bar as well as words");
    }
    assert_eq!(people[0]["name"], "Ann", "{window}");
    assert_eq!(lines[2][0], "share share--outside");
    let outside = format!(
        "◌ Unattributed use (outside ccgate): {}",
        percent_text(window["unattributed"].as_f64().unwrap())
    );
    assert_eq!(lines[2][1], outside.as_str());
    let note = browser.text("#subscription-cards .shares__note").await;
    assert!(note.starts_with("Estimates:"), "{note}");

    // Ann's page: her share in a sentence, and her share rule used against its limit.
    let user = server.user(ann).await;
    let share_bp = user["window_shares"][0]["used_bp"].as_u64().unwrap();
    browser.open(&format!("/dashboard/users/{ann}")).await;
    let sentence = browser.text("#person-shares").await;
    assert!(
        sentence.contains(&format!(
            "{} of this 5-hour window",
            percent_text(share_bp as f64 / 10_000.0)
        )),
        "{sentence}"
    );
    let meter = browser
        .eval(
            "const m = [...document.querySelectorAll('.user-now__limits .meter')].find(m => m.querySelector('.meter__label').textContent.startsWith('Share of'));
             return m && [m.querySelector('.meter__label').textContent, m.querySelector('.meter__amount').textContent]",
        )
        .await;
    assert_eq!(
        meter[0], "Share of the subscription’s 5-hour window",
        "{meter}"
    );
    assert_eq!(
        meter[1],
        format!("{} / 40 %", percent_text(share_bp as f64 / 10_000.0)).as_str()
    );

    // The admin subscribes Ann to alerts about her own limits, to her channel.
    let (_, url) = SlackReceiver::start(0).await;
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/channels",
            Some(json!({ "name": "Ann's DMs", "config": { "kind": "slack", "webhook_url": url } })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    browser.open(&format!("/dashboard/users/{ann}")).await;
    assert_eq!(
        browser.text("#person-alerts").await,
        "Ann gets no alerts of their own."
    );
    browser.type_into("#person-alert-threshold", "70").await;
    browser
        .click("#person-alert-form button[type=submit]")
        .await;
    browser
        .wait_until(
            "Ann's own alert in the list",
            "return document.querySelector('#person-alerts .alert-rule__condition')?.textContent === 'When Ann reaches 70\\u00a0% of one of their limits'",
        )
        .await;
    let own: Vec<Value> = rules(&server)
        .await
        .into_iter()
        .filter(|r| r["owner_user_id"] == ann)
        .collect();
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(
        own[0]["condition"],
        json!({ "type": "limit_share", "threshold": 70.0, "user_id": ann })
    );
    assert_eq!(own[0]["channels"].as_array().unwrap().len(), 1);
    browser.close().await;
}

#[tokio::test]
async fn the_limits_editor_saves_a_share_rule_and_previews_it() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = start().await;
    let (user_id, _) = server.create_user("Cy", json!([])).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;
    browser.open(&format!("/dashboard/users/{user_id}")).await;

    browser.click("#add-limit").await;
    set_value(
        &browser,
        "fieldset.rule:nth-of-type(1) [name=type]",
        "share",
    )
    .await;
    let fields = browser
        .eval("return [...document.querySelectorAll('fieldset.rule:nth-of-type(1) .field')].map(f => [f.querySelector('[name]').name, f.querySelector('label').textContent])")
        .await;
    assert_eq!(
        fields,
        json!([
            ["type", "Type"],
            ["window", "Window"],
            ["value", "At most (%)"]
        ])
    );
    let windows = browser
        .eval("return [...document.querySelectorAll('fieldset.rule:nth-of-type(1) [name=window] option')].map(o => o.textContent)")
        .await;
    assert_eq!(windows, json!(["5-hour window", "weekly window"]));
    // Over 100 % is a mistake shown at the field.
    set_value(&browser, "fieldset.rule:nth-of-type(1) [name=value]", "150").await;
    assert_eq!(
        browser
            .eval("return document.getElementById('save-limits').disabled")
            .await,
        true
    );
    set_value(
        &browser,
        "fieldset.rule:nth-of-type(1) [name=window]",
        "seven_day",
    )
    .await;
    set_value(&browser, "fieldset.rule:nth-of-type(1) [name=value]", "30").await;
    assert_eq!(
        browser
            .text("fieldset.rule:nth-of-type(1) .rule__summary")
            .await,
        "At most 30 % of the subscription’s weekly window"
    );
    let preview = browser
        .wait_until(
            "the share in the preview",
            "return document.querySelector('#preview-shares .meter')?.textContent",
        )
        .await;
    let preview = preview.as_str().unwrap();
    assert!(
        preview.contains("Share of the subscription’s weekly window")
            && preview.contains("no estimate yet · limit 30 %"),
        "{preview}"
    );
    browser.click("#save-limits").await;
    let saved = eventually(WAIT, || async {
        let user = server.user(user_id).await;
        let limits = user["limits"].as_array()?.clone();
        (!limits.is_empty()).then_some(limits)
    })
    .await;
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["type"], "share");
    assert_eq!(saved[0]["window"], "seven_day");
    assert_eq!(saved[0]["value"], 30);
    // The page shows it among the limits now.
    browser
        .wait_until(
            "the share rule among the limits now",
            "return document.querySelector('.user-now__limits')?.textContent.includes('Share of the subscription’s weekly window')",
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn at_phone_width_the_alerts_fit_without_sideways_scrolling() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = start().await;
    let (_, url) = SlackReceiver::start(0).await;
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/channels",
            Some(json!({ "name": "A channel with a rather long name for a phone", "config": { "kind": "slack", "webhook_url": url } })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, token) = server.user_with_proxy("Ann", json!([])).await;
    server.clock.advance(SignedDuration::from_mins(5));
    report(&server, &token, 1, 80.0).await;
    eventually(WAIT, || async {
        let (_, log) = server.admin_get("/api/admin/alerts/log").await;
        (!log["alerts"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    browser.set_size(390, 844).await;
    log_in_as_admin(&browser).await;
    assert_eq!(browser.eval("return window.innerWidth").await, 390);

    browser.open("/dashboard/settings#alerts").await;
    assert_eq!(browser.eval(SIDEWAYS).await, 0, "the alerts as listed");
    // The widest forms: a webhook with a header, and a rule being edited.
    browser.click("#add-channel").await;
    set_value(&browser, "#channel-kind", "webhook").await;
    browser.click("#channel-add-header").await;
    assert_eq!(browser.eval(SIDEWAYS).await, 0, "the channel form");
    let (ok, _) = test_channel(&browser, "A channel with a rather long name for a phone").await;
    assert!(ok);
    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=edit]').click(); return true",
            rule("Device silent for 24 hours")
        ))
        .await;
    browser.find("#rule-form").await;
    assert_eq!(browser.eval(SIDEWAYS).await, 0, "the rule form");
    let inside = browser
        .eval(
            "return [...document.querySelectorAll('#alerts input, #alerts select, #alerts button, #alerts textarea')]
               .filter(e => e.offsetParent !== null)
               .every(e => e.getBoundingClientRect().right <= window.innerWidth)",
        )
        .await;
    assert_eq!(inside, true, "every control fits the screen");

    browser.open("/dashboard/activity").await;
    browser.find("#alert-list .alert-item").await;
    assert_eq!(browser.eval(SIDEWAYS).await, 0, "the activity's alerts");
    browser.close().await;
}
