//! The real Claude Code CLI (npm `@anthropic-ai/claude-code`, pinned in
//! `tests/npm`), run with a temp HOME and project and only the environment a
//! managed install would give it (plus whatever a test puts in the person's
//! shell). It never reaches the internet: nonessential traffic and the
//! auto-updater are off, and the proxy a test starts refuses other hosts.
//!
//! With [`ClaudeCli::with_managed_settings`], every run of the CLI happens
//! in a private mount namespace whose `/etc` is an overlay (upper dir on a
//! private tmpfs) holding the given file at the real
//! `/etc/claude-code/managed-settings.json`; the real `/etc` is never
//! written. If the namespace cannot be made, the run fails and says why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

/// Where Claude Code reads machine-wide managed settings on Linux.
pub const MANAGED_SETTINGS_PATH: &str = "/etc/claude-code/managed-settings.json";

/// The API key every run gets unless a test changes it.
pub const TEST_API_KEY: &str = "sk-ant-api03-ccgate-test-key";

/// Exit code of the namespace script when it could not set up `/etc`.
const NAMESPACE_FAILED: i32 = 97;

/// Runs as `sh -c SCRIPT sh MOUNTPOINT SETTINGS PROGRAM ARGS…` inside
/// `unshare -m --propagation private`.
const NAMESPACE_SCRIPT: &str = r#"
fail() { echo "ccgate-tests: cannot put managed settings at /etc/claude-code/managed-settings.json in a private mount namespace: $1" >&2; exit 97; }
T=$1; F=$2; shift 2
mount -t tmpfs ccgate-tests "$T" || fail "mount -t tmpfs on $T failed"
mkdir -p "$T/u" "$T/w" || fail "mkdir in $T failed"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$T/u,workdir=$T/w" /etc || fail "the overlay on /etc failed"
mkdir -p /etc/claude-code || fail "mkdir /etc/claude-code failed"
cp "$F" /etc/claude-code/managed-settings.json || fail "copying $F failed"
cmp -s "$F" /etc/claude-code/managed-settings.json || fail "the file at /etc/claude-code does not hold $F"
exec "$@"
"#;

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

impl CliRun {
    /// stdout and stderr together: what the person sees.
    pub fn shown(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A managed-settings file to be shown at the real path in a private mount
/// namespace.
struct ManagedEtc {
    dir: tempfile::TempDir,
}

impl ManagedEtc {
    fn new(settings: &[u8]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for managed settings");
        std::fs::write(dir.path().join("managed-settings.json"), settings)
            .expect("write managed settings");
        std::fs::create_dir(dir.path().join("mnt")).expect("mount point");
        let etc = Self { dir };
        etc.check();
        etc
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("managed-settings.json")
    }

    fn mount_point(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// The argv prefix that runs a program with the file at the real path.
    fn wrap(&self) -> Vec<String> {
        vec![
            "unshare".into(),
            "-m".into(),
            "--propagation".into(),
            "private".into(),
            "/bin/sh".into(),
            "-c".into(),
            NAMESPACE_SCRIPT.into(),
            "sh".into(),
            self.mount_point().display().to_string(),
            self.file().display().to_string(),
        ]
    }

    /// Makes the namespace once with `cat` of the file; fails the test with
    /// the reason when it cannot be made (no silent fallback).
    fn check(&self) {
        let mut argv = self.wrap();
        argv.extend(["cat".into(), MANAGED_SETTINGS_PATH.into()]);
        let output = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .output();
        let output = match output {
            Ok(output) => output,
            Err(error) => panic!(
                "cannot run unshare to put managed settings at {MANAGED_SETTINGS_PATH} in a private mount namespace: {error}"
            ),
        };
        let expected = std::fs::read(self.file()).unwrap();
        assert!(
            output.status.success() && output.stdout == expected,
            "cannot put managed settings at {MANAGED_SETTINGS_PATH} in a private mount namespace \
             (needs root and mount namespaces with tmpfs and overlayfs): exit {:?}, {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

pub struct ClaudeCli {
    binary: PathBuf,
    home: tempfile::TempDir,
    project: tempfile::TempDir,
    env: Vec<(String, String)>,
    api_key: Option<String>,
    managed: Option<ManagedEtc>,
}

impl ClaudeCli {
    /// A CLI whose traffic goes through the proxy at `proxy`, trusting `ca`.
    pub fn through_proxy(proxy: SocketAddr, ca: &Path) -> Self {
        Self::with_env(proxy_env(proxy, ca))
    }

    /// A CLI with exactly `env` on top of a minimal base environment.
    pub fn with_env(env: Vec<(String, String)>) -> Self {
        Self {
            binary: claude_binary(),
            home: tempfile::tempdir().expect("temp HOME"),
            project: tempfile::tempdir().expect("temp project"),
            env,
            api_key: Some(TEST_API_KEY.to_owned()),
            managed: None,
        }
    }

    /// A CLI run with `settings` at the real managed-settings path (see the
    /// module doc) and `shell` as the person's own environment on top of the
    /// minimal base. Panics, saying why, if the namespace cannot be made.
    pub fn with_managed_settings(settings: &[u8], shell: Vec<(String, String)>) -> Self {
        let mut cli = Self::with_env(shell);
        cli.managed = Some(ManagedEtc::new(settings));
        cli
    }

    /// Managed settings as setup writes them (`ccgate_env` merged into an
    /// empty file) for a proxy at `proxy` with the machine CA `ca`.
    pub fn setup_managed_settings(proxy: SocketAddr, ca: &Path) -> Vec<u8> {
        let env = ccgate_proxy::guard::settings::ccgate_env(proxy, ca);
        ccgate_proxy::guard::settings::merge(None, &env).expect("managed settings merge")
    }

    /// Sets (or, with `None`, leaves out) `ANTHROPIC_API_KEY`.
    pub fn set_api_key(&mut self, key: Option<&str>) {
        self.api_key = key.map(str::to_owned);
    }

    /// Adds a variable to the person's environment.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn project(&self) -> &Path {
        self.project.path()
    }

    /// Whether runs see managed settings at the real path.
    pub fn has_managed_settings(&self) -> bool {
        self.managed.is_some()
    }

    /// The process environment of a run (`term` is `TERM`).
    fn environment(&self, term: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), self.home().display().to_string()),
            ("TERM".to_owned(), term.to_owned()),
            (
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
                "1".to_owned(),
            ),
            ("DISABLE_AUTOUPDATER".to_owned(), "1".to_owned()),
        ];
        if let Some(key) = &self.api_key {
            env.push(("ANTHROPIC_API_KEY".to_owned(), key.clone()));
        }
        for (name, value) in &self.env {
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), value.clone()));
        }
        env
    }

    /// The argv of a run: the CLI with `args`, wrapped in the namespace
    /// when managed settings are set.
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = self
            .managed
            .as_ref()
            .map(ManagedEtc::wrap)
            .unwrap_or_default();
        argv.push(self.binary.display().to_string());
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// Runs `claude -p PROMPT ARGS…` and waits (at most two minutes).
    pub async fn print(&self, prompt: &str, args: &[&str]) -> CliRun {
        let mut all = vec!["-p", prompt];
        all.extend_from_slice(args);
        self.run(&all).await
    }

    /// Runs `claude ARGS…` without a terminal and waits (at most two minutes).
    pub async fn run(&self, args: &[&str]) -> CliRun {
        let argv = self.argv(args);
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .current_dir(self.project.path())
            .env_clear()
            .envs(self.environment("dumb"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().expect("start claude");
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("claude finished within two minutes")
            .expect("claude ran");
        let run = CliRun {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert!(
            !(self.managed.is_some() && run.code == Some(NAMESPACE_FAILED)),
            "{}",
            run.stderr
        );
        run
    }

    /// A shell command line that runs `claude ARGS…` with exactly this
    /// CLI's environment (for a terminal: `TERM=xterm-256color`), inside the
    /// namespace when managed settings are set.
    pub fn shell_command(&self, args: &[&str]) -> String {
        let env: Vec<String> = self
            .environment("xterm-256color")
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(v)))
            .collect();
        let argv: Vec<String> = self.argv(args).iter().map(|a| shell_quote(a)).collect();
        format!("env -i {} {}", env.join(" "), argv.join(" "))
    }

    /// A shell script that starts [`Self::shell_command`] in the project
    /// directory, then says how the CLI exited and waits, so the last
    /// screen (and, when the namespace cannot be made, the reason) stays
    /// readable.
    pub fn launcher(&self, args: &[&str]) -> String {
        format!(
            "cd {} || exit 1\n{}\ncode=$?\necho \"[claude exited with $code]\"\nsleep 600\n",
            shell_quote(&self.project().display().to_string()),
            self.shell_command(args)
        )
    }

    /// Writes `~/.claude.json` so an interactive session starts at the
    /// prompt: onboarding done, the project trusted, the test key approved.
    pub fn seed_interactive_config(&self) {
        let project = self.project().display().to_string();
        let mut config = json!({
            "hasCompletedOnboarding": true,
            "theme": "dark",
            "numStartups": 5,
            "projects": {
                project: {"hasTrustDialogAccepted": true, "hasCompletedProjectOnboarding": true}
            },
        });
        if let Some(key) = &self.api_key {
            let tail: String = key
                .chars()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            config["customApiKeyResponses"] = json!({"approved": [tail], "rejected": []});
        }
        let path = self.home().join(".claude.json");
        let mut existing: Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| json!({}));
        for (k, v) in config.as_object().unwrap() {
            existing[k] = v.clone();
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&existing).unwrap())
            .expect("write ~/.claude.json");
    }

    /// Every session transcript (`~/.claude/projects/*/SESSION.jsonl`).
    pub fn transcripts(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.home().join(".claude/projects")) else {
            return out;
        };
        for dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                if file.path().extension().is_some_and(|e| e == "jsonl") {
                    out.push(file.path());
                }
            }
        }
        out.sort();
        out
    }

    /// The entries of session `session_id`'s transcript, in order.
    pub fn transcript(&self, session_id: &str) -> Vec<Value> {
        let path = self
            .transcripts()
            .into_iter()
            .find(|p| p.file_stem().is_some_and(|s| s == session_id))
            .unwrap_or_else(|| panic!("no transcript for session {session_id}"));
        std::fs::read_to_string(&path)
            .expect("read transcript")
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The `uuid`s of the assistant entries of a session's transcript whose
    /// text contains `text`, in order (what `--resume-session-at` takes).
    pub fn assistant_uuids(&self, session_id: &str, text: &str) -> Vec<String> {
        self.transcript(session_id)
            .iter()
            .filter(|e| e["type"] == "assistant")
            .filter(|e| e["message"]["content"].to_string().contains(text))
            .filter_map(|e| e["uuid"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The proxy variables and CA a managed install gives the CLI.
pub fn proxy_env(proxy: SocketAddr, ca: &Path) -> Vec<(String, String)> {
    let proxy_url = format!("http://{proxy}");
    let mut env = Vec::new();
    for name in ccgate_proxy::guard::settings::PROXY_VARIABLES {
        env.push((name.to_owned(), proxy_url.clone()));
    }
    env.push(("NODE_EXTRA_CA_CERTS".into(), ca.display().to_string()));
    env
}

/// `value` quoted for `sh`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
