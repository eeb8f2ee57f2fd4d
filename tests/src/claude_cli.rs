//! The real Claude Code CLI (npm `@anthropic-ai/claude-code`, pinned in
//! `tests/npm`), run with a temp HOME and only the environment a managed
//! install would give it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The pinned CLI, installed by `scripts/test.sh` (`npm ci --prefix tests/npm`).
pub fn claude_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CCGATE_CLAUDE_BIN") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("npm/node_modules/.bin/claude");
    assert!(
        path.exists(),
        "the Claude Code CLI is not installed at {}: run `npm ci --prefix tests/npm` (scripts/test.sh does it)",
        path.display()
    );
    path
}

#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub struct ClaudeCli {
    binary: PathBuf,
    home: tempfile::TempDir,
    project: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl ClaudeCli {
    /// A CLI whose traffic goes through the proxy at `proxy`, trusting `ca`.
    pub fn through_proxy(proxy: SocketAddr, ca: &Path) -> Self {
        let proxy_url = format!("http://{proxy}");
        let mut env = Vec::new();
        for name in ccgate_proxy::guard::settings::PROXY_VARIABLES {
            env.push((name.to_owned(), proxy_url.clone()));
        }
        env.push(("NODE_EXTRA_CA_CERTS".into(), ca.display().to_string()));
        Self::with_env(env)
    }

    /// A CLI with exactly `env` on top of a minimal base environment.
    pub fn with_env(env: Vec<(String, String)>) -> Self {
        Self {
            binary: claude_binary(),
            home: tempfile::tempdir().expect("temp HOME"),
            project: tempfile::tempdir().expect("temp project"),
            env,
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs `claude -p PROMPT ARGS…` and waits (at most two minutes).
    pub async fn print(&self, prompt: &str, args: &[&str]) -> CliRun {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .arg("-p")
            .arg(prompt)
            .args(args)
            .current_dir(self.project.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("TERM", "dumb")
            .env("ANTHROPIC_API_KEY", "sk-ant-api03-ccgate-test-key")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("start claude");
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("claude finished within two minutes")
            .expect("claude ran");
        CliRun {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
