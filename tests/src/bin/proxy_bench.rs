//! Benchmark of ccgate-proxy: latency it adds to the first and last byte of
//! a reply (small reply and long stream, prompts and continuations, on kept-
//! alive connections) versus going straight to the fake upstream, and the
//! daemon's memory with many concurrent streams.
//!
//! ```sh
//! cargo build --release -p ccgate-proxy -p ccgate-tests
//! target/release/ccgate-proxy-bench --proxy-bin target/release/ccgate-proxy
//! ```
//! The daemon runs as a separate process (the real binary) so its resident
//! memory can be read from /proc.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ccgate_proxy::config::ProxyConfig;
use ccgate_proxy::fsutil::write_atomic;
use ccgate_tests::client::Turn;
use ccgate_tests::machine::TestMachine;
use ccgate_tests::server::TestServer;
use ccgate_tests::upstream::{FakeAnthropic, Reply, Usage};
use futures_util::StreamExt;
use serde_json::json;

struct Options {
    proxy_bin: PathBuf,
    iterations: usize,
    streams: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        proxy_bin: PathBuf::from("target/release/ccgate-proxy"),
        iterations: 1000,
        streams: 100,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("missing value");
        match arg.as_str() {
            "--proxy-bin" => options.proxy_bin = PathBuf::from(value()?),
            "--iterations" => options.iterations = value()?.parse()?,
            "--streams" => options.streams = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let server = TestServer::start().await;
    let upstream = FakeAnthropic::start().await;
    let (_, code) = server.create_user("Bench", json!([])).await;
    let machine = TestMachine::register(&server.url, &code).await;
    let port = free_port()?;
    let mut config = ProxyConfig::load(&machine.paths.config_file())?;
    config.listen = SocketAddr::from(([127, 0, 0, 1], port));
    write_atomic(
        &machine.paths.config_file(),
        config.to_toml().as_bytes(),
        0o600,
    )?;
    let mut daemon = tokio::process::Command::new(&options.proxy_bin)
        .arg("--root")
        .arg(machine.root())
        .env("CCGATE_UPSTREAM_CONNECT_TO", upstream.connect_to())
        .env("CCGATE_UPSTREAM_CA_FILE", upstream.ca_file())
        .env("CCGATE_TUNNEL_ONLY_ANTHROPIC", "1")
        .env(
            "CCGATE_LOG",
            std::env::var("CCGATE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", options.proxy_bin.display()))?;
    let pid = daemon.id().context("daemon pid")?;
    let proxy = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_policy(proxy).await?;

    let direct = direct_client(&upstream)?;
    let proxied = proxied_client(proxy, &machine.paths.ca_cert())?;
    println!(
        "ccgate-proxy benchmark: {} iterations per case, kept-alive connections",
        options.iterations
    );
    println!(
        "host: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>10}",
        "case", "ttfb p50", "ttfb p99", "ttlb p50", "ttlb p99"
    );
    let small = || Reply::text("hi from the fake upstream", Usage::new(100, 7, 0, 0));
    let long = || Reply::Text {
        text: "token ".repeat(2000),
        usage: Usage::new(100, 2000, 0, 0),
        chunks: 500,
        delay: Duration::ZERO,
    };
    let mut rows = Vec::new();
    for (name, make) in [
        ("small reply", &small as &dyn Fn() -> Reply),
        ("long stream (500 chunks)", &long),
    ] {
        upstream.set_responder({
            let reply = make();
            move |_| reply.clone()
        });
        let direct_times = measure(&direct, &upstream, options.iterations, Kind::Prompt).await?;
        let prompt_times = measure(&proxied, &upstream, options.iterations, Kind::Prompt).await?;
        let continuation_times =
            measure(&proxied, &upstream, options.iterations, Kind::Continuation).await?;
        print_row(&format!("{name}: direct"), &direct_times);
        print_row(&format!("{name}: via proxy, prompt"), &prompt_times);
        print_row(
            &format!("{name}: via proxy, continuation"),
            &continuation_times,
        );
        rows.push((name, direct_times, prompt_times, continuation_times));
    }
    println!();
    println!("added by the proxy (median of proxied minus median of direct):");
    for (name, direct, prompt, continuation) in &rows {
        let added = |via: &Samples, straight: &Samples| ms(via.median()) - ms(straight.median());
        println!(
            "  {name}: prompt {:+.3} ms to first byte, {:+.3} ms to last byte; continuation {:+.3} ms / {:+.3} ms",
            added(&prompt.ttfb, &direct.ttfb),
            added(&prompt.ttlb, &direct.ttlb),
            added(&continuation.ttfb, &direct.ttfb),
            added(&continuation.ttlb, &direct.ttlb),
        );
    }

    println!();
    let idle = rss_kb(pid)?;
    upstream.set_responder(|_| {
        Reply::slow_text(
            &"word ".repeat(100),
            Usage::new(50, 100, 0, 0),
            100,
            Duration::from_millis(50),
        )
    });
    let mut tasks = Vec::new();
    for i in 0..options.streams {
        let client = proxied.clone();
        tasks.push(tokio::spawn(async move {
            let turn = Turn::prompt(&format!("mem-{i}"), 1, "stream");
            let response = send(&client, &turn).await?;
            let mut body = response.bytes_stream();
            let mut bytes = 0;
            while let Some(chunk) = body.next().await {
                bytes += chunk?.len();
            }
            anyhow::Ok(bytes)
        }));
    }
    let mut peak = idle;
    while tasks.iter().any(|t| !t.is_finished()) {
        peak = peak.max(rss_kb(pid)?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut completed = 0;
    for task in tasks {
        if task.await?? > 0 {
            completed += 1;
        }
    }
    println!(
        "memory: {} KiB resident idle, {} KiB peak with {} concurrent streams ({} completed, 5 s each)",
        idle, peak, options.streams, completed
    );
    daemon.kill().await.ok();
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(Clone, Copy)]
enum Kind {
    Prompt,
    Continuation,
}

struct Times {
    ttfb: Samples,
    ttlb: Samples,
}

struct Samples(Vec<Duration>);

impl Samples {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    fn median(&self) -> Duration {
        self.percentile(0.5)
    }
}

fn print_row(name: &str, times: &Times) {
    println!(
        "{:<36} {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>8.3}ms",
        name,
        ms(times.ttfb.median()),
        ms(times.ttfb.percentile(0.99)),
        ms(times.ttlb.median()),
        ms(times.ttlb.percentile(0.99))
    );
}

async fn send(client: &reqwest::Client, turn: &Turn) -> anyhow::Result<reqwest::Response> {
    let mut request = client
        .post("https://api.anthropic.com/v1/messages")
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-bench");
    for (name, value) in turn.headers() {
        request = request.header(name, value);
    }
    let response = request.body(turn.body().to_string()).send().await?;
    if !response.status().is_success() {
        bail!("status {}", response.status());
    }
    Ok(response)
}

async fn measure(
    client: &reqwest::Client,
    upstream: &FakeAnthropic,
    iterations: usize,
    kind: Kind,
) -> anyhow::Result<Times> {
    let session = uuid::Uuid::new_v4().to_string();
    let mut ttfb = Vec::with_capacity(iterations);
    let mut ttlb = Vec::with_capacity(iterations);
    let warmup = 50;
    // Continuations answer a tool call the turn's prompt asked for.
    let continuation = match kind {
        Kind::Prompt => None,
        Kind::Continuation => {
            upstream.push_reply(Reply::ToolUse {
                name: "Bash".into(),
                input: json!({"command": "echo bench"}),
                usage: Usage::new(100, 7, 0, 0),
            });
            let prompt = Turn::prompt(&session, 1, "bench");
            let response = send(client, &prompt).await?;
            let answer = ccgate_tests::client::Answer {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.text().await?,
            };
            Some(prompt.continuation(&answer))
        }
    };
    for i in 0..iterations + warmup {
        let turn = match &continuation {
            None => Turn::prompt(&session, i as u64 + 1, "bench"),
            // Every continuation of one turn: the gate stays local.
            Some(continuation) => continuation.clone(),
        };
        let start = Instant::now();
        let mut body = send(client, &turn).await?.bytes_stream();
        let first = body.next().await.context("empty reply")??;
        let first_at = start.elapsed();
        let mut bytes = first.len();
        while let Some(chunk) = body.next().await {
            bytes += chunk?.len();
        }
        let last_at = start.elapsed();
        if bytes == 0 {
            bail!("empty reply");
        }
        if i >= warmup {
            ttfb.push(first_at);
            ttlb.push(last_at);
        }
    }
    Ok(Times {
        ttfb: Samples(ttfb),
        ttlb: Samples(ttlb),
    })
}

fn direct_client(upstream: &FakeAnthropic) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .resolve("api.anthropic.com", upstream.address)
        .tls_certs_only([reqwest::Certificate::from_pem(upstream.ca_pem.as_bytes())?])
        .no_proxy()
        .build()?)
}

fn proxied_client(proxy: SocketAddr, ca: &Path) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{proxy}"))?)
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(ca)?)?])
        .build()?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_for_policy(proxy: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..500 {
        if let Ok(response) = reqwest::get(format!("http://{proxy}/ccgate/status")).await
            && let Ok(status) = response.json::<serde_json::Value>().await
            && !status["policy_version"].is_null()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the daemon did not get its policy")
}

fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .context("no VmRSS")
}
