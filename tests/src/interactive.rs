//! The interactive Claude Code CLI in a terminal (see [`crate::tmux`]):
//! start it at its prompt box, type prompts, wait for what appears, type
//! while a turn runs, rewind with Esc Esc. Every wait is bounded and fails
//! with the last screen.
//!
//! ```text
//! let cli = scenario.cli(vec![]);
//! let session = cli.interactive(&["--allowedTools", "Bash"]).await;
//! session.submit("say hi").await;
//! session.wait_for_text("hi from the fake upstream").await;
//! session.rewind_to_start().await;
//! session.submit("new text").await;
//! ```

use std::time::Duration;

use crate::claude_cli::ClaudeCli;
use crate::tmux::Tmux;

/// How long the CLI may take to show its prompt box.
pub const START: Duration = Duration::from_secs(60);
/// How long a reply (or a menu) may take to appear.
pub const REPLY: Duration = Duration::from_secs(60);

/// The line the rewind menu opens with.
pub const REWIND_MENU: &str = "Restore the code and/or conversation to the point before";
/// The first option of the rewind confirmation.
pub const RESTORE_CONVERSATION: &str = "Restore conversation";
/// What the screen shows while a turn runs.
pub const RUNNING: &str = "esc to interrupt";

pub struct Interactive {
    pub tmux: Tmux,
}

impl ClaudeCli {
    /// Starts `claude ARGS…` in a 150 × 45 terminal (after seeding
    /// `~/.claude.json`) and waits for the prompt box.
    pub async fn interactive(&self, args: &[&str]) -> Interactive {
        self.seed_interactive_config();
        let tmux = Tmux::start(&self.launcher(args), 150, 45);
        let session = Interactive { tmux };
        session.wait_ready().await;
        session
    }
}

/// The text of the prompt box's input line (after `❯ `), if the box shows.
pub fn prompt_line(screen: &str) -> Option<String> {
    let lines: Vec<&str> = screen.lines().collect();
    // The input sits between two rules of box-drawing dashes; the last such
    // pair on the screen is the prompt box.
    let rules: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("────"))
        .map(|(i, _)| i)
        .collect();
    let (&bottom, rest) = rules.split_last()?;
    let &top = rest.last()?;
    let input: Vec<&str> = lines[top + 1..bottom].to_vec();
    let first = input.first()?.trim_start();
    let text = first.strip_prefix('❯')?;
    let mut all = text.trim().to_owned();
    for more in &input[1..] {
        all.push(' ');
        all.push_str(more.trim());
    }
    Some(all.trim().to_owned())
}

/// The screen's lines trimmed and joined by single spaces, so a message the
/// terminal wrapped can be found whole.
pub fn flat(screen: &str) -> String {
    screen
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Interactive {
    pub fn screen(&self) -> String {
        self.tmux.screen()
    }

    /// Waits (at most `limit`) until `needle` shows, wrapped or not.
    pub async fn wait_for_message(&self, needle: &str, limit: Duration) -> String {
        self.wait_until(&format!("{needle:?} on the screen"), limit, |s| {
            flat(s).contains(needle)
        })
        .await
    }

    pub fn scrollback(&self) -> String {
        self.tmux.scrollback()
    }

    /// Waits for the prompt box.
    pub async fn wait_ready(&self) -> String {
        self.tmux
            .wait_for("the prompt box", START, |s| prompt_line(s).is_some())
            .await
    }

    /// Waits (at most [`REPLY`]) until `needle` is on the screen.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        self.wait_until(&format!("{needle:?} on the screen"), REPLY, |s| {
            s.contains(needle)
        })
        .await
    }

    /// Waits (at most `limit`) until `check` holds for the screen.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        self.tmux.wait_for(what, limit, check).await
    }

    /// Waits until no turn runs (the prompt box shows, nothing to interrupt).
    pub async fn wait_idle(&self) -> String {
        self.wait_until("the turn to end", REPLY, |s| {
            !s.contains(RUNNING) && prompt_line(s).is_some()
        })
        .await
    }

    /// Types `text` into the prompt box, waits until it shows there, and
    /// presses Enter. Works while a turn runs too (the CLI queues it).
    pub async fn submit(&self, text: &str) {
        self.tmux.type_text(text);
        self.wait_until(&format!("{text:?} in the prompt box"), REPLY, |s| {
            prompt_line(s).is_some_and(|line| line.contains(text))
        })
        .await;
        self.tmux.keys(&["Enter"]);
        self.wait_until(&format!("{text:?} to leave the prompt box"), REPLY, |s| {
            prompt_line(s).is_some_and(|line| !line.contains(text))
        })
        .await;
    }

    /// Empties the prompt box (Ctrl-U).
    pub async fn clear_input(&self) {
        self.tmux.keys(&["C-u"]);
        self.wait_until("an empty prompt box", REPLY, |s| {
            prompt_line(s).is_some_and(|line| line.is_empty())
        })
        .await;
    }

    /// Esc Esc, the first prompt in the rewind menu, "Restore conversation";
    /// leaves an empty prompt box (the CLI puts the old text back in it).
    /// Under load the CLI may read an arrow key's escape sequence as Escape
    /// and close the menu: then the menu is opened again (three tries).
    pub async fn rewind_to_start(&self) {
        for _ in 0..3 {
            self.wait_idle().await;
            if !self.screen().contains(REWIND_MENU) {
                self.tmux.keys(&["Escape"]);
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.tmux.keys(&["Escape"]);
            }
            if self
                .tmux
                .try_wait_for(REPLY, |s| s.contains(REWIND_MENU))
                .await
                .is_err()
            {
                continue;
            }
            if self.select_first_rewind_entry().await {
                self.tmux.keys(&["Enter"]);
                self.wait_for_text(RESTORE_CONVERSATION).await;
                self.tmux.keys(&["Enter"]);
                self.wait_until("the prompt box after the rewind", REPLY, |s| {
                    !s.contains(RESTORE_CONVERSATION)
                        && !s.contains(REWIND_MENU)
                        && prompt_line(s).is_some()
                })
                .await;
                self.clear_input().await;
                return;
            }
        }
        panic!(
            "could not rewind to the first prompt in three tries; the screen:\n{}",
            self.screen()
        );
    }

    /// Presses Up until the entry under the menu's heading is selected;
    /// false if the menu closed on the way.
    async fn select_first_rewind_entry(&self) -> bool {
        for _ in 0..30 {
            let screen = match self
                .tmux
                .try_wait_for(Duration::from_secs(5), |s| s.contains(REWIND_MENU))
                .await
            {
                Ok(screen) => screen,
                Err(_) => return false,
            };
            let lines: Vec<&str> = screen.lines().collect();
            // The first entry is the first non-blank line under the heading.
            if let Some(i) = lines.iter().position(|l| l.contains(REWIND_MENU))
                && lines[i + 1..]
                    .iter()
                    .find(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.trim_start().starts_with('❯'))
            {
                return true;
            }
            self.tmux.keys(&["Up"]);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        false
    }
}
