//! The server's container image: the `Dockerfile` at the repository root,
//! built with podman from the release binaries and run published on
//! 127.0.0.1 only. The admin logs in and creates a person, and the install
//! line works against the container: `/install.sh` and the agent binaries
//! it carries (checked against `/downloads/SHA256SUMS`) install under a
//! temp root prefix and register the device. Also: the systemd unit file
//! is the one docs/operations.md shows.
//!
//! Needs podman and runc, the base image `debian:bookworm-slim` in podman's
//! storage (made from Debian's packages: no image registry is reached) and
//! `cargo build --release -p ccgate-server -p ccgate -p ccgate-proxy`;
//! `scripts/test.sh` makes all of them. Without them the test fails and
//! says so; `CCGATE_SKIP_CONTAINER_TEST=<reason>` skips it (`scripts/test.sh`
//! sets it where podman cannot run containers). podman runs through
//! `scripts/podman.sh` (vfs storage and runc, what works on the test
//! machines). The image, the container and its volume are removed at the
//! end, also when the test fails; every step has a time limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ccgate_server::agent_bundle::sha256_file;
use ccgate_tests::installed::{InstalledMachine, free_port};
use serde_json::{Value, json};

const BASE_IMAGE: &str = "docker.io/library/debian:bookworm-slim";
const ADMIN_PASSWORD: &str = "correct horse battery staple";
/// The user the image runs the server as (`USER` in the Dockerfile).
const SERVER_UID: u32 = 10001;
const PROGRAMS: [&str; 3] = ["ccgate-server", "ccgate", "ccgate-proxy"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the tests crate")
        .to_owned()
}

/// `scripts/podman.sh ARGS`, waited for at most `limit`; panics with its
/// output when it fails or takes longer.
async fn podman(args: &[&str], limit: Duration) -> Output {
    let output = podman_status(args, limit).await;
    assert!(
        output.status.success(),
        "podman {} failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Like [`podman`], without asserting success.
async fn podman_status(args: &[&str], limit: Duration) -> Output {
    run_bounded(
        podman_command(args),
        limit,
        &format!("podman {}", args.join(" ")),
    )
    .await
}

fn podman_command(args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg(repo_root().join("scripts/podman.sh"))
        .args(args)
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end or kills it after `limit` (then panics).
async fn run_bounded(command: Command, limit: Duration, what: &str) -> Output {
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    match tokio::time::timeout(limit, command.output()).await {
        Ok(output) => output.unwrap_or_else(|error| panic!("cannot run {what}: {error}")),
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

/// Removes the container (with its anonymous volumes) and the image when
/// dropped, also after a failed assertion.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in [
            vec!["rm", "--force", "--volumes", "--time", "0", &self.container],
            vec!["rmi", "--force", &self.image],
        ] {
            let _ = podman_command(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// What must be there before the image can be built; panics with how to
/// get it. Returns whether the test should run.
fn prerequisites(binaries: &Path) -> bool {
    if let Ok(reason) = std::env::var("CCGATE_SKIP_CONTAINER_TEST") {
        eprintln!("container test skipped: {reason}");
        return false;
    }
    let run_tests =
        "run scripts/test.sh, which installs podman, runc and debootstrap and makes the base image";
    let found = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(found, "podman is not installed: {run_tests}");
    let base = podman_command(&["image", "exists", BASE_IMAGE])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        base,
        "the base image {BASE_IMAGE} is not in podman's storage: {run_tests}"
    );
    for program in PROGRAMS {
        assert!(
            binaries.join(program).is_file(),
            "{} is missing: run `cargo build --release -p ccgate-server -p ccgate -p ccgate-proxy` (scripts/test.sh does)",
            binaries.join(program).display()
        );
    }
    true
}

/// The release binaries, and the directory `podman build` reads: the
/// repository root, whose .dockerignore sends only those binaries; a copy
/// in a temp dir when the build tree is elsewhere (`CARGO_TARGET_DIR`).
fn build_context() -> (PathBuf, PathBuf, Option<tempfile::TempDir>) {
    let root = repo_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    let binaries = target.join("release");
    if target == root.join("target") {
        return (binaries, root, None);
    }
    let copy = tempfile::tempdir().expect("temp build context");
    let release = copy.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    for file in ["Dockerfile", ".dockerignore"] {
        std::fs::copy(root.join(file), copy.path().join(file)).unwrap();
    }
    for program in PROGRAMS {
        // Missing ones are reported by `prerequisites`.
        let _ = std::fs::copy(binaries.join(program), release.join(program));
    }
    let context = copy.path().to_owned();
    (binaries, context, Some(copy))
}

/// `SHA256SUMS` as sha256sum writes it: file name → digest.
fn parse_sums(sums: &str) -> BTreeMap<String, String> {
    sums.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (sum, file) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("not a sha256sum line: {line:?}"));
            (file.to_owned(), sum.to_owned())
        })
        .collect()
}

async fn get(http: &reqwest::Client, url: &str) -> reqwest::Response {
    let response = http
        .get(url)
        .send()
        .await
        .expect("GET through the container");
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_serves_the_dashboard_api_and_the_install_line() {
    let (binaries, context, _context_copy) = build_context();
    if !prerequisites(&binaries) {
        return;
    }
    let id = std::process::id();
    let image = format!("localhost/ccgate-server-test:{id}");
    let container = format!("ccgate-server-test-{id}");
    let _cleanup = Cleanup {
        container: container.clone(),
        image: image.clone(),
    };

    // The Dockerfile as a user builds it; only the invocation is podman's.
    // Docker's format keeps the HEALTHCHECK; nothing is pulled.
    let started = Instant::now();
    podman(
        &[
            "build",
            "--pull=never",
            "--layers=false",
            "--format",
            "docker",
            "--tag",
            &image,
            "--file",
            repo_root().join("Dockerfile").to_str().unwrap(),
            context.to_str().unwrap(),
        ],
        Duration::from_secs(300),
    )
    .await;
    eprintln!("image built in {:.1?}", started.elapsed());

    let inspected = podman(&["image", "inspect", &image], Duration::from_secs(30)).await;
    let inspected: Value = serde_json::from_slice(&inspected.stdout).expect("inspect is JSON");
    let config = &inspected[0]["Config"];
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for wanted in ["DATA_DIR=/data", "AGENT_DIR=/opt/ccgate/agent"] {
        assert!(env.contains(&wanted), "{wanted} in {env:?}");
    }
    let health = inspected[0]["Healthcheck"]["Test"].to_string();
    assert!(health.contains("/healthz"), "HEALTHCHECK: {inspected}");

    // The server's data in a temp dir the image's user owns: the files it
    // writes there show who it runs as.
    let data = tempfile::tempdir().expect("temp data dir");
    std::os::unix::fs::chown(data.path(), Some(SERVER_UID), Some(SERVER_UID)).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    podman(
        &[
            "run",
            "--detach",
            "--pull=never",
            "--name",
            &container,
            "--publish",
            &format!("127.0.0.1:{port}:3000"),
            "--env",
            &format!("ADMIN_PASSWORD={ADMIN_PASSWORD}"),
            "--volume",
            &format!("{}:/data", data.path().display()),
            &image,
        ],
        Duration::from_secs(60),
    )
    .await;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap();
    let mut token = None;
    while token.is_none() && started.elapsed() < Duration::from_secs(60) {
        if let Ok(response) = http
            .post(format!("{url}/api/admin/login"))
            .json(&json!({"password": ADMIN_PASSWORD}))
            .send()
            .await
            && response.status().is_success()
        {
            let body: Value = response.json().await.expect("login answer");
            token = body["token"].as_str().map(str::to_owned);
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let Some(token) = token else {
        let logs = podman_status(&["logs", &container], Duration::from_secs(30)).await;
        panic!(
            "the container did not answer a login within 60 s; its log:\n{}{}",
            text(&logs.stdout),
            text(&logs.stderr)
        );
    };
    eprintln!("container answering in {:.1?}", started.elapsed());

    // The image's own health check passes, and the server is not root.
    podman(&["healthcheck", "run", &container], Duration::from_secs(30)).await;
    let uid = podman(&["exec", &container, "id", "-u"], Duration::from_secs(30)).await;
    assert_eq!(text(&uid.stdout), SERVER_UID.to_string());
    let database = std::fs::metadata(data.path().join("ccgate.db")).expect("ccgate.db in /data");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&database), SERVER_UID);

    let created: Value = http
        .post(format!("{url}/api/admin/users"))
        .bearer_auth(&token)
        .json(&json!({"name": "alice"}))
        .send()
        .await
        .expect("create a user")
        .json()
        .await
        .expect("the new user");
    let code = created["install_code"].as_str().expect("install code");
    let user_id = created["user"]["id"].as_i64().expect("user id");
    let setup_command = created["setup_command"].as_str().expect("setup command");
    assert!(
        setup_command.contains(&format!("{url}/install.sh")) && setup_command.contains(code),
        "{setup_command}"
    );

    let script = get(&http, &format!("{url}/install.sh"))
        .await
        .text()
        .await
        .unwrap();
    assert!(script.starts_with("#!/bin/sh"), "{script}");
    assert!(script.contains(&format!("SERVER='{url}'")), "{script}");
    assert!(
        script.contains("release bundle in /opt/ccgate/agent"),
        "the image serves its bundle: {script}"
    );

    // Every file of the list, downloaded, matches it and the binary built.
    let sums = get(&http, &format!("{url}/downloads/SHA256SUMS"))
        .await
        .text()
        .await
        .unwrap();
    let sums = parse_sums(&sums);
    let platform = format!("linux-{}", std::env::consts::ARCH);
    let downloads = tempfile::tempdir().expect("temp downloads");
    for program in ["ccgate", "ccgate-proxy"] {
        let name = format!("{program}-{platform}");
        let listed = sums
            .get(&name)
            .unwrap_or_else(|| panic!("{name} is not in SHA256SUMS: {sums:?}"));
        let bytes = get(&http, &format!("{url}/downloads/{name}"))
            .await
            .bytes()
            .await
            .unwrap();
        let path = downloads.path().join(&name);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(&sha256_file(&path).unwrap(), listed, "{name} as downloaded");
        assert_eq!(
            &sha256_file(&binaries.join(program)).unwrap(),
            listed,
            "{name} is the {program} that was built"
        );
    }

    // The install line, as `sh` runs it on a developer machine, into a temp
    // root prefix without a service.
    let machine = InstalledMachine::prepare();
    let script_path = downloads.path().join("install.sh");
    std::fs::write(&script_path, &script).unwrap();
    let mut install = Command::new("sh");
    install
        .arg(&script_path)
        .args(["--code", code, "--root"])
        .arg(machine.root())
        .args(["--no-service", "--user", "alice", "--port"])
        .arg(machine.port.to_string())
        .stdin(Stdio::null());
    let installed = run_bounded(install, Duration::from_secs(120), "sh install.sh").await;
    assert!(
        installed.status.success(),
        "install.sh failed:\n{}\n{}",
        text(&installed.stdout),
        text(&installed.stderr)
    );
    for program in ["ccgate", "ccgate-proxy"] {
        let path = machine.root().join("usr/local/bin").join(program);
        assert_eq!(
            sha256_file(&path).unwrap(),
            sums[&format!("{program}-{platform}")],
            "{} as installed",
            path.display()
        );
    }
    let user: Value = get_json(&http, &token, &format!("{url}/api/admin/users/{user_id}")).await;
    let devices = user["user"]["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1, "the device registered: {user}");

    // SIGTERM stops the server cleanly (it is the container's first process).
    podman(
        &["stop", "--time", "10", &container],
        Duration::from_secs(30),
    )
    .await;
    let exit = podman(
        &["inspect", "--format", "{{.State.ExitCode}}", &container],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(text(&exit.stdout), "0", "exit code after SIGTERM");
}

async fn get_json(http: &reqwest::Client, token: &str, url: &str) -> Value {
    let response = http.get(url).bearer_auth(token).send().await.expect("GET");
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.expect("JSON")
}

#[test]
fn the_server_unit_file_is_the_one_the_operations_guide_shows() {
    let root = repo_root();
    let unit = std::fs::read_to_string(root.join("deploy/ccgate-server.service")).unwrap();
    let guide = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    assert!(
        guide.contains(&format!("```ini\n{unit}```\n")),
        "docs/operations.md shows deploy/ccgate-server.service as it is"
    );
}
