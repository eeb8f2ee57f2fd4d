//! One person on one machine, end to end: the real server in-process, a
//! user limited to a few opus prompts a day, a registered device with the
//! real proxy (refusing every host but the fake Anthropic), and the real
//! CLI with the managed settings setup writes at their real path.
//!
//! ```text
//! let scenario = Scenario::start(2).await;
//! let cli = scenario.cli(vec![("ANTHROPIC_CUSTOM_HEADERS".into(), "x: 1".into())]);
//! let run = cli.print("say hi", &[]).await;
//! assert_eq!(scenario.prompts_counted().await, 1);
//! ```

use std::time::Duration;

use ccgate_proxy::daemon::RunningDaemon;
use serde_json::json;

use crate::claude_cli::{ClaudeCli, proxy_env};
use crate::machine::TestMachine;
use crate::server::TestServer;
use crate::upstream::FakeAnthropic;

/// How long the proxy may take to get its policy and settle its events.
pub const SETTLE: Duration = Duration::from_secs(15);

pub struct Scenario {
    pub server: TestServer,
    pub upstream: FakeAnthropic,
    pub machine: TestMachine,
    pub proxy: RunningDaemon,
    pub user_id: i64,
    pub limit: u64,
}

impl Scenario {
    /// Alice, limited to `opus_per_day` opus prompts a day (the model the
    /// CLI uses with an API key), with her machine's proxy running.
    pub async fn start(opus_per_day: u64) -> Self {
        let server = TestServer::start().await;
        let upstream = FakeAnthropic::start().await;
        let limits = json!([{"type": "per_model", "model": "opus", "window": "daily", "value": opus_per_day}]);
        let (user_id, code) = server.create_user("Alice", limits).await;
        let machine = TestMachine::register(&server.url, &code).await;
        let proxy = machine.start_proxy(&upstream).await;
        assert!(
            crate::eventually(SETTLE, async || proxy.shared.policy().is_some()).await,
            "the proxy got no policy"
        );
        Self {
            server,
            upstream,
            machine,
            proxy,
            user_id,
            limit: opus_per_day,
        }
    }

    /// Changes team settings (`PUT /api/admin/settings`) and waits until the
    /// proxy's policy shows the change (`applied`).
    pub async fn change_settings(
        &self,
        settings: serde_json::Value,
        applied: impl Fn(&ccgate_quota::Policy) -> bool,
    ) {
        self.server.put("/settings", settings).await;
        let synced = crate::eventually(SETTLE, async || {
            self.proxy
                .shared
                .policy()
                .is_some_and(|p| applied(&p.policy))
        })
        .await;
        assert!(synced, "the proxy did not get the new settings");
    }

    /// The managed settings exactly as setup writes them for this machine.
    pub fn managed_settings(&self) -> Vec<u8> {
        ClaudeCli::setup_managed_settings(self.proxy.address, &self.machine.paths.ca_cert())
    }

    /// The CLI with setup's managed settings at the real path and `shell`
    /// as the person's own environment.
    pub fn cli(&self, shell: Vec<(String, String)>) -> ClaudeCli {
        ClaudeCli::with_managed_settings(&self.managed_settings(), shell)
    }

    /// The CLI without managed settings: the proxy variables and CA in its
    /// environment, then `shell` on top.
    pub fn cli_without_managed_settings(&self, shell: Vec<(String, String)>) -> ClaudeCli {
        let mut env = proxy_env(self.proxy.address, &self.machine.paths.ca_cert());
        env.extend(shell);
        ClaudeCli::with_env(env)
    }

    /// The block message of the used-up daily opus limit.
    pub fn limit_message(&self) -> String {
        format!(
            "Your daily opus limit is used up: {0} of {0} prompts today",
            self.limit
        )
    }

    /// The prompts the server counted today, once the proxy has handed it
    /// everything it saw.
    pub async fn prompts_counted(&self) -> u64 {
        assert!(
            crate::settled(&self.proxy, SETTLE).await,
            "the proxy did not settle its events with the server"
        );
        self.server.usage_today(self.user_id).await.prompts
    }

    /// `POST /v1/messages` requests the fake received.
    pub fn messages_sent(&self) -> usize {
        self.upstream.messages_requests().len()
    }
}
