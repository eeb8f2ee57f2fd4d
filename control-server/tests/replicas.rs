//! Two replicas of the server on one PostgreSQL database: what is changed
//! through one reaches the other's dashboards, devices and decisions.

mod common;

use std::time::Duration;

use ccgate_quota::seal::SealKey;
use ccgate_server::ServerConfig;
use ccgate_server::config::Database;
use common::postgres::Postgres;
use common::{TestServer, eventually, next_of};
use reqwest::StatusCode;
use serde_json::json;

const KEY: &str = "8f14e45fceea167a5a36dedd4bea2543c9f0f895fb98ab9159f51fd0297e236d";
const WAIT: Duration = Duration::from_secs(10);

/// A replica on database `url` (a temp dir of its own, the shared key),
/// as `tweak` adjusts it.
async fn replica_with(url: &str, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    TestServer::start_with(|config| {
        config.database = Database::postgres(url);
        config.secret_key = Some(SealKey::from_hex(KEY).unwrap());
        tweak(config);
    })
    .await
}

/// Waits until `server` knows the machine of `token` (registered through
/// another replica).
async fn known_on(server: &TestServer, token: &str) {
    eventually(WAIT, || async {
        let (status, _) = server.agent(token, "/sync", json!({})).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
}

/// A cluster of its own and two replicas on one fresh database in it; the
/// cluster lives as long as the caller keeps it.
async fn two_replicas(tweak: impl Fn(&mut ServerConfig)) -> (Postgres, TestServer, TestServer) {
    let postgres = Postgres::start().await;
    let url = postgres.create_database("ccgate").await;
    let a = replica_with(&url, &tweak).await;
    let b = replica_with(&url, &tweak).await;
    (postgres, a, b)
}

#[tokio::test]
async fn a_change_through_one_replica_reaches_the_other() {
    let (_postgres, a, b) = two_replicas(|_| {}).await;
    let ws = format!(
        "{}/ws?token={}",
        b.url.replace("http://", "ws://"),
        b.admin_token
    );
    let (mut dashboard_b, _) = tokio_tungstenite::connect_async(ws).await.unwrap();

    // A person made through A: B's dashboard hears of it, B knows them.
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 5 }]);
    let (user_id, code) = a.create_user("Ann", limits).await;
    let created = next_of(&mut dashboard_b, "user_created").await;
    assert_eq!(created["userId"], user_id);
    let on_b = eventually(WAIT, || async {
        let (status, body) = b.admin_get(&format!("/api/admin/users/{user_id}")).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(on_b["user"]["name"], "Ann");

    // The code A made registers a machine through B; checks pass there.
    let (device_id, token, _) = b.register_proxy(&code, "ann-laptop").await;
    assert!(b.allowed(&token, "t:1", "claude-opus-4-5").await);

    // New limits through A hold on B: the one opus prompt is used.
    let zero = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 1 }]);
    let (status, body) = a.put_user(user_id, json!({ "limits": zero })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A new turn each try: a repeated turn keeps its first answer.
    let turns = std::sync::atomic::AtomicU32::new(2);
    eventually(WAIT, || async {
        let turn = format!(
            "t:{}",
            turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        (!b.allowed(&token, &turn, "claude-opus-4-5").await).then_some(())
    })
    .await;

    // Team settings changed through A reach B.
    let (status, body) = a.put_settings(json!({ "team_name": "Replicated" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually(WAIT, || async {
        let (_, settings) = b.admin_get("/api/admin/settings").await;
        (settings["settings"]["team_name"] == "Replicated").then_some(())
    })
    .await;

    // A device revoked through A stops working on B.
    let status = a
        .admin_delete(&format!("/api/admin/devices/{device_id}"))
        .await;
    assert!(status.is_success(), "{status}");
    eventually(WAIT, || async {
        let (status, _) = b.agent(&token, "/sync", json!({})).await;
        (status == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;

    a.stop().await;
    b.stop().await;
}

/// The last prompt goes once whatever replica each check reaches: 50
/// checks at once, half through each replica, one prompt left.
#[tokio::test]
async fn fifty_checks_over_two_replicas_give_the_last_prompt_once() {
    let (_postgres, a, b) = two_replicas(|_| {}).await;
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 1 }]);
    let (_, code) = a.create_user("Bo", limits).await;
    let (_, token, _) = a.register_proxy(&code, "bo-laptop").await;
    // B knows the machine once A's registration reached it.
    known_on(&b, &token).await;

    let checks = (0..50).map(|i| {
        let (server, token) = (if i % 2 == 0 { &a } else { &b }, &token);
        async move {
            server
                .allowed(token, &format!("turn:{i}"), "claude-opus-4-5")
                .await
        }
    });
    let answers = futures_util::future::join_all(checks).await;
    let allowed = answers.iter().filter(|&&allowed| allowed).count();
    assert_eq!(allowed, 1, "the last prompt was given {allowed} times");

    a.stop().await;
    b.stop().await;
}

/// Event batches a device sends while one of two replicas is killed: each
/// batch goes to the replica whose turn it is (a load balancer's round
/// robin); one that gets no answer is sent again to the other, as the
/// proxy resends what it was not told was stored.
const SENDERS: usize = 4;
const BATCHES_PER_SENDER: usize = 30;
const EVENTS_PER_BATCH: usize = 10;

#[tokio::test]
async fn a_replica_killed_mid_load_loses_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let postgres = Postgres::start().await;
    let url = postgres.create_database("killed").await;
    let dir_a = tempfile::tempdir().unwrap();
    // A is the real binary, so it can be killed for real (SIGKILL: no
    // shutdown, no flushing); B runs in this process.
    let port = common::process::free_port();
    let mut a = common::process::server_binary(dir_a.path(), port, KEY)
        .env("DATABASE_URL", &url)
        .spawn()
        .unwrap();
    let a_url = format!("http://127.0.0.1:{port}");
    common::process::wait_healthy(&a_url).await;
    let b = replica_with(&url, |_| {}).await;
    let total = SENDERS * BATCHES_PER_SENDER * EVENTS_PER_BATCH;
    let limits =
        json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": total }]);
    let (user_id, code) = b.create_user("Cy", limits).await;
    let (device_id, token, _) = b.register_proxy(&code, "cy-laptop").await;
    let http = reqwest::Client::new();
    let send = |base: String, events: serde_json::Value| {
        let request = http
            .post(format!("{base}/api/agent/v1/events"))
            .bearer_auth(&token)
            .json(&json!({ "events": events }))
            .timeout(WAIT);
        async move {
            request
                .send()
                .await
                .is_ok_and(|response| response.status() == StatusCode::OK)
        }
    };
    // A knows the machine once B's registration reached it.
    eventually(WAIT, || async {
        let (status, _) = common::send(
            http.post(format!("{a_url}/api/agent/v1/sync"))
                .bearer_auth(&token)
                .json(&json!({})),
        )
        .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;

    let stored_by_a = AtomicUsize::new(0);
    let resent = AtomicUsize::new(0);
    let senders = (0..SENDERS).map(|sender| {
        let (send, stored_by_a, resent, a_url, b_url) =
            (&send, &stored_by_a, &resent, &a_url, &b.url);
        async move {
            for batch in 0..BATCHES_PER_SENDER {
                let events: Vec<_> = (0..EVENTS_PER_BATCH)
                    .map(|n| {
                        let id = format!(
                            "00000000-0000-4000-8000-{:04x}{:04x}{:04x}",
                            sender, batch, n
                        );
                        let turn = format!("t:{sender}:{batch}:{n}");
                        let at = jiff::Timestamp::now().to_string();
                        common::request_event(&id, &at, "claude-opus-4-5", &turn, true, 100)
                    })
                    .collect();
                let events = serde_json::Value::Array(events);
                let to_a = (sender + batch) % 2 == 0;
                let first = if to_a { a_url } else { b_url };
                if send(first.clone(), events.clone()).await {
                    if to_a {
                        stored_by_a.fetch_add(1, Ordering::SeqCst);
                    }
                    continue;
                }
                resent.fetch_add(1, Ordering::SeqCst);
                assert!(
                    send(b_url.clone(), events).await,
                    "the surviving replica refused a batch"
                );
            }
        }
    });
    let killer = async {
        // Mid-load: once A has stored a few batches, while the rest go on.
        eventually(WAIT, || async {
            (stored_by_a.load(Ordering::SeqCst) >= 8).then_some(())
        })
        .await;
        a.kill().unwrap();
    };
    futures_util::future::join(futures_util::future::join_all(senders), killer).await;
    a.wait().unwrap();
    assert!(
        resent.load(Ordering::SeqCst) > 0,
        "no batch was in flight or left for A when it was killed"
    );

    // Every event is stored once, and counted once in the running totals
    // the checks read.
    let db = postgres.connect("killed").await;
    let row = db
        .query_one(
            "SELECT count(*), COALESCE(sum(prompts), 0)::BIGINT FROM events
             WHERE device_id = $1 AND type = 'request'",
            &[&device_id],
        )
        .await
        .unwrap();
    let (stored, prompts): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(stored as usize, total, "events stored");
    assert_eq!(prompts as usize, total, "prompts stored");
    let running: i64 = db
        .query_one(
            "SELECT prompts FROM usage_running WHERE user_id = $1 AND family = 'opus'
             ORDER BY bucket DESC LIMIT 1",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(running as usize, total, "prompts in the running totals");
    // The survivor decides from all of them: the day's prompts are used.
    assert!(!b.allowed(&token, "t:after", "claude-opus-4-5").await);
    b.stop().await;
}

#[tokio::test]
async fn one_replica_raises_an_alert_and_another_takes_over_when_it_stops() {
    let (_postgres, a, b) = two_replicas(|_| {}).await;

    // A kill through B: both replicas hear of it, the alert is raised once.
    let (user, _) = b.create_user("Cy", json!([])).await;
    b.set_status(user, "killed").await;
    let wanted = "Cy was stopped with the kill switch";
    eventually(WAIT, || async {
        a.alert_titles()
            .await
            .iter()
            .any(|t| t == wanted)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let raised = b.alert_titles().await;
    let times = raised.iter().filter(|t| *t == wanted).count();
    assert_eq!(times, 1, "{raised:?}");

    // The replica that led stops: the other one raises the next alerts.
    a.stop().await;
    let mut taken_over = false;
    for attempt in 0..30 {
        let name = format!("Dee {attempt}");
        let (user, _) = b.create_user(&name, json!([])).await;
        b.set_status(user, "killed").await;
        let wanted = format!("{name} was stopped with the kill switch");
        tokio::time::sleep(Duration::from_millis(500)).await;
        if b.alert_titles().await.contains(&wanted) {
            taken_over = true;
            break;
        }
    }
    assert!(
        taken_over,
        "no replica raised alerts after the leader stopped"
    );
    b.stop().await;
}

/// Stores through `server` the event of an Opus prompt of turn `turn`
/// that counted, sent now.
async fn store_opus_prompt(server: &TestServer, token: &str, event_id: &str, turn: &str) {
    let now = jiff::Timestamp::now().to_string();
    let event = common::request_event(event_id, &now, "claude-opus-4-5", turn, true, 100);
    let (status, body) = server
        .agent(token, "/events", json!({ "events": [event] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn usage_stored_through_one_replica_shows_on_the_other() {
    let (_postgres, a, b) = two_replicas(|_| {}).await;
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 5 }]);
    let (user_id, code) = a.create_user("Eli", limits).await;
    let (_, token, _) = a.register_proxy(&code, "eli-laptop").await;
    known_on(&b, &token).await;

    // A check through B holds the prompt there; its event, stored through
    // A, counts on B and settles B's hold.
    assert!(b.allowed(&token, "t:1", "claude-opus-4-5").await);
    assert_eq!(b.user(user_id).await["pending_prompts"], 1);
    store_opus_prompt(&a, &token, "00000000-0000-4000-8000-0000000000e1", "t:1").await;
    let on_b = eventually(WAIT, || async {
        let user = b.user(user_id).await;
        (user["usage"]["opus"] == 1 && user["pending_prompts"] == 0).then_some(user)
    })
    .await;
    assert_eq!(on_b["usage"]["opus"], 1, "{on_b}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn usage_a_replica_missed_while_not_listening_shows_once_it_listens_again() {
    let (postgres, a, b) = two_replicas(|_| {}).await;
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 5 }]);
    let (user_id, code) = a.create_user("Eli", limits).await;
    let (_, token, _) = a.register_proxy(&code, "eli-laptop").await;
    known_on(&b, &token).await;

    // Every listening connection is cut (waiting until each is gone), so
    // the notice of the event stored next through A reaches nobody.
    let admin = postgres.connect("ccgate").await;
    let cut: i64 = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
             FROM pg_stat_activity WHERE application_name = 'ccgate live listener'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cut, 2);
    store_opus_prompt(&a, &token, "00000000-0000-4000-8000-0000000000e2", "t:2").await;
    assert_eq!(a.user(user_id).await["usage"]["opus"], 1);

    // B listens again by itself and reads the figures it may have missed.
    let on_b = eventually(WAIT, || async {
        let user = b.user(user_id).await;
        (user["usage"]["opus"] == 1).then_some(user)
    })
    .await;
    assert_eq!(on_b["usage"]["opus"], 1, "{on_b}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn failed_logins_through_one_replica_count_on_the_other() {
    let (_postgres, a, b) = two_replicas(|config| config.login_max_failures = 3).await;
    for server in [&a, &a, &b] {
        let response = server.login_response(None, "a wrong guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Three failures over both: the next try waits, on either replica,
    // even with the right password.
    eventually(WAIT, || async {
        let response = b.login_response(None, common::ADMIN_PASSWORD).await;
        (response.status() == StatusCode::TOO_MANY_REQUESTS).then_some(())
    })
    .await;
    let response = a.login_response(None, common::ADMIN_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    a.stop().await;
    b.stop().await;
}

/// A claude-code-limiter hook client's call to `path` with its token.
async fn hook(
    server: &TestServer,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, body) = common::send(
        server
            .request(reqwest::Method::POST, &format!("/api/v1{path}"))
            .bearer_auth(token)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A person with a hook client registered through `server`: id and token.
async fn hook_user(server: &TestServer, limits: serde_json::Value) -> (i64, String) {
    let (user_id, _) = server.create_user("Hook user", limits).await;
    let code = server.hook_code(user_id).await;
    let (status, body) = common::send(
        server
            .request(reqwest::Method::POST, "/api/v1/register")
            .json(&json!({ "code": code })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (user_id, body["auth_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn fifty_hook_checks_over_two_replicas_give_the_last_prompt_once() {
    let (_postgres, a, b) = two_replicas(|_| {}).await;
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 1 }]);
    let (_, token) = hook_user(&a, limits).await;
    eventually(WAIT, || async {
        let (status, _) = common::send(
            b.request(reqwest::Method::POST, "/api/v1/sync")
                .bearer_auth(&token)
                .json(&json!({})),
        )
        .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;

    let checks = (0..50).map(|i| {
        let (server, token) = (if i % 2 == 0 { &a } else { &b }, &token);
        async move {
            let body = json!({ "model": "opus", "session_id": format!("s{i}") });
            hook(server, token, "/check", body).await["allowed"] == true
        }
    });
    let answers = futures_util::future::join_all(checks).await;
    let allowed = answers.iter().filter(|&&allowed| allowed).count();
    assert_eq!(allowed, 1, "the last prompt was given {allowed} times");
}

#[tokio::test]
async fn a_hook_prompt_is_counted_once_by_the_replicas() {
    // Reservations lapse after a second: the leading replica counts them.
    let (_postgres, a, b) =
        two_replicas(|config| config.reservation_ttl = Duration::from_secs(1)).await;
    let (user_id, token) = hook_user(&a, json!([])).await;
    let body = json!({ "model": "sonnet", "session_id": "gone" });
    assert_eq!(hook(&a, &token, "/check", body).await["allowed"], true);
    // Claude was killed: no count ever arrives. The prompt is counted once,
    // and both replicas show it.
    for server in [&a, &b] {
        eventually(WAIT, || async {
            let user = server.user(user_id).await;
            (user["pending_prompts"] == 0 && user["usage"]["sonnet"] == 1).then_some(())
        })
        .await;
    }
    // Another sweep or two go by: still one.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stored = b.events(&format!("user_id={user_id}&type=request")).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["detail"]["settled"], "unreported");
    for server in [&a, &b] {
        assert_eq!(server.user(user_id).await["usage"]["sonnet"], 1);
    }

    // A session that checks again counts its previous prompt, through
    // either replica.
    let body = json!({ "model": "sonnet", "session_id": "kept" });
    assert_eq!(
        hook(&a, &token, "/check", body.clone()).await["allowed"],
        true
    );
    assert_eq!(hook(&b, &token, "/check", body).await["allowed"], true);
    let stored = b.events(&format!("user_id={user_id}&type=request")).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
}

#[tokio::test]
async fn a_token_rotated_through_one_replica_is_handed_over_by_the_other() {
    let (_postgres, a, b) = two_replicas(|_| {}).await;
    let limits = json!([{ "type": "per_model", "model": "opus", "window": "daily", "value": 5 }]);
    let (user_id, code) = a.create_user("Flo", limits).await;
    let (_, token, _) = a.register_proxy(&code, "flo-laptop").await;
    known_on(&b, &token).await;

    let (status, body) = a
        .admin_json(
            reqwest::Method::POST,
            &format!("/api/admin/users/{user_id}/rotate-tokens"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The device's next sync reaches B: B hands the new token over.
    let new_token = eventually(WAIT, || async {
        let (status, sync) = b.agent(&token, "/sync", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{sync}");
        sync["new_device_token"].as_str().map(str::to_owned)
    })
    .await;
    assert_ne!(new_token, token);
    let (status, _) = a.agent(&token, "/sync", json!({})).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old token works until the new one is used"
    );

    // Used through B: it is the only token, on both replicas.
    let (status, sync) = b.agent(&new_token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{sync}");
    eventually(WAIT, || async {
        let (old, _) = a.agent(&token, "/sync", json!({})).await;
        let (new, _) = a.agent(&new_token, "/sync", json!({})).await;
        (old == StatusCode::UNAUTHORIZED && new == StatusCode::OK).then_some(())
    })
    .await;
    let (status, _) = b.agent(&token, "/sync", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
