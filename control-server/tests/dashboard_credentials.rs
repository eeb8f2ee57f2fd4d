//! Team-credential mode in the dashboard, in headless Chromium against the
//! real server: Settings → Subscriptions (add, see only the hint, rotate,
//! delete), the counting rules, the user page's subscription choice, and
//! the feed's estimated figures and count reasons. Needs Debian's
//! `chromium` and `chromium-driver` (`scripts/test.sh` installs them).

mod common;
mod dashboard_support;

use common::{ADMIN_PASSWORD, TestServer, request_event};
use dashboard_support::Browser;
use serde_json::{Value, json};

/// One Chromium at a time: the machines that run these have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOKEN: &str = "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz";
const ROTATED: &str = "sk-ant-oat01-Hh3jKl9Pq2Rs8Tu4Vw6Xy0Za1Bc7De5Fg-Mn2oP4qR-abcd";

async fn log_in_as_admin(browser: &Browser) {
    browser.open("/dashboard/login").await;
    browser.log_in(None, ADMIN_PASSWORD).await;
    browser.wait_for_overview().await;
}

/// Waits for a notice containing `text`.
async fn notice(browser: &Browser, text: &str) {
    browser
        .wait_until(
            &format!("the notice {text:?}"),
            &format!("return document.getElementById('notices').textContent.includes({text:?})"),
        )
        .await;
}

/// The whole page as the browser holds it: markup, and every field's value.
async fn page_state(browser: &Browser) -> String {
    browser
        .eval(
            "return document.documentElement.outerHTML + [...document.querySelectorAll('input')].map(i => i.value).join(' ')",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// The text of the subscriptions table's row for `name`, once it shows `expected`.
async fn row_showing(browser: &Browser, name: &str, expected: &str) -> String {
    let script = format!(
        "const row = [...document.querySelectorAll('#subscriptions tbody tr')].find(r => r.querySelector('th').textContent === {name:?});
         return row && row.innerText.includes({expected:?}) && row.innerText"
    );
    let text = browser
        .wait_until(&format!("{name} showing {expected}"), &script)
        .await;
    text.as_str().unwrap().to_owned()
}

async fn subscription(server: &TestServer) -> Value {
    let (_, body) = server.admin_get("/api/admin/subscriptions").await;
    body["subscriptions"][0].clone()
}

#[tokio::test]
async fn an_admin_enrols_rotates_assigns_and_deletes_a_subscription() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let (user_id, _) = server.create_user("Ada", json!([])).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;

    // Add: the credential goes in a password field and is never shown again.
    browser.open("/dashboard/settings").await;
    let kind = browser
        .eval("return document.getElementById('subscription-credential').type")
        .await;
    assert_eq!(kind, "password");
    browser.type_into("#subscription-name", "Team Max").await;
    browser.type_into("#subscription-credential", TOKEN).await;
    browser
        .click("#subscription-form button[type=submit]")
        .await;
    let row = row_showing(&browser, "Team Max", "…wxyz").await;
    assert!(
        row.contains("subscription token") && row.contains("v1"),
        "{row}"
    );
    assert!(row.contains("0 people"), "{row}");
    notice(&browser, "Team Max added (credential …wxyz)").await;
    assert!(!page_state(&browser).await.contains(TOKEN));
    let stored = subscription(&server).await;
    assert_eq!(stored["credential_hint"], "wxyz");
    let id = stored["id"].as_i64().unwrap();

    // Rotate: paste a new one; the version moves on.
    browser
        .click(&format!(
            "button[data-action=rotate][data-subscription-id='{id}']"
        ))
        .await;
    let focused = browser.eval("return document.activeElement.id").await;
    assert_eq!(
        focused, "rotate-credential",
        "the focus goes to the new field"
    );
    browser.type_into("#rotate-credential", ROTATED).await;
    browser.click("#rotate-form button[type=submit]").await;
    let row = row_showing(&browser, "Team Max", "v2").await;
    assert!(row.contains("…abcd"), "{row}");
    notice(&browser, "now uses credential …abcd (version 2)").await;
    let focused = browser
        .eval("return document.activeElement.dataset.action ?? document.activeElement.id")
        .await;
    assert_eq!(focused, "rotate", "the focus returns to the row's button");
    let state = page_state(&browser).await;
    assert!(!state.contains(TOKEN) && !state.contains(ROTATED));
    assert_eq!(subscription(&server).await["credential_version"], 2);

    // Counting rules, saved as chosen.
    browser
        .find("#agent-turns")
        .await
        .select_by_value("free")
        .await
        .unwrap();
    browser.type_into("#max-requests-per-turn", "120").await;
    browser.click("#counting-form button[type=submit]").await;
    notice(&browser, "Counting rules saved").await;
    let (_, settings) = server.admin_get("/api/admin/settings").await;
    assert_eq!(settings["settings"]["agent_turns"], "free");
    assert_eq!(
        settings["settings"]["turn_limits"]["max_requests_per_turn"],
        120
    );

    // Agent updates off, saved as chosen.
    let shown = browser
        .eval("return document.querySelector('#auto-update').value")
        .await;
    assert_eq!(shown, "on", "on unless turned off");
    browser
        .find("#auto-update")
        .await
        .select_by_value("off")
        .await
        .unwrap();
    browser.click("#updates-form button[type=submit]").await;
    notice(&browser, "Agent updates saved").await;
    let (_, settings) = server.admin_get("/api/admin/settings").await;
    assert_eq!(settings["settings"]["auto_update"], false);

    // Assign it on the user page, with an agent-turns override.
    browser.open(&format!("/dashboard/users/{user_id}")).await;
    let choices = browser
        .eval("return [...document.querySelectorAll('#user-subscription option')].map(o => o.textContent)")
        .await;
    assert_eq!(
        choices,
        json!([
            "Personal login (their own Claude login)",
            "Team Max (subscription token …abcd)"
        ])
    );
    browser
        .find("#user-subscription")
        .await
        .select_by_value(&id.to_string())
        .await
        .unwrap();
    browser
        .find("#user-agent-turns")
        .await
        .select_by_value("count")
        .await
        .unwrap();
    browser.click("#access-form button[type=submit]").await;
    notice(&browser, "devices learn it within a second").await;
    browser
        .wait_until(
            "the header to name the subscription",
            "return document.querySelector('.page-head .muted').textContent.includes('team credential: Team Max')",
        )
        .await;
    let user = server.user(user_id).await;
    assert_eq!(user["subscription_id"], id);
    assert_eq!(user["agent_turns"], "count");

    // Delete it, after the confirmation: the person is back on their own login.
    browser.open("/dashboard/settings").await;
    row_showing(&browser, "Team Max", "1 person").await;
    browser
        .click(&format!(
            "button[data-action=delete][data-subscription-id='{id}']"
        ))
        .await;
    browser.find("dialog[open]").await;
    let question = browser.text("dialog[open] .dialog__message").await;
    assert!(question.contains("1 person go back"), "{question}");
    browser.click("dialog[open] .button--danger").await;
    browser
        .wait_until(
            "the empty list",
            "return document.getElementById('subscription-list').textContent.includes('No subscription yet')",
        )
        .await;
    assert_eq!(server.user(user_id).await["subscription_id"], Value::Null);
    browser.close().await;
}

#[tokio::test]
async fn the_feed_marks_estimates_in_words_and_says_why_a_prompt_counted() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let (_, token) = server.user_with_proxy("Bea", json!([])).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;
    browser
        .wait_until(
            "the live connection",
            "return document.getElementById('live-status')?.dataset.state === 'live'",
        )
        .await;

    let now = jiff::Timestamp::now().to_string();
    let mut typed = request_event(
        "20000000-0000-4000-8000-000000000001",
        &now,
        "claude-sonnet-4-5",
        "b:1",
        true,
        10,
    );
    typed["count_reason"] = json!("typed_during_turn");
    typed["estimated"] = json!(true);
    typed["usage"]["output_tokens"] = json!(1234);
    let mut cut = request_event(
        "20000000-0000-4000-8000-000000000002",
        &now,
        "claude-sonnet-4-5",
        "b:2",
        false,
        10,
    );
    cut["estimated"] = json!(true);
    cut["kind"] = json!("continuation");
    cut["usage"]["output_tokens"] = json!(56);
    let (status, answer) = server
        .agent(&token, "/events", json!({ "events": [typed, cut] }))
        .await;
    assert_eq!(status, 200, "{answer}");

    let prompt = browser
        .wait_until(
            "the counted prompt",
            "return document.querySelector('#live-feed [data-kind=prompt]')?.textContent",
        )
        .await;
    let prompt = prompt.as_str().unwrap();
    assert!(
        prompt.contains("typed while a turn was running")
            && prompt.contains("≈ 1,234 output tokens (estimated)"),
        "{prompt}"
    );
    let estimate = browser
        .wait_until(
            "the estimated reply",
            "return document.querySelector('#live-feed [data-kind=estimate]')?.textContent",
        )
        .await;
    assert!(
        estimate
            .as_str()
            .unwrap()
            .contains("≈ 56 output tokens (estimated)"),
        "{estimate}"
    );

    // After a reload, from the stored events: the same words.
    browser.open("/dashboard").await;
    let items = browser
        .eval("return [...document.querySelectorAll('#live-feed li')].map(li => li.dataset.kind + ': ' + li.textContent)")
        .await;
    let items = items.to_string();
    assert!(items.contains("typed while a turn was running"), "{items}");
    assert!(items.contains("≈ 56 output tokens (estimated)"), "{items}");
    browser.close().await;
}
