//! A terminal for interactive programs: a tmux server on its own socket
//! (`tmux -L NAME`, one per test), one session in it, keys sent with
//! `send-keys` and the screen read with `capture-pane`. The server and every
//! process in it are killed when the value is dropped, also while a test
//! panics. Every wait is bounded and fails with the screen it last saw.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static NEXT: AtomicU64 = AtomicU64::new(0);

pub struct Tmux {
    socket: String,
    target: String,
    _dir: tempfile::TempDir,
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        // The socket file stays behind after kill-server on some versions.
        let uid = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap_or(0);
        let dir = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
        let _ = std::fs::remove_file(format!("{dir}/tmux-{uid}/{}", self.socket));
    }
}

impl Tmux {
    /// Starts `script` (a shell script's text, run by `/bin/sh`) in a new
    /// detached session of `width` × `height`, on a tmux server of its own.
    pub fn start(script: &str, width: u16, height: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the terminal");
        let path = dir.path().join("launch.sh");
        std::fs::write(&path, script).expect("write the launch script");
        let socket = format!(
            "ccgate-tests-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let tmux = Self {
            socket,
            target: "main".into(),
            _dir: dir,
        };
        let command = format!("/bin/sh {}", path.display());
        let (width, height) = (width.to_string(), height.to_string());
        let output = tmux.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &width,
            "-y",
            &height,
            &command,
            ";",
            "set-option",
            "-g",
            "history-limit",
            "20000",
        ]);
        assert!(
            output.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        tmux
    }

    /// The `-L` socket name of this terminal's tmux server.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    /// Whether the tmux server still answers (false once dropped).
    pub fn server_alive(socket: &str) -> bool {
        Command::new("tmux")
            .args(["-L", socket, "has-session"])
            .env_remove("TMUX")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux")
    }

    /// Sends keys by tmux name (`Enter`, `Escape`, `Down`, `C-c`, …).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.target];
        args.extend_from_slice(keys);
        let output = self.tmux(&args);
        assert!(
            output.status.success(),
            "tmux send-keys {keys:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Types `text` literally (no key names).
    pub fn type_text(&self, text: &str) {
        let output = self.tmux(&["send-keys", "-t", &self.target, "-l", text]);
        assert!(
            output.status.success(),
            "tmux send-keys -l: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p", "-t", &self.target]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The scrollback and the screen.
    pub fn scrollback(&self) -> String {
        let output = self.tmux(&["capture-pane", "-p", "-S", "-", "-t", &self.target]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits (at most `limit`) until `check` holds for the screen; returns
    /// that screen. Panics with `what` and the last screen otherwise.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        match self.try_wait_for(limit, check).await {
            Ok(screen) => screen,
            Err(screen) => panic!("waited {limit:?} for {what}; the screen:\n{screen}"),
        }
    }

    /// Like [`Self::wait_for`], but returns the last screen as the error.
    pub async fn try_wait_for(
        &self,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let screen = self.screen();
            if check(&screen) {
                return Ok(screen);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(screen);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
