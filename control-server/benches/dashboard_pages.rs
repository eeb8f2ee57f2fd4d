//! Dashboard page loads in headless Chromium, against a real server
//! in-process with 100 users (a proxy and six rules each) and 200,000
//! events over the last 90 days, plus a few blocks and tamper reports.
//!
//! Each page is opened `BENCH_LOADS` times (after two warm-up loads) and
//! read through the Navigation Timing API: time to DOMContentLoaded, to
//! `load`, to `ready` (the page's own mark once its data is in the DOM,
//! after every admin-API call it makes) and to `painted` (the first frame
//! with that data laid out and painted). The slowest API call of each page
//! is listed too (Resource Timing).
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-dashboard cargo bench -p ccgate-server --bench dashboard_pages
//! ```
//! Knobs: `BENCH_LOADS` (20), `BENCH_USERS` (100), `BENCH_EVENTS`
//! (200000). Needs Debian's `chromium` and `chromium-driver`.

#[path = "../tests/dashboard_support/mod.rs"]
mod dashboard_support;

mod common;

use std::time::Instant;

use ccgate_server::model::EventType;
use common::{PASSWORD, cores, env_or, new_runtime, seed_history, seed_users, start, stop};
use dashboard_support::Browser;
use serde_json::json;

const HISTORY_DAYS: i64 = 90;

/// One load's figures, ms from the start of the navigation.
#[derive(Debug, Clone)]
struct Load {
    dom_content_loaded: f64,
    load: f64,
    ready: f64,
    painted: f64,
    /// The slowest admin-API call: (path, ms).
    slowest_api: Option<(String, f64)>,
}

const TIMINGS: &str = r#"
const nav = performance.getEntriesByType('navigation')[0];
const ready = performance.getEntriesByName('ccgate:ready')[0];
const painted = performance.getEntriesByName('ccgate:painted')[0];
const api = performance.getEntriesByType('resource')
  .filter((e) => e.name.includes('/api/admin/'))
  .map((e) => { const u = new URL(e.name); return [u.pathname + u.search, e.duration]; })
  .sort((a, b) => b[1] - a[1]);
return {
  dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd,
  ready: ready ? ready.startTime : null, painted: painted ? painted.startTime : null, api: api[0] ?? null,
};
"#;

async fn measure(browser: &Browser, path: &str) -> Load {
    browser.open(path).await;
    browser
        .wait_until(
            "the load event",
            "return document.readyState === 'complete' && performance.getEntriesByType('navigation')[0].loadEventEnd > 0 \
             && performance.getEntriesByName('ccgate:painted').length > 0",
        )
        .await;
    let t = browser.eval(TIMINGS).await;
    Load {
        dom_content_loaded: t["dcl"].as_f64().unwrap(),
        load: t["load"].as_f64().unwrap(),
        ready: t["ready"].as_f64().expect("the page marks ccgate:ready"),
        painted: t["painted"]
            .as_f64()
            .expect("the page marks ccgate:painted"),
        slowest_api: t["api"]
            .as_array()
            .map(|a| (a[0].as_str().unwrap().to_owned(), a[1].as_f64().unwrap())),
    }
}

/// `loads` measured loads of `path`, after two that warm the caches.
async fn sample(browser: &Browser, path: &str, loads: usize) -> Vec<Load> {
    for _ in 0..2 {
        measure(browser, path).await;
    }
    let mut samples = Vec::new();
    for _ in 0..loads {
        samples.push(measure(browser, path).await);
    }
    samples
}

fn print_row(name: &str, samples: &[Load]) {
    let pick = |f: fn(&Load) -> f64| samples.iter().map(f).collect::<Vec<f64>>();
    let mut painted = pick(|s| s.painted);
    let mut api: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.slowest_api.as_ref().map(|a| a.1))
        .collect();
    let slowest = samples
        .iter()
        .find_map(|s| s.slowest_api.as_ref().map(|a| a.0.clone()))
        .unwrap_or_else(|| "none".to_owned());
    println!(
        "{:<10} {:>8.1} {:>8.1} {:>9.1} {:>11.1} {:>11.1} {:>11.1} {:>8}  {}",
        name,
        percentile(&mut pick(|s| s.dom_content_loaded), 0.5),
        percentile(&mut pick(|s| s.load), 0.5),
        percentile(&mut pick(|s| s.ready), 0.5),
        percentile(&mut painted, 0.5),
        percentile(&mut painted, 0.95),
        percentile(&mut painted, 1.0),
        if api.is_empty() {
            "—".to_owned()
        } else {
            format!("{:.1}", percentile(&mut api, 0.5))
        },
        slowest
    );
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

fn main() {
    let loads: usize = env_or("BENCH_LOADS", 20);
    let users: usize = env_or("BENCH_USERS", 100);
    let events: u64 = env_or("BENCH_EVENTS", 200_000);
    let cores = cores();
    let server_runtime = new_runtime(cores, "server");
    let server_handle = server_runtime.handle().clone();
    let runtime = new_runtime(1, "driver");
    runtime.block_on(async {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let server = start(&server_handle, dir).await;
        // Six rules and a registered proxy each.
        let devices = seed_users(&server.url, users, |i| {
            let limits = json!([
                { "type": "credits", "window": "daily", "value": 100 + i },
                { "type": "per_model", "model": "opus", "window": "daily", "value": 5 + i % 10 },
                { "type": "per_model", "model": "sonnet", "window": "rolling_5h", "value": 40 },
                { "type": "per_model", "model": "haiku", "window": "weekly", "value": 500 },
                { "type": "tokens", "window": "sliding_24h", "value": 50_000_000, "kind": "total" },
                { "type": "time_of_day", "model": "opus", "schedule_start": "07:00", "schedule_end": "23:00" },
            ]);
            (
                json!({ "name": format!("Person {i:03}"), "limits": limits }),
                json!({ "hostname": format!("host-{i:03}"), "os": "linux", "arch": "x86_64",
                        "claude_version": "2.1.3", "agent_version": "bench" }),
            )
        })
        .await;
        stop(server).await;
        let began = Instant::now();
        // Requests (half of them counted prompts), and one in a thousand a
        // block or a tamper report.
        seed_history(dir, &devices, 0, events, HISTORY_DAYS, |rng| match rng.next() % 1000 {
            0 => Some((
                EventType::Blocked,
                json!({ "reason": "per_model", "message": "limit reached" }),
            )),
            1 => Some((
                EventType::Tamper,
                json!({ "path": "/etc/claude-code/managed-settings.json", "what": "settings_key", "restored": true }),
            )),
            _ => None,
        });
        eprintln!("seeded {events} events in {:.1} s", began.elapsed().as_secs_f64());
        let server = start(&server_handle, dir).await;
        eprintln!("server loaded them in {:.1} s", server.started_in.as_secs_f64());

        let busiest = devices[0].0;
        let pages = [
            ("overview", "/dashboard".to_owned()),
            ("user", format!("/dashboard/users/{busiest}")),
            ("add user", "/dashboard/users/new".to_owned()),
            ("settings", "/dashboard/settings".to_owned()),
            ("activity", "/dashboard/activity".to_owned()),
        ];
        let browser = Browser::start(&server.url, 1280, 900).await;
        // The first visit, in a fresh profile: nothing cached yet.
        let cold = measure(&browser, "/dashboard/login").await;
        browser.log_in(None, PASSWORD).await;
        browser.wait_for_overview().await;
        let cold_overview = measure(&browser, "/dashboard").await;
        println!(
            "dashboard_pages: {users} users, {events} events over {HISTORY_DAYS} days, {loads} loads \
             per page after 2 warm-up loads, {cores} cores (server, Chromium and driver share them)"
        );
        println!(
            "first visit, empty cache: login painted {:.0} ms; overview painted {:.0} ms",
            cold.painted, cold_overview.painted
        );
        println!(
            "{:<10} {:>8} {:>8} {:>9} {:>11} {:>11} {:>11} {:>8}  slowest API call",
            "page", "DCL p50", "load p50", "ready p50", "painted p50", "painted p95", "painted max", "API p50"
        );
        for (name, path) in &pages {
            print_row(name, &sample(&browser, path, loads).await);
        }
        // The login page last, after logging out.
        browser.click("#logout").await;
        browser
            .wait_until("the login page", "return location.pathname === '/dashboard/login'")
            .await;
        print_row("login", &sample(&browser, "/dashboard/login", loads).await);
        browser.close().await;
        stop(server).await;
    });
}
