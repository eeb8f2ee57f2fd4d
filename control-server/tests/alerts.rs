//! Alerts end to end: channels whose secrets are sealed and never returned,
//! rules over a subscription's windows (thresholds, cooldown, re-arm, hit
//! and reset), the kill switch, and delivery to a local receiver that
//! speaks Slack's incoming-webhook format, fails, then recovers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::routing::post;
use common::{TestServer, eventually, request_event};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ACCOUNT: &str = "a1e47000-0000-4000-8000-000000000001";
const WAIT: Duration = Duration::from_secs(10);

/// A Slack incoming webhook on loopback: it answers `ok` to a JSON body
/// with `text`, `invalid_payload` otherwise, and fails the first
/// `failures` posts with 500.
#[derive(Clone, Default)]
struct SlackReceiver {
    received: Arc<Mutex<Vec<Value>>>,
    failures: Arc<Mutex<u32>>,
}

impl SlackReceiver {
    async fn start(failures: u32) -> (Self, String) {
        let receiver = Self::default();
        *receiver.failures.lock().unwrap() = failures;
        let app = axum::Router::new()
            .route("/services/T000/B000/XXXX", post(Self::hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/services/T000/B000/XXXX",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    async fn hook(State(receiver): State<Self>, body: String) -> (AxumStatus, &'static str) {
        {
            let mut failures = receiver.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return (AxumStatus::INTERNAL_SERVER_ERROR, "server_error");
            }
        }
        match serde_json::from_str::<Value>(&body) {
            Ok(value) if value["text"].is_string() => {
                receiver.received.lock().unwrap().push(value);
                (AxumStatus::OK, "ok")
            }
            _ => (AxumStatus::BAD_REQUEST, "invalid_payload"),
        }
    }

    fn texts(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["text"].as_str().unwrap().to_owned())
            .collect()
    }
}

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

async fn add_channel(server: &TestServer, url: &str) -> i64 {
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/channels",
            Some(json!({ "name": "Team chat", "config": { "kind": "slack", "webhook_url": url } })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["channel"]["id"].as_i64().unwrap()
}

async fn add_rule(server: &TestServer, name: &str, condition: Value, channel: i64) -> i64 {
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/rules",
            Some(json!({ "name": name, "condition": condition, "channels": [channel] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["rule"]["id"].as_i64().unwrap()
}

/// Reports the subscription's 5-hour window at `percent`, as a device
/// whose request's reply carried the headers.
struct Reporter<'a> {
    server: &'a TestServer,
    token: String,
    next: u32,
}

impl Reporter<'_> {
    async fn report(&mut self, percent: f64, resets_at: Timestamp) {
        self.next += 1;
        let now = self.server.clock.now();
        let id = format!("92000000-0000-4000-8000-{:012}", self.next);
        let mut event = request_event(&id, &now.to_string(), "claude-sonnet-4-5", "t", false, 10);
        event["account"] = json!(ACCOUNT);
        event["utilization"] = json!({
            "observed_at": now,
            "windows": { "5h": { "utilization": percent / 100.0, "resets_at": resets_at } },
        });
        let (status, body) = self
            .server
            .agent(&self.token, "/events", json!({ "events": [event] }))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// Waits until the receiver holds `count` messages, then a moment more to
/// see that no other arrives.
async fn settled(receiver: &SlackReceiver, count: usize) -> Vec<String> {
    eventually(WAIT, || async {
        (receiver.texts().len() >= count).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let texts = receiver.texts();
    assert_eq!(texts.len(), count, "{texts:#?}");
    texts
}

#[tokio::test]
async fn thresholds_fire_once_rearm_below_and_respect_the_cooldown() {
    let server = start().await;
    let (receiver, url) = SlackReceiver::start(1).await;
    let channel = add_channel(&server, &url).await;
    add_rule(
        &server,
        "5h at 90",
        json!({ "type": "utilization", "window": "five_hour", "threshold": 90 }),
        channel,
    )
    .await;
    let (_, token) = server.user_with_proxy("Ann", json!([])).await;
    let resets = server.clock.now() + SignedDuration::from_hours(3);
    let mut device = Reporter {
        server: &server,
        token,
        next: 0,
    };

    device.report(50.0, resets).await;
    device.report(91.0, resets).await;
    let texts = settled(&receiver, 1).await;
    assert!(texts[0].contains("5-hour window at 91 %"), "{texts:?}");
    // The receiver failed once: two attempts are logged, the first failed.
    let log = eventually(WAIT, || async {
        let (_, log) = server.admin_get("/api/admin/alerts/log").await;
        (log["deliveries"].as_array().unwrap().len() >= 2).then_some(log)
    })
    .await;
    let deliveries = log["deliveries"].as_array().unwrap();
    assert_eq!(deliveries[0]["ok"], true, "{log}");
    assert_eq!(deliveries[1]["ok"], false, "{log}");
    assert!(
        deliveries[1]["detail"].as_str().unwrap().contains("500"),
        "{log}"
    );

    device.report(95.0, resets).await;
    settled(&receiver, 1).await;
    device.report(87.0, resets).await;
    device.report(92.0, resets).await;
    settled(&receiver, 1).await;
    // Five points below re-arms; within the 4-hour cooldown it still waits.
    device.report(84.0, resets).await;
    device.report(93.0, resets).await;
    settled(&receiver, 1).await;
    server.clock.advance(SignedDuration::from_hours(4));
    let later = server.clock.now() + SignedDuration::from_hours(3);
    device.report(93.0, later).await;
    let texts = settled(&receiver, 2).await;
    assert!(texts[1].contains("93 %"), "{texts:?}");
}

#[tokio::test]
async fn a_hit_and_its_reset_are_announced() {
    let server = start().await;
    let (receiver, url) = SlackReceiver::start(0).await;
    let channel = add_channel(&server, &url).await;
    add_rule(
        &server,
        "5h hit",
        json!({ "type": "window_hit", "window": "five_hour" }),
        channel,
    )
    .await;
    let (_, token) = server.user_with_proxy("Bo", json!([])).await;
    let resets = server.clock.now() + SignedDuration::from_hours(1);
    let mut device = Reporter {
        server: &server,
        token,
        next: 0,
    };
    device.report(100.0, resets).await;
    let texts = settled(&receiver, 1).await;
    assert!(texts[0].contains("5-hour limit hit"), "{texts:?}");
    // The window passes; the next observation shows the new one.
    server.clock.advance(SignedDuration::from_mins(61));
    device
        .report(2.0, server.clock.now() + SignedDuration::from_hours(5))
        .await;
    let texts = settled(&receiver, 2).await;
    assert!(texts[1].contains("5-hour window reset"), "{texts:?}");
}

#[tokio::test]
async fn channel_secrets_are_sealed_never_returned_and_kept_across_edits() {
    let server = start().await;
    let (receiver, url) = SlackReceiver::start(0).await;
    let channel = add_channel(&server, &url).await;

    let (_, listed) = server.admin_get("/api/admin/alerts/channels").await;
    let config = &listed["channels"][0]["config"];
    assert_eq!(config["kind"], "slack");
    assert_ne!(config["webhook_url"], url.as_str(), "{listed}");
    assert!(!listed.to_string().contains("T000/B000"), "{listed}");

    // A rename that sends the redacted settings back keeps the secret.
    let (status, body) = server
        .admin_json(
            Method::PUT,
            &format!("/api/admin/alerts/channels/{channel}"),
            Some(json!({ "name": "Ops chat", "config": config })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, tested) = server
        .admin_json(
            Method::POST,
            &format!("/api/admin/alerts/channels/{channel}/test"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["ok"], true, "{tested}");
    assert!(receiver.texts()[0].contains("Test alert from ccgate"));

    // At rest the settings are sealed: the URL is nowhere in the file.
    let on_sqlite = common::on_sqlite("channel settings sealed at rest");
    let (db, wal) = if on_sqlite {
        let dir = server.data_dir();
        let wal = std::fs::read(dir.join("ccgate.db-wal")).unwrap_or_default();
        (std::fs::read(dir.join("ccgate.db")).unwrap(), wal)
    } else {
        (Vec::new(), Vec::new())
    };
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(9).any(|w| w == b"T000/B000"),
            "the webhook URL is stored in the clear"
        );
    }

    // A plain-http URL off loopback is refused.
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/channels",
            Some(json!({ "name": "bad", "config": { "kind": "slack", "webhook_url": "http://hooks.example.com/x" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn a_kill_raises_the_default_alert_and_rule_changes_apply_at_once() {
    let server = start().await;
    let (receiver, url) = SlackReceiver::start(0).await;
    let channel = add_channel(&server, &url).await;
    let (status, body) = server.admin_get("/api/admin/alerts/rules").await;
    assert_eq!(status, StatusCode::OK);
    let kill = body["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["condition"]["type"] == "kill")
        .expect("a default kill rule")
        .clone();
    // Route the default rule to the channel: no restart needed.
    let (status, body) = server
        .admin_json(
            Method::PUT,
            &format!("/api/admin/alerts/rules/{}", kill["id"]),
            Some(json!({ "name": kill["name"], "condition": kill["condition"], "channels": [channel] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (user, _) = server.user_with_proxy("Cy", json!([])).await;
    server.set_status(user, "killed").await;
    let texts = settled(&receiver, 1).await;
    assert!(
        texts[0].contains("Cy was stopped with the kill switch"),
        "{texts:?}"
    );
    let (_, log) = server.admin_get("/api/admin/alerts/log").await;
    assert!(
        log["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|alert| alert["title"] == "Cy was stopped with the kill switch"),
        "{log}"
    );

    // Bad rules are refused with a reason.
    let (status, body) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/rules",
            Some(json!({ "name": "x", "condition": { "type": "utilization", "window": "five_hour", "threshold": 0 } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server
        .admin_json(
            Method::POST,
            "/api/admin/alerts/rules",
            Some(json!({ "name": "x", "condition": { "type": "kill" }, "channels": [999] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn wait_for_title(server: &TestServer, wanted: &str) -> Vec<String> {
    eventually(WAIT, || async {
        let titles = server.alert_titles().await;
        titles.iter().any(|t| t.contains(wanted)).then_some(titles)
    })
    .await
}

#[tokio::test]
async fn a_refused_team_credential_a_silent_device_and_an_ageing_login_raise_alerts() {
    let mut server = start().await;
    let team = server
        .create_subscription(
            "Team Max",
            "sk-ant-oat01-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI-8oKtYrWn-wxyz",
        )
        .await;
    let (user, token) = server.user_with_proxy("Di", json!([])).await;
    let (status, body) = server
        .put_user(user, json!({ "subscription_id": team }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Anthropic answers 401 to a request sent with the team's credential.
    let mut refused = request_event(
        "94000000-0000-4000-8000-000000000001",
        &server.clock.now().to_string(),
        "claude-opus-4-5",
        "t",
        false,
        0,
    );
    refused["status"] = json!(401);
    refused["outcome"] = json!("upstream_error");
    refused["credential"] = json!("team");
    let (status, body) = server
        .agent(&token, "/events", json!({ "events": [refused] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_title(&server, "Anthropic refuses the credential of Team Max").await;

    // A day without a word from the device (the default rule: 24 hours).
    server.clock.advance(SignedDuration::from_hours(25));
    wait_for_title(&server, "has been silent for 24 hours").await;

    // The login was enrolled "now"; 340 days on it is within 30 days of a year.
    server.clock.advance(SignedDuration::from_hours(24 * 340));
    server.relogin().await;
    let titles = wait_for_title(&server, "The credential of Team Max expires in about").await;
    let silent = titles.iter().filter(|t| t.contains("silent")).count();
    assert_eq!(silent, 1, "a standing condition fires once: {titles:#?}");
}
