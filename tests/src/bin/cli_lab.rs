//! A lab for looking at what the real CLI sends (a tool, not a test). It starts the real server, the fake upstream and the
//! real proxy, writes a launcher for the CLI with setup's managed settings
//! at the real path (or, with `LAB_MANAGED=0`, the proxy variables in its
//! environment), and dumps every request the fake receives, while a person
//! drives the CLI from a shell:
//!
//! ```sh
//! npm ci --prefix tests/npm   # the pinned CLI, once
//! LAB_DIR=/tmp/lab LAB_MINUTES=20 cargo run -p ccgate-tests --bin ccgate-cli-lab &
//! # once /tmp/lab/ready exists:
//! sh /tmp/lab/claude.sh -p "say hi"                       # a -p run
//! tmux -L lab new-session -d -s main -x 150 -y 45 "sh /tmp/lab/claude.sh --allowedTools Bash"
//! tmux -L lab send-keys -t main -l "please run slowly"; tmux -L lab send-keys -t main Enter
//! ls /tmp/lab/requests/                                   # 000.json, 001.json, …
//! rm /tmp/lab/ready                                       # ends the lab
//! ```
//!
//! Variables: `LAB_LIMIT` (opus prompts a day, default 50), `LAB_RESPONDER=loop`
//! (answer `/loop` with `ScheduleWakeup`), `LAB_MANAGED_EXTRA_ENV` (JSON
//! object merged into the managed `env`; the file is
//! `$LAB_DIR/managed-settings.json`, rewritten before each run by whoever
//! wants to change it), `LAB_SHELL_ENV` (JSON object: the person's shell).
//! Prompts containing "reply slowly" get a 10 s stream; "cut then refuse"
//! gets an SSE error, and its non-streaming retry a 400.

use std::path::PathBuf;
use std::time::Duration;

use ccgate_tests::claude_cli::ClaudeCli;
use ccgate_tests::scenario::Scenario;
use ccgate_tests::upstream::{Reply, Usage, default_responder, last_user_blocks, loop_responder};
use serde_json::{Value, json};

fn json_env(name: &str) -> serde_json::Map<String, Value> {
    std::env::var(name)
        .ok()
        .map(|v| serde_json::from_str(&v).expect("a JSON object"))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = PathBuf::from(std::env::var("LAB_DIR").unwrap_or_else(|_| "/tmp/ccgate-lab".into()));
    std::fs::create_dir_all(dir.join("requests")).unwrap();
    let limit = std::env::var("LAB_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let scenario = Scenario::start(limit).await;
    let looping = std::env::var("LAB_RESPONDER").as_deref() == Ok("loop");
    scenario.upstream.set_responder(move |body| {
        let last = Value::Array(last_user_blocks(body)).to_string();
        let usage = Usage::new(100, 10, 0, 0);
        if last.contains("reply slowly") {
            return Reply::slow_text(&"word ".repeat(40), usage, 40, Duration::from_millis(250));
        }
        if last.contains("cut then refuse") {
            if body["stream"] == true {
                return Reply::MidStreamError { usage };
            }
            return Reply::Error {
                status: 400,
                kind: "invalid_request_error".into(),
                message: "the lab refuses the retry".into(),
            };
        }
        if looping {
            loop_responder(body)
        } else {
            default_responder(body)
        }
    });
    let shell: Vec<(String, String)> = json_env("LAB_SHELL_ENV")
        .into_iter()
        .map(|(k, v)| (k, v.as_str().expect("string values").to_owned()))
        .collect();
    let cli = if std::env::var("LAB_MANAGED").as_deref() == Ok("0") {
        scenario.cli_without_managed_settings(shell)
    } else {
        let mut settings: Value = serde_json::from_slice(&scenario.managed_settings()).unwrap();
        for (k, v) in json_env("LAB_MANAGED_EXTRA_ENV") {
            settings["env"][k] = v;
        }
        std::fs::write(dir.join("managed.json"), settings.to_string()).unwrap();
        ClaudeCli::with_managed_settings(settings.to_string().as_bytes(), shell)
    };
    cli.seed_interactive_config();
    std::fs::write(
        dir.join("claude.sh"),
        format!(
            "cd '{}' || exit 1\n{} \"$@\"\n",
            cli.project().display(),
            cli.shell_command(&[])
        ),
    )
    .unwrap();
    std::fs::write(dir.join("home"), cli.home().display().to_string()).unwrap();
    std::fs::write(dir.join("ready"), "").unwrap();
    let minutes: u64 = std::env::var("LAB_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(minutes * 60);
    let mut written = 0;
    while tokio::time::Instant::now() < deadline && dir.join("ready").exists() {
        let requests = scenario.upstream.requests();
        for (i, r) in requests.iter().enumerate().skip(written) {
            let headers: serde_json::Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                .collect();
            let dump = json!({"method": r.method, "path": r.path, "headers": headers,
                "body": r.json(), "reply": format!("{:?}", r.reply)});
            std::fs::write(
                dir.join(format!("requests/{i:03}.json")),
                serde_json::to_string_pretty(&dump).unwrap(),
            )
            .unwrap();
        }
        written = requests.len();
        let usage = scenario.server.usage_today(scenario.user_id).await;
        std::fs::write(dir.join("usage"), format!("{usage:?}\n")).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
