//! The dashboard in a real browser: headless Chromium over WebDriver
//! against the real server in-process on 127.0.0.1 with a temp data dir.
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test.sh`
//! installs them); without them these tests fail and say so.

mod common;
mod dashboard_support;

use common::{ADMIN_PASSWORD, TestServer, expect_status, request_event, send};
use dashboard_support::{Browser, SlackReceiver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// One Chromium at a time: the machines that run these have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Sets a field of the limits editor's `rule`-th limit (1-based) the way a
/// person would: the value changes and the field's own event fires.
async fn set_rule_field(browser: &Browser, rule: usize, name: &str, value: &str) {
    let script = format!(
        "const field = document.querySelector('fieldset.rule:nth-of-type({rule}) [name={name}]');
         field.value = '{value}';
         field.dispatchEvent(new Event(field.tagName === 'SELECT' ? 'change' : 'input'));
         return field.value;"
    );
    assert_eq!(browser.eval(&script).await, value, "limit {rule}, {name}");
}

/// Opens the login page and logs the built-in admin in: the overview shows.
async fn log_in_as_admin(browser: &Browser) {
    browser.open("/dashboard/login").await;
    browser.log_in(None, ADMIN_PASSWORD).await;
    browser.wait_for_overview().await;
}

/// Whether the top bar says the live feed is connected.
const LIVE: &str = "return document.getElementById('live-status')?.dataset.state === 'live'";

/// Whether the limits editor's save button is disabled.
const SAVE_DISABLED: &str = "return document.getElementById('save-limits').disabled";

/// Posts `body` to the agent API's `/events` as the device `token`; it must be taken.
async fn post_events(server: &TestServer, token: &str, body: Value) {
    let (status, answer) = server.agent(token, "/events", body).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let browser = Browser::start(&server.url, 1280, 900).await;

    browser.open("/dashboard").await;
    assert_eq!(browser.path().await, "/dashboard/login?next=/dashboard");
    browser.log_in(None, "not the password").await;
    let problem = browser
        .wait_until(
            "the login to be refused",
            "const p = document.getElementById('login-problem'); return p && !p.hidden && p.textContent",
        )
        .await;
    assert_eq!(problem, "Wrong username or password.");
    assert_eq!(browser.path().await, "/dashboard/login?next=/dashboard");
    let cookies = browser.eval("return document.cookie").await;
    assert_eq!(cookies, "", "no cookie a script could read");

    browser.log_in(None, ADMIN_PASSWORD).await;
    browser.wait_for_overview().await;
    browser.close().await;
}

#[tokio::test]
async fn an_admin_adds_a_user_edits_limits_watches_the_feed_and_kills() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;

    // Add a user with the "light" preset and read the install code.
    browser.click("a[href='/dashboard/users/new']").await;
    browser.wait_ready().await;
    browser.type_into("#new-name", "Ada Lovelace").await;
    browser.click("input[name=preset][value=light]").await;
    browser.click("#create-user").await;
    let command = browser
        .wait_until(
            "the setup command",
            "return document.querySelector('#install-code .copy__field')?.value",
        )
        .await;
    let command = command.as_str().unwrap().to_owned();
    let code = browser.text(".install-code__code").await;
    assert!(code.starts_with("CCG-"), "{code}");
    assert_eq!(
        command,
        format!(
            "curl -fsSL {}/install.sh | sudo sh -s -- --code {code}",
            server.url
        )
    );
    let (_, users) = server.admin_get("/api/admin/users").await;
    let user = &users["users"][0];
    assert_eq!(user["name"], "Ada Lovelace");
    let user_id = user["id"].as_i64().unwrap();
    let daily_opus = user["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "per_model" && r["model"] == "opus")
        .unwrap();
    assert_eq!(
        daily_opus["value"], 3,
        "the light preset allows 3 opus prompts a day"
    );

    // Edit limits: opus forbidden; the preview shows the block message.
    browser.click("#open-new-user").await;
    browser.wait_ready().await;
    let opus_value = "fieldset.rule:nth-of-type(2) input[name=value]";
    browser.type_into(opus_value, "0").await;
    let message = browser
        .wait_until(
            "the preview of the block message",
            "return document.querySelector('#limits-preview .block-message__text')?.textContent",
        )
        .await;
    assert!(
        message.as_str().unwrap().to_lowercase().contains("opus"),
        "{message}"
    );
    let blocked = browser
        .eval("return document.querySelector('#limits-preview [data-family=opus]').className")
        .await;
    assert!(blocked.as_str().unwrap().contains("blocked"), "{blocked}");
    // A mistake is shown at the field and keeps the limits from being saved.
    browser.type_into(opus_value, "-5").await;
    browser
        .wait_until(
            "the field's problem",
            &format!("return document.querySelector('{opus_value}').hasAttribute('aria-invalid')"),
        )
        .await;
    assert_eq!(browser.eval(SAVE_DISABLED).await, true);
    browser.type_into(opus_value, "0").await;
    // Rules of the other types: a weekly output-token budget and a
    // time-of-day rule are added, the haiku cap is removed.
    browser.click("#add-limit").await;
    set_rule_field(&browser, 5, "type", "tokens").await;
    set_rule_field(&browser, 5, "model", "").await;
    set_rule_field(&browser, 5, "kind", "output").await;
    set_rule_field(&browser, 5, "window", "weekly").await;
    set_rule_field(&browser, 5, "value", "50000").await;
    browser.click("#add-limit").await;
    set_rule_field(&browser, 6, "type", "time_of_day").await;
    set_rule_field(&browser, 6, "schedule_start", "20:00").await;
    set_rule_field(&browser, 6, "schedule_end", "06:30").await;
    let haiku = browser
        .eval("return document.querySelector('fieldset.rule:nth-of-type(4) [name=model]').value")
        .await;
    assert_eq!(haiku, "haiku");
    browser
        .click("fieldset.rule:nth-of-type(4) .rule__remove")
        .await;
    browser.click("#save-limits").await;
    let saved = common::eventually(dashboard_support::WAIT, || async {
        let user = server.user(user_id).await;
        let limits = user["limits"].as_array().unwrap().clone();
        (limits.len() == 5).then_some(limits)
    })
    .await;
    let shapes: Vec<String> = saved
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}-{}",
                r["type"].as_str().unwrap(),
                r["model"].as_str().unwrap_or("all"),
                r["window"].as_str().unwrap_or("-"),
                r["value"],
                r["kind"].as_str().unwrap_or("-"),
                r["schedule_start"].as_str().unwrap_or(""),
                r["schedule_end"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            "credits all daily 50 - -",
            "per_model opus daily 0 - -",
            "per_model sonnet daily 10 - -",
            "tokens all weekly 50000 output -",
            "time_of_day opus - null - 20:00-06:30",
        ]
    );
    // The page shows the saved limits, the editor is clean again.
    browser
        .wait_until(
            "the saved notice",
            "return document.getElementById('notices').textContent.includes('Limits saved')",
        )
        .await;
    assert_eq!(browser.eval(SAVE_DISABLED).await, true);

    // A prompt posted by a registered device arrives in the live feed of
    // the overview without a reload.
    let (_, token, _) = server.register_proxy(&code, "ada-laptop").await;
    browser.open("/dashboard").await;
    browser.eval("window.notReloaded = true; return true").await;
    browser.wait_until("the live connection", LIVE).await;
    let prompts_before = browser
        .eval("return document.querySelectorAll('#live-feed [data-kind=prompt]').length")
        .await;
    assert_eq!(prompts_before, 0);
    let now = jiff::Timestamp::now().to_string();
    let posted_at = std::time::Instant::now();
    post_events(
        &server,
        &token,
        json!({ "events": [request_event("00000000-0000-4000-8000-00000000a001", &now, "claude-sonnet-4-5", "s1:1", true, 1200)] }),
    )
    .await;
    let item = browser
        .wait_until(
            "the prompt in the live feed",
            "return document.querySelector('#live-feed [data-kind=prompt]')?.textContent",
        )
        .await;
    eprintln!(
        "the prompt reached the feed {:?} after it was posted",
        posted_at.elapsed()
    );
    let item = item.as_str().unwrap();
    assert!(
        item.contains("Ada Lovelace") && item.contains("Sonnet"),
        "{item}"
    );
    assert_eq!(
        browser.eval("return window.notReloaded === true").await,
        true
    );
    // The card followed too: one sonnet prompt today.
    browser
        .wait_until(
            "the card to show the prompt",
            &format!("return document.querySelector('[data-user-id=\"{user_id}\"]')?.textContent.includes('Sonnet 1')"),
        )
        .await;

    // Kill, with a confirmation; the badge changes.
    browser.open(&format!("/dashboard/users/{user_id}")).await;
    assert_eq!(browser.text(".user-title .badge__text").await, "Active");
    browser.click("#kill-user").await;
    browser.find("dialog[open]").await;
    browser.click("dialog[open] .button--danger").await;
    browser
        .wait_until(
            "the killed badge",
            "return document.querySelector('.user-title .badge')?.dataset.status === 'killed'",
        )
        .await;
    assert_eq!(browser.text(".user-title .badge__text").await, "Killed");
    assert_eq!(server.user(user_id).await["status"], "killed");
    // The overview shows it too, and the kill is in the feed.
    browser.open("/dashboard").await;
    assert_eq!(
        browser.eval(&format!("return document.querySelector('[data-user-id=\"{user_id}\"] .badge').dataset.status")).await,
        "killed"
    );
    assert!(
        browser
            .eval("return document.querySelectorAll('#live-feed [data-kind=killed]').length")
            .await
            .as_u64()
            .unwrap()
            >= 1
    );
    browser.close().await;
}

/// Alert channels on loopback receivers (a team chat that takes every
/// message, an on-call pager that fails), and default rules routed to them.
async fn seed_alert_channels(server: &TestServer) -> (i64, i64) {
    let (_, chat_url) = SlackReceiver::start(0).await;
    let (_, pager_url) = SlackReceiver::start(u32::MAX).await;
    let mut ids = Vec::new();
    for (name, url) in [("Team chat", chat_url), ("On-call pager", pager_url)] {
        let (status, body) = server
            .admin_json(
                Method::POST,
                "/api/admin/alerts/channels",
                Some(json!({ "name": name, "config": { "kind": "slack", "webhook_url": url } })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["channel"]["id"].as_i64().unwrap());
    }
    let (chat, pager) = (ids[0], ids[1]);
    let (_, body) = server.admin_get("/api/admin/alerts/rules").await;
    for rule in body["rules"].as_array().unwrap() {
        let channels = match rule["name"].as_str().unwrap() {
            "5-hour window at 90 %" | "Kill switch" | "Tamper report" => json!([chat, pager]),
            "5-hour window at 75 %" | "Weekly window at 90 %" | "Use outside ccgate" => {
                json!([chat])
            }
            "Device silent for 24 hours" => {
                let (status, body) = server
                    .admin_json(
                        Method::PUT,
                        &format!("/api/admin/alerts/rules/{}", rule["id"]),
                        Some(json!({ "name": rule["name"], "condition": rule["condition"], "channels": [], "enabled": false })),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
                continue;
            }
            _ => continue,
        };
        let (status, body) = server
            .admin_json(
                Method::PUT,
                &format!("/api/admin/alerts/rules/{}", rule["id"]),
                Some(json!({ "name": rule["name"], "condition": rule["condition"], "channels": channels })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    (chat, pager)
}

/// A team with some history: five people, devices, half a year of prompts,
/// the subscription's utilization and who used it, a block, a tamper
/// alert, a pause and a kill, alert channels and the alerts they carried.
async fn seed_team(server: &TestServer) -> Vec<i64> {
    use jiff::{SignedDuration, Timestamp, ToSpan};

    let (status, body) = server
        .put_settings(json!({ "team_name": "Acme Robotics", "time_zone": "Europe/Berlin" }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (chat, _) = seed_alert_channels(server).await;
    let daily = |model: &str, value: i64| json!({ "type": "per_model", "model": model, "window": "daily", "value": value });
    let credits = |value: i64| json!({ "type": "credits", "window": "daily", "value": value });
    let people = [
        (
            "Ada Lovelace",
            "ada-mbp",
            "macos",
            json!([credits(100), daily("opus", 5), daily("sonnet", 20), daily("haiku", 50),
            { "type": "tokens", "window": "rolling_5h", "value": 3_000_000, "kind": "total" },
            { "type": "share", "window": "five_hour", "value": 60 }]),
        ),
        (
            "Grace Hopper",
            "grace-thinkpad",
            "linux",
            json!([
                credits(200),
                daily("opus", 10),
                daily("sonnet", 40),
                daily("haiku", 100)
            ]),
        ),
        (
            "Alan Turing",
            "bletchley",
            "linux",
            json!([credits(50), daily("opus", 3), daily("sonnet", 10), daily("haiku", 30),
            { "type": "time_of_day", "model": "opus", "schedule_start": "09:00", "schedule_end": "18:00" }]),
        ),
        (
            "Margaret Hamilton",
            "apollo",
            "macos",
            json!([credits(100), { "type": "per_model", "model": "opus", "window": "monthly", "value": 60 }, daily("sonnet", 20)]),
        ),
        ("Linus Torvalds", "penguin", "linux", json!([])),
    ];
    // Devices registered half a year ago, so history can be posted since then
    // (the server accepts event times up to 7 days before its own now).
    server.clock.advance(SignedDuration::from_hours(-24 * 182));
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for (name, host, os, limits) in &people {
        let (id, code) = server.create_user(name, limits.clone()).await;
        let (status, body) = send(
            server
                .request(Method::POST, "/api/agent/v1/register")
                .json(&json!({ "code": code, "device": {
                    "hostname": host, "os": os, "arch": if *os == "macos" { "aarch64" } else { "x86_64" },
                    "os_user": name.split(' ').next().unwrap().to_lowercase(),
                    "os_version": if *os == "macos" { "15.2" } else { "Debian 12" },
                    "claude_version": "2.1.3", "agent_version": "0.1.0" } })),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        ids.push(id);
        tokens.push(body["device_token"].as_str().unwrap().to_owned());
    }
    let models = ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"];
    let mut serial = 0u64;
    // Every 3 days until today: each person's prompts of those days.
    for step in 0..60 {
        server.clock.advance(SignedDuration::from_hours(72));
        let now = server.clock.now();
        for (person, token) in tokens.iter().enumerate() {
            let busy = 2 + (step * 7 + person * 5) % 9;
            let events: Vec<_> = (0..busy)
                .map(|k| {
                    serial += 1;
                    let at = now - (k as i64 * 5).hours() - (person as i64 * 17).minutes();
                    let model = models[(k + person + step) % if person == 3 { 2 } else { 3 }];
                    request_event(
                        &format!("00000000-0000-4000-8000-{serial:012x}"),
                        &at.to_string(),
                        model,
                        &format!("seed:{serial}"),
                        true,
                        20_000 + (serial % 7) * 9_000,
                    )
                })
                .collect();
            post_events(server, token, json!({ "events": events })).await;
        }
    }
    // The steps end two days ago: on to the real now.
    let behind = Timestamp::now().duration_since(server.clock.now());
    server.clock.advance(behind);
    let now = server.clock.now();
    // Today: Ada at her opus limit, the others lighter.
    for (person, opus, sonnet, haiku) in [(0usize, 5, 3, 1), (1, 2, 6, 3), (3, 1, 2, 0)] {
        let picks = std::iter::repeat_n(models[0], opus)
            .chain(std::iter::repeat_n(models[1], sonnet))
            .chain(std::iter::repeat_n(models[2], haiku));
        let events: Vec<_> = picks
            .enumerate()
            .map(|(k, model)| {
                serial += 1;
                let at = now - SignedDuration::from_mins(k as i64 * 9 + 4);
                request_event(
                    &format!("00000000-0000-4000-8000-{serial:012x}"),
                    &at.to_string(),
                    model,
                    &format!("today:{serial}"),
                    true,
                    180_000,
                )
            })
            .collect();
        post_events(server, &tokens[person], json!({ "events": events })).await;
    }
    let blocked = json!({
        "id": "00000000-0000-4000-9000-000000000001", "at": now, "type": "blocked",
        "model": "claude-opus-4-5", "kind": "prompt", "turn_key": "blocked:1",
        "reason": "per_model", "message": "Opus limit reached: 5 of 5 prompts today.",
    });
    post_events(server, &tokens[0], json!({ "events": [blocked] })).await;
    let tamper = json!({
        "id": "00000000-0000-4000-9000-000000000002", "at": now, "type": "tamper",
        "path": "/etc/claude-code/managed-settings.json", "what": "settings_key", "restored": true,
        "detail": "env.HTTPS_PROXY was removed",
    });
    post_events(server, &tokens[2], json!({ "events": [tamper] })).await;
    server.set_status(ids[2], "paused").await;
    server.set_status(ids[4], "killed").await;
    // Two of them share the team's subscription (team-credential mode).
    let subscription = server
        .create_subscription("Team Max", "sk-ant-oat01-screenshot-only-credential-7Hq2")
        .await;
    for id in [ids[1], ids[3]] {
        let (status, body) = server
            .put_user(id, json!({ "subscription_id": subscription }))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    seed_subscription_history(server, (&tokens[1], &tokens[3]), &tokens[0]).await;
    // Ada gets alerts about her own limits in the team chat.
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/rules",
            Some(json!({
                "name": "Ada at 80 % of a limit",
                "condition": { "type": "limit_share", "threshold": 80, "user_id": ids[0] },
                "channels": [chat], "owner_user_id": ids[0],
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    ids
}

/// For `at`, in 5-hour windows that end at `next_reset` and every 5 hours
/// before it: its window's reset, how many windows back it is, and the
/// fraction of the window gone.
fn five_hour_window(
    at: jiff::Timestamp,
    next_reset: jiff::Timestamp,
) -> (jiff::Timestamp, i64, f64) {
    let length = jiff::SignedDuration::from_hours(5);
    let back = next_reset.duration_since(at).as_secs() / length.as_secs();
    let resets_at = next_reset - length * back as i32;
    let gone = 1.0 - resets_at.duration_since(at).as_secs_f64() / length.as_secs_f64();
    (resets_at, back, gone)
}

fn two_places(fraction: f64) -> f64 {
    (fraction.min(1.0) * 100.0).round() / 100.0
}

/// A request event whose reply carried the unified headers: `usage` is the
/// `utilization` (observed_at, status, windows, …); `claim` says whose
/// subscription it is (`credential: team` or the `account` a login named).
fn reading(serial: u64, usage: Value, claim: (&str, &str)) -> Value {
    let at = usage["observed_at"].as_str().unwrap().to_owned();
    let id = format!("00000000-0000-4000-a000-{serial:012x}");
    let mut event = request_event(
        &id,
        &at,
        "claude-sonnet-4-5",
        &format!("reading:{serial}"),
        false,
        90,
    );
    event["utilization"] = usage;
    event[claim.0] = json!(claim.1);
    event
}

/// A reading: the 5-hour window rises to each window's `peaks` (the limit
/// rejects at 100 %), the weekly one follows `weekly(at)`.
fn plan_reading(
    at: jiff::Timestamp,
    next_five_hour_reset: jiff::Timestamp,
    peaks: &[f64],
    weekly: (f64, jiff::Timestamp),
) -> Value {
    let (resets_at, back, gone) = five_hour_window(at, next_five_hour_reset);
    let five_hour = two_places(peaks[back as usize % peaks.len()] * gone.powf(0.8));
    let status = if five_hour >= 1.0 {
        "rejected"
    } else {
        "allowed"
    };
    json!({
        "observed_at": at, "status": status, "representative_claim": "five_hour",
        "windows": {
            "5h": { "utilization": five_hour, "resets_at": resets_at, "status": status },
            "7d": { "utilization": two_places(weekly.0), "resets_at": weekly.1, "status": "allowed" },
        },
    })
}

/// The subscriptions' utilization: the team's every 20 minutes for six and
/// a half days (its week reset four days ago; now 62 % of the 5-hour
/// window, 41 % of the week, Opus's weekly bucket at 78 %), reported by
/// Grace's requests and, for the last five hours, Margaret's and Grace's
/// in turn, Margaret's twice as big (so the window has two people's
/// shares); and Ada's own account (seen in her personal-login traffic)
/// every 30 minutes for two days, at its 5-hour limit now. The account
/// gets a name.
async fn seed_subscription_history(
    server: &TestServer,
    team_tokens: (&str, &str),
    own_token: &str,
) {
    use jiff::SignedDuration;

    let now = server.clock.now();
    let week = SignedDuration::from_hours(24 * 7);
    let next_week = now + SignedDuration::from_hours(76);
    let this_week = next_week - week;
    let five_hour_reset = now + SignedDuration::from_mins(133);
    let peaks = [0.99, 0.45, 0.8, 1.2, 0.3, 0.1, 0.15, 0.7, 0.95, 0.55];
    let mut serial = 0u64;
    let (mut team, mut margaret) = (Vec::new(), Vec::new());
    for step in (0..=468).rev() {
        let at = now - SignedDuration::from_mins(20 * step);
        let weekly = if at >= this_week {
            let gone = at.duration_since(this_week).as_secs_f64()
                / now.duration_since(this_week).as_secs_f64();
            (0.41 * gone.powf(1.15), next_week)
        } else {
            let gone = 1.0 - this_week.duration_since(at).as_secs_f64() / week.as_secs_f64();
            (0.2 + 0.7 * gone, this_week)
        };
        let mut usage = plan_reading(at, five_hour_reset, &peaks, weekly);
        if step == 0 {
            usage["windows"]["7d_opus"] = json!({ "utilization": 0.78, "resets_at": next_week });
            usage["windows"]["7d_sonnet"] = json!({ "utilization": 0.22, "resets_at": next_week });
            usage["overage_status"] = json!("rejected");
            usage["overage_reason"] = json!("out_of_credits");
        }
        serial += 1;
        let mut event = reading(serial, usage, ("credential", "team"));
        event["usage"]["output_tokens"] = json!(8_000);
        if step < 15 {
            let margarets = step % 2 == 1;
            event["usage"]["output_tokens"] = json!(if margarets { 24_000 } else { 11_000 });
            if margarets {
                margaret.push(event);
                continue;
            }
        }
        team.push(event);
    }
    for batch in team.chunks(200) {
        post_events(server, team_tokens.0, json!({ "events": batch })).await;
    }
    post_events(server, team_tokens.1, json!({ "events": margaret })).await;

    let account = "7c0ffee1-5e1f-4a2b-9c3d-4e5f6a7b8c9d";
    let own_reset = now + SignedDuration::from_mins(41);
    let own_week = now + SignedDuration::from_hours(99);
    let own = (0..=96)
        .rev()
        .map(|step| {
            let at = now - SignedDuration::from_mins(30 * step);
            let weekly = 0.52 - 0.003 * step as f64;
            serial += 1;
            let usage = plan_reading(
                at,
                own_reset,
                &[1.2, 0.35, 0.9, 0.2, 0.6],
                (weekly, own_week),
            );
            let mut event = reading(serial, usage, ("account", account));
            event["usage"]["output_tokens"] = json!(10_000);
            event
        })
        .collect::<Vec<_>>();
    post_events(server, own_token, json!({ "events": own })).await;
    let (_, list) = server.admin_get("/api/admin/subscriptions").await;
    let seen = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["account_uuid"] == account)
        .expect("Ada's account is a subscription")["id"]
        .as_i64()
        .unwrap();
    let (status, body) = server
        .put_subscription(seen, json!({ "name": "Ada’s Pro" }))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The team's subscription over the last week, opened from its card on the
/// overview: the page down to the end of the subscriptions.
async fn screenshot_subscription_history(
    browser: &Browser,
    dir: &std::path::Path,
    suffix: &str,
    width: u32,
) {
    let card = "[...document.querySelectorAll('#subscription-cards .subscription-card')].find(c => c.querySelector('.card__title').textContent === 'Team Max')";
    browser
        .eval(&format!(
            "{card}.querySelector('.history-toggle').click(); return true"
        ))
        .await;
    browser
        .wait_until(
            "the day's history",
            &format!("return {card}.querySelector('.history__plot svg')?.dataset.range === '24h'"),
        )
        .await;
    browser
        .eval(&format!(
            "{card}.querySelector('.range-button[data-range=\"7d\"]').click(); return true"
        ))
        .await;
    browser
        .wait_until(
            "the week's history",
            &format!(
                "const plot = {card}.querySelector('.history__plot');
                 return plot.dataset.range === '7d' && Number(plot.dataset.points) > 400 && !plot.hasAttribute('aria-busy')"
            ),
        )
        .await;
    let bottom = browser
        .eval(
            "const r = document.getElementById('subscription-usage').getBoundingClientRect();
             return Math.ceil(r.bottom + window.scrollY + 16)",
        )
        .await
        .as_u64()
        .unwrap() as u32;
    browser
        .screenshot(
            dir,
            &format!("subscription-history-{suffix}"),
            width,
            bottom,
        )
        .await;
}

/// Settings' alerts with a channel test passed, one failed and a rule open
/// for editing; then the team's subscription card with who used it.
async fn screenshot_alerts_and_shares(
    browser: &Browser,
    dir: &std::path::Path,
    suffix: &str,
    width: u32,
) {
    browser.open("/dashboard/settings#alerts").await;
    for name in ["Team chat", "On-call pager"] {
        let channel = format!(
            "[...document.querySelectorAll('#alert-channels .channel')].find(c => c.querySelector('.channel__name').textContent === '{name}')"
        );
        browser
            .eval(&format!(
                "{channel}.querySelector('button[data-action=test]').click(); return true"
            ))
            .await;
        browser
            .wait_until(
                "the channel's test result",
                &format!("return {channel}.querySelector('.test-result').dataset.ok !== undefined"),
            )
            .await;
    }
    browser
        .eval(
            "[...document.querySelectorAll('#alert-rules .alert-rule')]
               .find(r => r.querySelector('.alert-rule__name').textContent === 'Weekly window at 95 %')
               .querySelector('button[data-action=edit]').click();
             return true",
        )
        .await;
    browser.find("#rule-form").await;
    browser
        .element_screenshot(dir, &format!("alerts-{suffix}"), width, "#alerts")
        .await;

    browser.open("/dashboard").await;
    let card = "[...document.querySelectorAll('#subscription-cards .subscription-card')].find(c => c.querySelector('.card__title').textContent === 'Team Max')";
    browser
        .wait_until(
            "who used the team's window",
            &format!("return {card}.querySelectorAll('.shares__window .share').length >= 2"),
        )
        .await;
    browser
        .eval(&format!(
            "const c = {card}; c.id = 'screenshot-card'; return true"
        ))
        .await;
    browser
        .element_screenshot(
            dir,
            &format!("subscription-shares-{suffix}"),
            width,
            "#screenshot-card",
        )
        .await;
}

#[tokio::test]
async fn screenshots_of_every_page_at_desktop_and_phone_width() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start_with(|config| {
        config.alert_tick = std::time::Duration::from_millis(200);
        config.alert_retry = ccgate_alerts::RetryPolicy {
            attempts: 2,
            first_delay: std::time::Duration::from_millis(20),
            factor: 2,
            max_delay: std::time::Duration::from_millis(100),
        };
    })
    .await;
    let ids = seed_team(&server).await;
    let dir = dashboard_support::screenshot_dir();
    let browser = Browser::start(&server.url, 1280, 900).await;

    let pages = [
        ("overview", "/dashboard".to_owned()),
        ("user", format!("/dashboard/users/{}", ids[0])),
        ("add-user", "/dashboard/users/new".to_owned()),
        ("settings", "/dashboard/settings".to_owned()),
        ("activity", "/dashboard/activity".to_owned()),
    ];
    browser.open("/dashboard/login").await;
    for (suffix, width) in [("desktop", 1280), ("phone", 390)] {
        browser.set_size(width, 900).await;
        browser
            .screenshot(&dir, &format!("login-{suffix}"), width, 900)
            .await;
    }
    browser.log_in(None, ADMIN_PASSWORD).await;
    browser.wait_for_overview().await;
    for (suffix, width) in [("desktop", 1280), ("phone", 390)] {
        browser.set_size(width, 900).await;
        for (name, path) in &pages {
            browser.open(path).await;
            if *name == "overview" {
                browser.wait_until("the live connection", LIVE).await;
            }
            let inner_width = browser.eval("return window.innerWidth").await;
            assert_eq!(inner_width, width, "the viewport is {width} px wide");
            browser
                .screenshot(&dir, &format!("{name}-{suffix}"), width, 4000)
                .await;
            if *name == "overview" {
                screenshot_subscription_history(&browser, &dir, suffix, width).await;
            }
        }
        screenshot_alerts_and_shares(&browser, &dir, suffix, width).await;
    }
    // The add-user page once more, after creating someone: the install code.
    for (suffix, width) in [("desktop", 1280), ("phone", 390)] {
        browser.set_size(width, 900).await;
        browser.open("/dashboard/users/new").await;
        browser
            .type_into("#new-name", &format!("Hedy Lamarr ({suffix})"))
            .await;
        browser.click("#create-user").await;
        browser.find("#install-code").await;
        browser
            .screenshot(&dir, &format!("add-user-created-{suffix}"), width, 4000)
            .await;
    }
    for name in [
        "login",
        "overview",
        "user",
        "add-user",
        "add-user-created",
        "settings",
        "activity",
        "subscription-history",
        "alerts",
        "subscription-shares",
    ] {
        for suffix in ["desktop", "phone"] {
            let file = dir.join(format!("{name}-{suffix}.png"));
            let bytes = std::fs::read(&file).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", file.display());
        }
    }
    browser.close().await;
}

#[tokio::test]
async fn a_viewer_sees_every_page_without_controls_that_change_anything() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let (status, body) = server
        .add_account("vera", "viewer password", "viewer")
        .await;
    assert_eq!(status, 201, "{body}");
    server
        .create_subscription("Team Max", "sk-ant-oat01-viewer-sees-only-the-hint-wxyz")
        .await;
    let (user_id, _) = server
        .user_with_proxy(
            "Bob",
            json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 2 }]),
        )
        .await;
    let browser = Browser::start(&server.url, 1280, 900).await;

    // Keyboard only: type, then Enter submits the login form.
    browser.open("/dashboard/login").await;
    browser.type_into("#username", "vera").await;
    browser
        .type_into("#password", "viewer password\u{E007}")
        .await;
    browser.wait_for_overview().await;
    assert!(browser.text(".whoami").await.contains("read-only"));
    let add_links = browser
        .eval("return document.querySelectorAll(\"a[href='/dashboard/users/new']\").length")
        .await;
    assert_eq!(add_links, 0);
    assert!(browser.text("#user-cards").await.contains("Bob"));

    browser.open(&format!("/dashboard/users/{user_id}")).await;
    assert!(
        browser
            .text("main")
            .await
            .contains("Opus prompts per day: at most 2")
    );
    let controls = browser
        .eval("return [...document.querySelectorAll('main button, main .limits-editor, main select')].map(e => e.outerHTML.slice(0, 60))")
        .await;
    assert_eq!(controls, json!([]), "no action buttons, no editor");

    browser.open("/dashboard/settings").await;
    let editable = browser
        .eval("return [...document.querySelectorAll('main input:not([disabled]), main select:not([disabled]), main button:not([disabled])')].map(e => e.id || e.outerHTML.slice(0, 60))")
        .await;
    assert_eq!(editable, json!([]), "settings are shown, not editable");
    assert!(browser.text("main").await.contains("Team"));
    let subscriptions = browser.text("#subscriptions").await;
    assert!(
        subscriptions.contains("Team Max") && subscriptions.contains("…wxyz"),
        "{subscriptions}"
    );

    browser.open("/dashboard/users/new").await;
    assert!(
        browser
            .text("main")
            .await
            .contains("Viewers cannot add users")
    );
    browser.close().await;
}

#[tokio::test]
async fn the_live_feed_says_when_it_is_offline_and_reconnects_by_itself() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let (_, code) = server.create_user("Cy", json!([])).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let browser = Browser::start(&server.url, 1280, 900).await;
    browser.open("/dashboard/login").await;
    browser.log_in(None, ADMIN_PASSWORD).await;
    // The page must have loaded its data before the server goes away.
    browser.wait_for_overview().await;
    browser.wait_until("the live connection", LIVE).await;
    browser.eval("window.notReloaded = true; return true").await;

    // The server goes away: the top bar says so and counts down to a retry.
    let (_temp, data_dir) = server.stop().await;
    let offline = browser
        .wait_until(
            "the offline notice",
            "const s = document.getElementById('live-status'); return s.dataset.state === 'offline' && s.textContent",
        )
        .await;
    assert!(
        offline
            .as_str()
            .unwrap()
            .starts_with("Offline · retrying in"),
        "{offline}"
    );

    // It comes back on the same address: the page reconnects by itself.
    let listener = tokio::net::TcpListener::bind(&address).await.unwrap();
    let server = TestServer::launch_on(common::config(&data_dir), listener).await;
    browser.wait_until("the reconnection", LIVE).await;
    assert_eq!(
        browser.eval("return window.notReloaded === true").await,
        true
    );

    // And live events flow again.
    let (_, token, _) = server.register_proxy(&code, "cy-box").await;
    let event = request_event(
        "00000000-0000-4000-8000-00000000c001",
        &jiff::Timestamp::now().to_string(),
        "claude-haiku-4-5",
        "c:1",
        true,
        10,
    );
    post_events(&server, &token, json!({ "events": [event] })).await;
    let item = browser
        .wait_until(
            "the prompt after the reconnection",
            "return document.querySelector('#live-feed [data-kind=prompt]')?.textContent",
        )
        .await;
    assert!(item.as_str().unwrap().contains("Cy"), "{item}");
    browser.close().await;
    server.stop().await;
}

#[tokio::test]
async fn an_admin_changes_settings_creates_an_api_token_and_filters_the_activity() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let (user_id, _) = server.create_user("Dee", json!([])).await;
    server.set_status(user_id, "killed").await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;

    browser.open("/dashboard/settings").await;
    browser.type_into("#team-name", "Night Shift").await;
    browser.type_into("#weight-opus", "12").await;
    browser.click("#team-form button[type=submit]").await;
    browser
        .wait_until(
            "the saved notice",
            "return document.getElementById('notices').textContent.includes('Team settings saved')",
        )
        .await;
    let (_, settings) = server.admin_get("/api/admin/settings").await;
    assert_eq!(settings["settings"]["team_name"], "Night Shift");
    assert_eq!(settings["settings"]["credit_weights"]["opus"], 12);

    // An API token is shown once, and works for scripts.
    browser.type_into("#token-name", "nightly report").await;
    browser.click("#token-form button[type=submit]").await;
    let token = browser
        .wait_until(
            "the new token",
            "return document.querySelector('#new-token .copy__field')?.value",
        )
        .await;
    let token = token.as_str().unwrap();
    assert!(token.starts_with("cca_"), "{token}");
    let as_script = server
        .request(Method::GET, "/api/admin/users")
        .bearer_auth(token);
    expect_status(as_script, StatusCode::OK).await;
    assert!(browser.text("main").await.contains("nightly report"));

    // The activity, filtered by kind, through the URL and the select.
    browser.open("/dashboard/activity?kind=user_killed").await;
    let kinds = browser
        .eval("return [...document.querySelectorAll('#audit-rows tr')].map(r => r.dataset.kind)")
        .await;
    assert_eq!(kinds, json!(["user_killed"]));
    assert!(browser.text("#audit-rows").await.contains("Dee"));
    browser
        .find("#filter-kind")
        .await
        .select_by_value("token_created")
        .await
        .unwrap();
    browser
        .wait_until(
            "the filtered rows",
            "const kinds = [...document.querySelectorAll('#audit-rows tr')].map(r => r.dataset.kind); return kinds.length === 1 && kinds[0] === 'token_created'",
        )
        .await;
    assert_eq!(
        browser.path().await,
        "/dashboard/activity?kind=token_created"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_admin_revokes_one_device_and_makes_a_hook_code_on_the_user_page() {
    let _one = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let (user_id, code) = server.create_user("Rae", json!([])).await;
    let (device_id, token, _) = server.register_proxy(&code, "rae-laptop").await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;
    browser.open(&format!("/dashboard/users/{user_id}")).await;

    // The device's revoke control is a real button, named in words, reached
    // and pressed with the keyboard.
    let selector = format!("[data-revoke-device=\"{device_id}\"]");
    let button = browser.find(&selector).await;
    assert_eq!(button.tag_name().await.unwrap(), "button");
    assert_eq!(
        button.attr("aria-label").await.unwrap().as_deref(),
        Some("Revoke rae-laptop")
    );
    assert!(button.text().await.unwrap().contains("Revoke"));
    browser
        .eval(&format!(
            "document.querySelector('{}').focus()",
            selector.replace('\'', "\\'")
        ))
        .await;
    assert_eq!(
        browser
            .eval(&format!(
                "return document.activeElement === document.querySelector('{}')",
                selector.replace('\'', "\\'")
            ))
            .await,
        true
    );
    button.send_keys("\u{E007}").await.unwrap();
    let dialog = browser.text("dialog[open]").await;
    assert!(dialog.contains("Revoke rae-laptop?"), "{dialog}");
    assert!(dialog.contains("no longer accepts"), "{dialog}");
    browser.click("dialog[open] .button--danger").await;
    browser
        .wait_until(
            "the device to leave the list",
            &format!(
                "return !document.querySelector('{}')",
                selector.replace('\'', "\\'")
            ),
        )
        .await;
    let (status, _) = server.agent(&token, "/sync", json!({})).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the token stopped working"
    );

    // Migrating a claude-code-limiter machine takes an explicit action.
    browser.click("#hook-code").await;
    browser.find("dialog[open]").await;
    browser.click("dialog[open] .button--primary").await;
    browser
        .wait_until(
            "the hook code",
            "return document.getElementById('install-code')?.textContent.includes('claude-code-limiter')",
        )
        .await;
    let hook_code = browser.text(".install-code__code").await;
    let (status, body) = send(
        server
            .request(Method::POST, "/api/v1/register")
            .json(&json!({ "code": hook_code })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser.close().await;
}
