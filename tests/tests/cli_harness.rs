//! The harness for the real CLI checks itself: managed settings at the real
//! path without touching the real /etc, the tmux driver (and its clean-up),
//! the tunnel and the fake's required credential.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ccgate_tests::claude_cli::{ClaudeCli, MANAGED_SETTINGS_PATH};
use ccgate_tests::scenario::Scenario;
use ccgate_tests::tmux::Tmux;
use ccgate_tests::tunnel::Tunnel;
use ccgate_tests::upstream::FakeAnthropic;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every path under /etc with its kind, size and mode (unreadable parts
/// are listed as such): what "the real /etc is unchanged" compares.
fn etc_listing() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            out.insert(dir.display().to_string(), "unreadable".into());
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = if meta.is_dir() {
                "dir"
            } else if meta.file_type().is_symlink() {
                "link"
            } else {
                "file"
            };
            out.insert(
                path.display().to_string(),
                format!("{kind} {} {:o}", meta.len(), meta.mode()),
            );
            if meta.is_dir() && depth < 6 {
                walk(&path, out, depth + 1);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new("/etc"), &mut out, 0);
    out
}

/// A person's shell whose proxy variables point at a dead port: only
/// managed settings can make the CLI reach anything.
fn dead_proxy_shell() -> Vec<(String, String)> {
    ccgate_proxy::guard::settings::PROXY_VARIABLES
        .iter()
        .map(|name| (name.to_string(), "http://127.0.0.1:9".to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_settings_at_the_real_path_reach_the_cli_and_the_real_etc_is_untouched() {
    let etc_before = etc_listing();
    let had_claude_code = Path::new("/etc/claude-code").exists();
    let scenario = Scenario::start(5).await;
    let cli = scenario.cli(dead_proxy_shell());
    assert!(cli.has_managed_settings());

    let run = cli.print("say hi", &[]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout.trim(), "hi from the fake upstream");
    assert_eq!(scenario.messages_sent(), 1);
    assert_eq!(scenario.prompts_counted().await, 1);

    assert_eq!(
        Path::new("/etc/claude-code").exists(),
        had_claude_code,
        "{MANAGED_SETTINGS_PATH} leaked into the real /etc"
    );
    let etc_after = etc_listing();
    let changed: Vec<_> = etc_before
        .iter()
        .filter(|(k, v)| etc_after.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(
            etc_after
                .keys()
                .filter(|k| !etc_before.contains_key(*k))
                .cloned(),
        )
        .collect();
    assert!(changed.is_empty(), "the real /etc changed: {changed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interactive_session_with_managed_settings_answers_and_its_terminal_goes_away() {
    let scenario = Scenario::start(5).await;
    let cli = scenario.cli(dead_proxy_shell());
    let socket;
    {
        let session = cli.interactive(&[]).await;
        socket = session.tmux.socket().to_owned();
        assert!(Tmux::server_alive(&socket));
        session.submit("say hi").await;
        session.wait_for_text("hi from the fake upstream").await;
        session.wait_idle().await;
    }
    assert!(
        !Tmux::server_alive(&socket),
        "the tmux server outlived the session"
    );
    assert_eq!(scenario.prompts_counted().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_reaches_the_fake_directly_and_the_fake_checks_the_credential() {
    let upstream = FakeAnthropic::start().await;
    upstream.set_required_credential(Some("sk-ant-api03-the-right-one"));
    let tunnel = Tunnel::start(upstream.address).await;

    // Another target is refused.
    let mut raw = tokio::net::TcpStream::connect(tunnel.address)
        .await
        .unwrap();
    raw.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 403"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // The CLI pointed at the tunnel (trusting the fake's own CA) reaches the
    // fake without ccgate; a wrong key gets 401 and is recorded.
    let env: Vec<(String, String)> = ccgate_proxy::guard::settings::PROXY_VARIABLES
        .iter()
        .map(|name| (name.to_string(), tunnel.url()))
        .chain([(
            "NODE_EXTRA_CA_CERTS".to_owned(),
            upstream.ca_file().display().to_string(),
        )])
        .collect();
    let mut cli = ClaudeCli::with_env(env);
    cli.set_api_key(Some("sk-ant-api03-a-wrong-one"));
    let refused = cli.print("say hi", &[]).await;
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(
        upstream
            .credentials_seen()
            .iter()
            .all(|c| c.as_deref() == Some("sk-ant-api03-a-wrong-one")),
        "{:?}",
        upstream.credentials_seen()
    );
    assert!(upstream.messages_requests().iter().all(|r| matches!(
        r.reply,
        Some(ccgate_tests::upstream::Reply::Error { status: 401, .. })
    )));

    cli.set_api_key(Some("sk-ant-api03-the-right-one"));
    let run = cli.print("say hi", &[]).await;
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(run.stdout.trim(), "hi from the fake upstream");
    assert!(tunnel.anthropic_tunnels() >= 2, "{:?}", tunnel.connects());
    assert!(
        tunnel.connects().contains(&"example.com:443".to_owned()),
        "{:?}",
        tunnel.connects()
    );
}
