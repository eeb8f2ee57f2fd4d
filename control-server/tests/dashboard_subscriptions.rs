//! The subscriptions on the overview, in headless Chromium against the real
//! server: readings posted through the agent API the way proxies post them
//! (a request event with `utilization`, and `credential: team` or the
//! `account` a personal login named), then the cards' gauges, words and
//! countdowns, the history chart's ranges, a live update, the phone layout,
//! the empty state and Settings' seen accounts. Needs Debian's `chromium`
//! and `chromium-driver` (`scripts/test.sh` installs them).

mod common;
mod dashboard_support;

use common::{ADMIN_PASSWORD, TestServer, request_event};
use dashboard_support::Browser;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// One Chromium at a time: the machines that run these have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOKEN: &str = "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz";
const ACCOUNT: &str = "4b1f9c2e-7a3d-4e5f-9a8b-1c2d3e4f5a6b";
/// The name the server gives the account Bob's personal login named.
const SEEN_NAME: &str = "Account 4b1f9c2e";

/// Whether the top bar says the live feed is connected.
const LIVE: &str = "return document.getElementById('live-status')?.dataset.state === 'live'";

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

/// A request event whose reply carried the unified headers `windows`.
fn reading(n: u32, at: Timestamp, windows: Value) -> Value {
    let id = format!("92000000-0000-4000-8000-{n:012}");
    let mut event = request_event(&id, &at.to_string(), "claude-sonnet-4-5", "t", false, 100);
    event["utilization"] = json!({ "observed_at": at, "status": "allowed", "windows": windows });
    event
}

/// The 5-hour and weekly windows: utilization and when each resets.
fn plan(five_hour: f64, five_resets: Timestamp, seven_day: f64, seven_resets: Timestamp) -> Value {
    json!({
        "5h": { "utilization": five_hour, "resets_at": five_resets },
        "7d": { "utilization": seven_day, "resets_at": seven_resets },
    })
}

/// A reading of the team's subscription (its credential was swapped in).
fn team_reading(n: u32, at: Timestamp, windows: Value) -> Value {
    let mut event = reading(n, at, windows);
    event["credential"] = json!("team");
    event
}

async fn post(server: &TestServer, token: &str, events: Vec<Value>) {
    let (status, body) = server
        .agent(token, "/events", json!({ "events": events }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refused"].is_null(), "{body}");
}

/// What the tests seed: the team's subscription with a day of readings and
/// more, and an account seen in Bob's personal-login traffic.
struct Seeded {
    team: i64,
    ann_token: String,
    /// When the team's 5-hour window resets (the latest reading says).
    five_hour_resets_at: Timestamp,
    /// How many readings of the team each chart range holds.
    readings: [(&'static str, usize); 4],
}

/// "Team Max" (Ann uses it): readings 3 days, 20 h, 10 h, 4 h, 2 h and
/// 30 min ago, the newest at 62 % (5-hour) and 41 % (weekly) with per-model
/// buckets and overage; Bob's own account: 80 % (warning) and a weekly
/// window Anthropic rejects at 97 % (limited).
async fn seed(server: &TestServer) -> Seeded {
    // The devices are registered four days ago: the server takes no event
    // from before a device existed.
    server.clock.advance(SignedDuration::from_hours(-96));
    let team = server.create_subscription("Team Max", TOKEN).await;
    let (ann, ann_token) = server.user_with_proxy("Ann", json!([])).await;
    let (status, body) = server
        .put_user(ann, json!({ "subscription_id": team }))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, bob_token) = server.user_with_proxy("Bob", json!([])).await;
    server
        .clock
        .advance(Timestamp::now().duration_since(server.clock.now()));

    let now = server.clock.now();
    let ago = |m: i64| now - minutes(m);
    let weekly_reset = now + SignedDuration::from_hours(76);
    // Seconds to spare, so the countdown reads 2 h 14 min for half a minute.
    let five_hour_resets_at = now + minutes(134) + SignedDuration::from_secs(40);
    let mut newest = plan(0.62, five_hour_resets_at, 0.41, weekly_reset);
    newest["7d_opus"] = json!({ "utilization": 0.81 });
    newest["7d_sonnet"] = json!({ "utilization": 0.3 });
    let mut newest = team_reading(6, ago(30), newest);
    newest["utilization"]["overage_status"] = json!("rejected");
    newest["utilization"]["overage_reason"] = json!("out_of_credits");
    let older = |n, m, five, seven, five_resets_in: i64| {
        team_reading(
            n,
            ago(m),
            plan(five, ago(m) + minutes(five_resets_in), seven, weekly_reset),
        )
    };
    post(
        server,
        &ann_token,
        vec![
            // Three days ago, with the week before it ending the next hour.
            team_reading(
                1,
                ago(3 * 24 * 60),
                plan(0.2, ago(3 * 24 * 60 - 60), 0.95, ago(3 * 24 * 60 - 60)),
            ),
            older(2, 20 * 60, 0.3, 0.2, 60),
            older(3, 10 * 60, 0.55, 0.3, 200),
            older(4, 4 * 60, 0.1, 0.35, 250),
            older(5, 2 * 60, 0.5, 0.38, 130),
            newest,
        ],
    )
    .await;

    let mut seen = reading(
        7,
        ago(10),
        plan(0.8, now + minutes(50), 0.97, now + minutes(3000)),
    );
    seen["utilization"]["windows"]["7d"]["status"] = json!("rejected");
    seen["account"] = json!(ACCOUNT);
    post(server, &bob_token, vec![seen]).await;

    Seeded {
        team,
        ann_token,
        five_hour_resets_at,
        readings: [("3h", 2), ("6h", 3), ("24h", 5), ("7d", 6)],
    }
}

async fn log_in_as_admin(browser: &Browser) {
    browser.open("/dashboard/login").await;
    browser.log_in(None, ADMIN_PASSWORD).await;
    browser.wait_for_overview().await;
}

/// A script expression for the card of the subscription named `name`.
fn card(name: &str) -> String {
    format!(
        "[...document.querySelectorAll('#subscription-cards .subscription-card')].find(c => c.querySelector('.card__title').textContent === {name:?})"
    )
}

/// What a card's gauge for `window` shows: `62% ok`.
async fn gauge(browser: &Browser, name: &str, window: &str) -> String {
    let script = format!(
        "const g = {}?.querySelector('.util-gauge[data-window=\"{window}\"]');
         return g ? g.querySelector('.util-gauge__value').textContent + ' ' + g.querySelector('.level__word').textContent : null",
        card(name)
    );
    browser
        .eval(&script)
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Waits until the open history of `name` shows `range` with `points` readings; its summary.
async fn history_shows(browser: &Browser, name: &str, range: &str, points: usize) -> String {
    let script = format!(
        "const plot = {}?.querySelector('.history__plot');
         const svg = plot?.querySelector('svg');
         return plot && plot.dataset.range === '{range}' && Number(plot.dataset.points) === {points}
           && plot.getAttribute('aria-busy') === null && svg && svg.getAttribute('aria-label')",
        card(name)
    );
    let label = browser
        .wait_until(&format!("{name}'s history over {range}"), &script)
        .await;
    label.as_str().unwrap().to_owned()
}

/// The points of the history's line for `series` (`five-hour`, `seven-day`), all its segments.
async fn line_points(browser: &Browser, name: &str, series: &str) -> u64 {
    let script = format!(
        "return [...{}.querySelectorAll('.history__plot polyline.line--{series}')].reduce((n, l) => n + l.points.numberOfItems, 0)",
        card(name)
    );
    browser.eval(&script).await.as_u64().unwrap()
}

#[tokio::test]
async fn the_overview_shows_each_subscription_its_history_and_new_readings_live() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let seeded = seed(&server).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;
    browser.wait_until("the live connection", LIVE).await;
    browser.eval("window.notReloaded = true; return true").await;

    // Two cards, side by side, each saying what it is in words.
    let layout = browser
        .eval(
            "return [...document.querySelectorAll('#subscription-cards .subscription-card')].map(c => {
               const r = c.getBoundingClientRect();
               return [c.querySelector('.card__title').textContent, c.querySelector('.origin-tag').textContent, Math.round(r.top), Math.round(r.left)];
             })",
        )
        .await;
    let cards = layout.as_array().unwrap();
    assert_eq!(cards.len(), 2, "{layout}");
    assert_eq!(cards[0][0], SEEN_NAME, "{layout}");
    assert_eq!(cards[0][1], "seen in traffic");
    assert_eq!(cards[1][0], "Team Max");
    assert_eq!(cards[1][1], "team credential");
    assert_eq!(cards[0][2], cards[1][2], "side by side: {layout}");
    assert!(
        cards[1][3].as_i64() > cards[0][3].as_i64(),
        "side by side: {layout}"
    );

    // Percentages and levels in words.
    assert_eq!(gauge(&browser, "Team Max", "5h").await, "62% ok");
    assert_eq!(gauge(&browser, "Team Max", "7d").await, "41% ok");
    assert_eq!(gauge(&browser, SEEN_NAME, "5h").await, "80% warning");
    assert_eq!(
        gauge(&browser, SEEN_NAME, "7d").await,
        "97% limited",
        "Anthropic rejects the window"
    );
    let meter = browser
        .eval(&format!(
            "return {}.querySelector('.util-gauge[data-window=\"5h\"] [role=meter]').getAttribute('aria-valuetext')",
            card("Team Max")
        ))
        .await;
    assert!(
        meter
            .as_str()
            .unwrap()
            .starts_with("62% used, ok, resets in"),
        "{meter}"
    );

    // The countdown, and the local time of the reset: with its weekday
    // when that is tomorrow (a run late in the evening).
    let reset_at = seeded.five_hour_resets_at.to_zoned(TimeZone::system());
    let today = Timestamp::now().to_zoned(TimeZone::system()).date();
    let at = if reset_at.date() == today {
        reset_at.strftime("at %H:%M").to_string()
    } else {
        reset_at.strftime("on %a %H:%M").to_string()
    };
    let reset = browser
        .eval(&format!(
            "return {}.querySelector('.util-gauge[data-window=\"5h\"] .util-gauge__reset').textContent",
            card("Team Max")
        ))
        .await;
    assert_eq!(reset, format!("resets in 2 h 14 min, {at}"));

    // The per-model buckets as small bars, and overage.
    let team_text = browser
        .eval(&format!("return {}.innerText", card("Team Max")))
        .await;
    let team_text = team_text.as_str().unwrap();
    let bars = browser
        .eval(&format!(
            "return [...{}.querySelectorAll('.window-bar')].map(b => b.querySelector('.window-bar__name').textContent + ' ' + b.querySelector('.window-bar__amount').textContent)",
            card("Team Max")
        ))
        .await;
    assert_eq!(
        bars,
        json!(["Opus · weekly 81% ▲warning", "Sonnet · weekly 30% ●ok"])
    );
    assert!(
        team_text.contains("Extra usage: rejected (out of credits)"),
        "{team_text}"
    );
    assert!(team_text.contains("1 person"), "{team_text}");

    // The history: a real button that says whether it is open.
    let toggle = format!("{}.querySelector('.history-toggle')", card("Team Max"));
    assert_eq!(
        browser
            .eval(&format!(
                "return [{toggle}.tagName, {toggle}.getAttribute('aria-expanded')]"
            ))
            .await,
        json!(["BUTTON", "false"])
    );
    browser
        .eval(&format!(
            "window.historyRequests = 0;
             const original = window.fetch;
             window.fetch = (url, options) => {{
               if (String(url).includes('/history')) window.historyRequests += 1;
               return original(url, options);
             }};
             {toggle}.click(); return true"
        ))
        .await;
    assert_eq!(
        browser
            .eval(&format!("return {toggle}.getAttribute('aria-expanded')"))
            .await,
        "true"
    );
    let summary = history_shows(&browser, "Team Max", "24h", 5).await;
    assert!(
        summary.contains("5 readings over the last 24 hours")
            && summary.contains("5-hour 62%, weekly 41%"),
        "{summary}"
    );
    assert_eq!(line_points(&browser, "Team Max", "five-hour").await, 5);
    assert_eq!(line_points(&browser, "Team Max", "seven-day").await, 5);

    // Each range is fetched and drawn anew; the pressed button says which.
    for (range, readings) in seeded.readings {
        let requests_before = browser.eval("return window.historyRequests").await;
        browser
            .eval(&format!(
                "{}.querySelector('button.range-button[data-range=\"{range}\"]').click(); return true",
                card("Team Max")
            ))
            .await;
        let summary = history_shows(&browser, "Team Max", range, readings).await;
        assert!(
            summary.contains(&format!("{readings} readings")),
            "{summary}"
        );
        let requests = browser.eval("return window.historyRequests").await;
        assert_eq!(
            requests.as_u64(),
            requests_before.as_u64().map(|n| n + 1),
            "{range} was fetched"
        );
        assert_eq!(
            line_points(&browser, "Team Max", "five-hour").await,
            readings as u64
        );
        let pressed = browser
            .eval(&format!(
                "return [...{}.querySelectorAll('.range-button')].filter(b => b.getAttribute('aria-pressed') === 'true').map(b => b.dataset.range)",
                card("Team Max")
            ))
            .await;
        assert_eq!(pressed, json!([range]));
    }
    // The resets the server reports are drawn as labelled markers.
    let (_, history) = server
        .admin_get(&format!(
            "/api/admin/subscriptions/{}/history?range=7d",
            seeded.team
        ))
        .await;
    let resets = history["resets"].as_array().unwrap();
    assert!(resets.len() >= 3, "{history}");
    let markers = browser
        .eval(&format!(
            "return [...{}.querySelectorAll('.reset-marker')].map(m => m.dataset.window)",
            card("Team Max")
        ))
        .await;
    let expected: Vec<&Value> = resets.iter().map(|r| &r["window"]).collect();
    assert_eq!(
        markers.as_array().unwrap().len(),
        expected.len(),
        "{markers}"
    );
    let labels = browser
        .eval(&format!(
            "return [...{}.querySelectorAll('.reset-marker__label')].map(l => l.textContent)",
            card("Team Max")
        ))
        .await;
    assert!(
        labels
            .as_array()
            .unwrap()
            .contains(&json!("↺ weekly reset")),
        "{labels}"
    );
    // The same readings as a table.
    browser
        .eval(&format!(
            "{}.querySelector('.chart__details summary').click(); return true",
            card("Team Max")
        ))
        .await;
    let rows = browser
        .wait_until(
            "the table of readings",
            &format!(
                "return {}.querySelectorAll('.history__table tbody tr').length",
                card("Team Max")
            ),
        )
        .await;
    assert_eq!(rows, 6);

    // A new reading arrives while the page is open: the gauge and the open
    // chart follow without a reload.
    let now = server.clock.now();
    let newer = team_reading(
        8,
        now,
        plan(
            0.83,
            seeded.five_hour_resets_at,
            0.44,
            now + SignedDuration::from_hours(75),
        ),
    );
    let posted_at = std::time::Instant::now();
    post(&server, &seeded.ann_token, vec![newer]).await;
    browser
        .wait_until(
            "the gauge to show the new reading",
            &format!(
                "const g = {}.querySelector('.util-gauge[data-window=\"5h\"]');
                 return g.querySelector('.util-gauge__value').textContent === '83%' && g.dataset.level === 'warning'",
                card("Team Max")
            ),
        )
        .await;
    eprintln!(
        "the gauge showed the new reading {:?} after it was posted",
        posted_at.elapsed()
    );
    assert_eq!(gauge(&browser, "Team Max", "5h").await, "83% warning");
    let summary = history_shows(&browser, "Team Max", "7d", 7).await;
    assert!(summary.contains("5-hour 83%, weekly 44%"), "{summary}");
    assert_eq!(
        browser.eval("return window.notReloaded === true").await,
        true
    );
    browser.close().await;
}

#[tokio::test]
async fn at_phone_width_the_cards_stack_and_nothing_scrolls_sideways() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    seed(&server).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    // A window cannot start narrower than 500 px: it is made a phone's afterwards.
    browser.set_size(390, 844).await;
    log_in_as_admin(&browser).await;
    let width = browser.eval("return window.innerWidth").await;
    assert_eq!(width, 390, "the viewport is a phone's");

    let boxes = browser
        .eval(
            "return [...document.querySelectorAll('#subscription-cards .subscription-card')].map(c => {
               const r = c.getBoundingClientRect();
               return [Math.round(r.left), Math.round(r.top), Math.round(r.bottom), Math.round(r.right)];
             })",
        )
        .await;
    let boxes = boxes.as_array().unwrap();
    assert_eq!(boxes.len(), 2, "{boxes:?}");
    assert_eq!(boxes[0][0], boxes[1][0], "one above the other: {boxes:?}");
    assert!(
        boxes[1][1].as_i64() >= boxes[0][2].as_i64(),
        "stacked: {boxes:?}"
    );
    assert!(boxes[0][3].as_i64().unwrap() <= 390, "{boxes:?}");
    const SIDEWAYS: &str = "return document.documentElement.scrollWidth - window.innerWidth";
    assert_eq!(browser.eval(SIDEWAYS).await, 0, "no horizontal scrolling");

    // The history opens inside the card and fits it, range buttons too.
    browser
        .eval(&format!(
            "{}.querySelector('.history-toggle').click(); return true",
            card("Team Max")
        ))
        .await;
    history_shows(&browser, "Team Max", "24h", 5).await;
    browser
        .eval(&format!(
            "{}.querySelector('button.range-button[data-range=\"30d\"]').click(); return true",
            card("Team Max")
        ))
        .await;
    history_shows(&browser, "Team Max", "30d", 6).await;
    assert_eq!(browser.eval(SIDEWAYS).await, 0, "no horizontal scrolling");
    let fits = browser
        .eval(&format!(
            "const c = {}; const card = c.getBoundingClientRect();
             return [...c.querySelectorAll('.history__plot svg, .range-button, .util-gauge')]
               .map(e => e.getBoundingClientRect())
               .every(r => r.left >= card.left && r.right <= card.right && r.right <= window.innerWidth)",
            card("Team Max")
        ))
        .await;
    assert_eq!(
        fits, true,
        "the chart, its buttons and the gauges fit the card"
    );
    browser.close().await;
}

#[tokio::test]
async fn without_readings_the_overview_says_where_they_come_from() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;
    browser.wait_until("the live connection", LIVE).await;
    let explanation =
        "No utilization seen yet: it appears with the first reply through a ccgate proxy.";
    assert_eq!(
        browser
            .text("#subscription-usage .subscription-usage__empty")
            .await,
        explanation
    );

    // A subscription is enrolled elsewhere: its card appears, still without figures.
    server.create_subscription("Team Max", TOKEN).await;
    let text = browser
        .wait_until(
            "the new subscription's card",
            &format!("return {}?.innerText", card("Team Max")),
        )
        .await;
    assert!(text.as_str().unwrap().contains(explanation), "{text}");
    let hidden = browser
        .eval("return document.querySelector('#subscription-usage .subscription-usage__empty').hidden")
        .await;
    assert_eq!(hidden, true);
    let no_history = browser
        .eval(&format!(
            "return {}.querySelector('.history-toggle').hidden",
            card("Team Max")
        ))
        .await;
    assert_eq!(no_history, true, "nothing to chart yet");
    browser.close().await;
}

#[tokio::test]
async fn settings_list_a_seen_account_that_can_only_be_renamed() {
    let _browser_slot = ONE_BROWSER.lock().await;
    let server = TestServer::start().await;
    seed(&server).await;
    let browser = Browser::start(&server.url, 1280, 900).await;
    log_in_as_admin(&browser).await;
    browser.open("/dashboard/settings").await;

    let row = |name: &str| {
        format!(
            "[...document.querySelectorAll('#subscriptions tbody tr')].find(r => r.querySelector('th').textContent === {name:?})"
        )
    };
    let seen = browser
        .eval(&format!(
            "const r = {}; return [r.innerText, [...r.querySelectorAll('button')].map(b => b.dataset.action)]",
            row(SEEN_NAME)
        ))
        .await;
    let text = seen[0].as_str().unwrap();
    assert!(
        text.contains("seen in traffic") && text.contains("none held"),
        "{text}"
    );
    assert_eq!(seen[1], json!(["rename"]), "no rotate, no delete");
    let team = browser
        .eval(&format!(
            "return [...{}.querySelectorAll('button')].map(b => b.dataset.action)",
            row("Team Max")
        ))
        .await;
    assert_eq!(team, json!(["rename", "rotate", "delete"]));

    browser
        .eval(&format!(
            "{}.querySelector('button[data-action=rename]').click(); return true",
            row(SEEN_NAME)
        ))
        .await;
    browser.type_into("#rename-name", "Bob's Max").await;
    browser.click("#rename-form button[type=submit]").await;
    browser
        .wait_until("the renamed row", &format!("return !!{}", row("Bob's Max")))
        .await;
    let (_, body) = server.admin_get("/api/admin/subscriptions").await;
    let names: Vec<&str> = body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Bob's Max"), "{names:?}");

    // A seen account is not offered when choosing someone's subscription.
    let (_, users) = server.admin_get("/api/admin/users").await;
    let ann = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "Ann")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    browser.open(&format!("/dashboard/users/{ann}")).await;
    let options = browser
        .eval("return [...document.querySelectorAll('#user-subscription option')].map(o => o.textContent)")
        .await;
    assert_eq!(
        options,
        json!([
            "Personal login (their own Claude login)",
            "Team Max (subscription token …wxyz)"
        ])
    );
    browser.close().await;
}
