//! Team-credential mode through the real proxy and server: the
//! subscription's credential is enrolled at the server, fetched by the
//! device, and swapped in for the placeholder on the way to Anthropic; no
//! other credential passes, and a kill or pause stops the swap at once.

use std::time::Duration;

use ccgate_tests::client::{ProxyClient, Turn};
use ccgate_tests::eventually;
use ccgate_tests::machine::TestMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::{FakeAnthropic, Reply, Usage};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
const REAL: &str = "sk-ant-oat01-REAL-team-token-Zq4cRkT8vYw2mN7pL0sX9dF3hJ6gB1aE5uI";
const ROTATED: &str = "sk-ant-oat01-ROTATED-team-token-Hh3jKl9Pq2Rs8Tu4Vw6Xy0Za1Bc7De5";

struct Team {
    server: TestServer,
    upstream: FakeAnthropic,
    machine: TestMachine,
    proxy: ccgate_proxy::daemon::RunningDaemon,
    user_id: i64,
    subscription_id: i64,
}

impl Team {
    /// Alice on the team's subscription (opus, `per_day` prompts a day).
    async fn start(per_day: u64) -> Self {
        let server = TestServer::start().await;
        let upstream = FakeAnthropic::start().await;
        upstream.set_required_credential(Some(REAL));
        let created = server
            .post(
                "/subscriptions",
                json!({"name": "Team Max", "credential": REAL}),
            )
            .await;
        let subscription_id = created["subscription"]["id"].as_i64().unwrap();
        let limits =
            json!([{"type": "per_model", "model": "opus", "window": "daily", "value": per_day}]);
        let created = server
            .post(
                "/users",
                json!({"name": "Alice", "limits": limits, "subscription_id": subscription_id}),
            )
            .await;
        let user_id = created["user"]["id"].as_i64().unwrap();
        let code = created["install_code"].as_str().unwrap().to_owned();
        let machine = TestMachine::register(&server.url, &code).await;
        let proxy = machine.start_proxy(&upstream).await;
        let ready = eventually(WAIT, async || proxy.shared.vault.holds_secret()).await;
        assert!(ready, "the device never received the team credential");
        Self {
            server,
            upstream,
            machine,
            proxy,
            user_id,
            subscription_id,
        }
    }

    /// A client sending what managed settings give Claude Code.
    fn placeholder_client(&self) -> ProxyClient {
        self.client()
            .with_bearer(self.proxy.shared.vault.placeholder())
    }

    fn client(&self) -> ProxyClient {
        ProxyClient::new(self.proxy.address, &self.machine.paths.ca_cert())
    }

    async fn set_status(&self, status: &str) {
        self.server
            .put(
                &format!("/users/{}", self.user_id),
                json!({"status": status}),
            )
            .await;
        let applied = eventually(WAIT, async || {
            self.proxy
                .shared
                .policy()
                .is_some_and(|p| p.policy.status.as_str() == status)
        })
        .await;
        assert!(applied, "the device did not learn the user is {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_placeholder_becomes_the_team_credential_and_nothing_else_passes() {
    let team = Team::start(5).await;
    let client = team.placeholder_client();
    let answer = client.send(&Turn::prompt("s", 1, "say hi")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Claude Code's other calls get the credential too.
    let settings = client
        .get("https://api.anthropic.com/api/claude_code/settings")
        .await;
    assert_ne!(settings.status, 401, "{}", settings.body);
    // Calls that carry no credential go out without one.
    team.client()
        .without_credential()
        .get("https://api.anthropic.com/api/hello")
        .await;
    let seen = team.upstream.credentials_seen();
    assert_eq!(
        seen,
        [Some(REAL.to_owned()), Some(REAL.to_owned()), None],
        "Anthropic saw the team credential, never the placeholder"
    );

    // A copied login or a person's own key never leaves the machine.
    for own in [
        team.client()
            .with_bearer("sk-ant-oat01-copied-from-a-colleague"),
        team.client(),
    ] {
        let refused = own.send(&Turn::prompt("s", 2, "mine")).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(
            refused.error_message().contains("not one of your own"),
            "{}",
            refused.body
        );
    }
    assert_eq!(team.upstream.credentials_seen().len(), 3);
    assert!(ccgate_tests::settled(&team.proxy, WAIT).await);
    let blocked = team.server.events(team.user_id, "blocked").await;
    let reasons: Vec<&str> = blocked
        .iter()
        .filter_map(|e| e["detail"]["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["credential", "credential"], "{blocked:#?}");
    let requests = team.server.events(team.user_id, "request").await;
    assert_eq!(requests[0]["credential"], "team", "{requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_or_a_pause_stops_the_swap_at_once() {
    let team = Team::start(5).await;
    let client = team.placeholder_client();
    // A long reply is running when the admin pauses Alice.
    team.upstream.push_reply(Reply::slow_text(
        &"word ".repeat(200),
        Usage::new(40, 200, 0, 0),
        100,
        Duration::from_millis(100),
    ));
    let mut running = client.open(&Turn::prompt("s", 1, "a long story")).await;
    running.chunk().await.unwrap();
    team.set_status("paused").await;
    let mut rest = String::new();
    while let Ok(Some(chunk)) = running.chunk().await {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        rest.contains("ccgate stopped this reply: your ccgate admin paused"),
        "{rest}"
    );
    let paused = client.send(&Turn::prompt("s", 2, "hello?")).await;
    assert_eq!(paused.status, 400);
    assert!(
        paused
            .error_message()
            .contains("has paused your Claude Code access")
    );
    let side = client
        .get("https://api.anthropic.com/api/claude_code/settings")
        .await;
    assert_eq!(side.status, 403, "{}", side.body);

    team.set_status("active").await;
    assert_eq!(client.send(&Turn::prompt("s", 3, "back")).await.status, 200);
    team.set_status("killed").await;
    let killed = client.send(&Turn::prompt("s", 4, "again")).await;
    assert_eq!(killed.status, 400);
    assert!(
        killed
            .error_message()
            .contains("revoked your Claude Code access"),
        "{}",
        killed.body
    );
    assert!(killed.error_message().contains("restart Claude Code"));
    // Nothing with the placeholder reached Anthropic after the pause.
    assert!(
        team.upstream
            .credentials_seen()
            .iter()
            .all(|c| c.as_deref() == Some(REAL))
    );
    assert_eq!(team.upstream.messages_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reaches_the_device_and_the_cache_works_offline() {
    let team = Team::start(5).await;
    team.server
        .put(
            &format!("/subscriptions/{}", team.subscription_id),
            json!({"credential": ROTATED}),
        )
        .await;
    team.upstream.set_required_credential(Some(ROTATED));
    let fetched = eventually(WAIT, async || {
        !team.proxy.shared.vault.needs_fetch(
            &team
                .proxy
                .shared
                .policy()
                .map(|p| p.policy.credential)
                .unwrap_or_default(),
        ) && team.proxy.shared.policy().is_some_and(|p| {
            matches!(
                p.policy.credential,
                ccgate_quota::CredentialMode::TeamCredential { version: 2, .. }
            )
        })
    })
    .await;
    assert!(fetched, "the rotated credential did not reach the device");
    let client = team.placeholder_client();
    assert_eq!(client.send(&Turn::prompt("s", 1, "hi")).await.status, 200);
    assert_eq!(team.upstream.credentials_seen(), [Some(ROTATED.to_owned())]);
    assert!(ccgate_tests::settled(&team.proxy, WAIT).await);

    // The daemon restarts while the server is down: the sealed cache and the
    // last policy let it go on.
    let Team {
        server,
        upstream,
        machine,
        proxy,
        ..
    } = team;
    proxy.stop().await.unwrap();
    server.stop().await;
    let proxy = machine.start_proxy(&upstream).await;
    assert!(proxy.shared.vault.holds_secret());
    let client = ProxyClient::new(proxy.address, &machine.paths.ca_cert())
        .with_bearer(proxy.shared.vault.placeholder());
    let offline = client.send(&Turn::prompt("s", 2, "offline")).await;
    assert_eq!(offline.status, 200, "{}", offline.body);
    assert_eq!(
        upstream
            .credentials_seen()
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some(ROTATED)
    );
    // The cache on disk holds no readable secret.
    let state = machine.paths.state_dir();
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes
                    .windows(ROTATED.len())
                    .any(|w| w == ROTATED.as_bytes()),
                "{} holds the credential in the clear",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_api_keys_pass_only_when_the_team_allows_them() {
    let team = Team::start(5).await;
    let own_key = team.client();
    assert_eq!(
        own_key.send(&Turn::prompt("s", 1, "mine")).await.status,
        400
    );
    team.server
        .put("/settings", json!({"personal_api_keys": "allow"}))
        .await;
    let allowed = eventually(WAIT, async || {
        team.proxy
            .shared
            .policy()
            .is_some_and(|p| p.policy.personal_api_keys == ccgate_quota::PersonalApiKeys::Allow)
    })
    .await;
    assert!(allowed);
    team.upstream.set_required_credential(None);
    assert_eq!(
        own_key.send(&Turn::prompt("s", 2, "mine")).await.status,
        200
    );
    assert_eq!(
        team.upstream.credentials_seen(),
        [Some("sk-ant-test".to_owned())],
        "the person's own key went out as it was"
    );
    assert!(ccgate_tests::settled(&team.proxy, WAIT).await);
    let requests = team.server.events(team.user_id, "request").await;
    assert_eq!(requests[0]["credential"], "personal_api_key");
    assert_eq!(team.server.usage_today(team.user_id).await.prompts, 1);
}
