//! `ccgate status`: the person's usage against each limit, as a table,
//! from the daemon's status endpoint.

use std::fmt::Write as _;

use ccgate_machine::local_api::StatusReport;
use ccgate_quota::{
    LimitUsage, Metric, ModelFamily, ShareWindow, UsageReport, UserStatus, WindowShare,
    in_duration, thousands,
};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, ContentArrangement, Table};
use jiff::Timestamp;
use jiff::tz::TimeZone;

const BAR_WIDTH: usize = 20;

/// The whole status as text for a terminal.
pub fn render(status: &StatusReport) -> String {
    let mut out = String::new();
    let now = Timestamp::now();
    match &status.report {
        Some(report) => render_report(&mut out, report, now),
        None => {
            let _ = writeln!(
                out,
                "No policy yet: ccgate blocks every prompt until the daemon reaches the server."
            );
        }
    }
    let zone = status
        .report
        .as_ref()
        .and_then(|r| TimeZone::get(&r.time_zone).ok())
        .unwrap_or_else(TimeZone::system);
    if let Some(subscription) = &status.subscription {
        let windows: Vec<String> = ["5h", "7d"]
            .iter()
            .filter_map(|name| {
                let window = subscription.windows.get(*name)?;
                let used = window
                    .utilization
                    .map_or("?".to_owned(), |u| format!("{:.0}%", u * 100.0));
                let reset = window
                    .resets_at
                    .map(|at| format!(" (resets {})", when(at, &zone, now)))
                    .unwrap_or_default();
                Some(format!("{name} {used}{reset}"))
            })
            .collect();
        if !windows.is_empty() {
            let _ = writeln!(out, "Team subscription: {}", windows.join(", "));
        }
    }
    if let Some(line) = shares_line(&status.window_shares) {
        let _ = writeln!(out, "{line}");
    }
    let health = &status.server;
    let server = if health.reachable {
        let live = if health.live_link { ", live" } else { "" };
        format!("reachable{live}")
    } else {
        let last = health
            .last_contact_at
            .map(|at| format!(" since {}", when(at, &zone, now)))
            .unwrap_or_default();
        format!("offline{last}: limits are enforced from the last policy")
    };
    let _ = writeln!(out, "Server {}: {server}", status.server_url);
    if let Some(at) = health.last_sync_at {
        let _ = writeln!(out, "Last sync: {}", when(at, &zone, now));
    }
    let _ = writeln!(
        out,
        "Events waiting for the server: {}",
        status.pending_events
    );
    if status.quarantined_events > 0 {
        let _ = writeln!(
            out,
            "Events the server refused, kept on this machine: {} (ccgate doctor shows why)",
            status.quarantined_events
        );
    }
    match (
        status.credential_mode.as_deref(),
        status.team_credential_held,
    ) {
        (Some("team_credential"), true) => {
            let _ = writeln!(
                out,
                "Login: the team's subscription, held by ccgate (nothing to sign in)"
            );
        }
        (Some("team_credential"), false) => {
            let _ = writeln!(
                out,
                "Login: the team's subscription, NOT received yet from the server: prompts fail until it arrives"
            );
        }
        (Some(_), _) => {
            let _ = writeln!(out, "Login: your own Claude Code login");
        }
        (None, _) => {}
    }
    if let Some(problem) = &status.integrity_problem {
        let _ = writeln!(
            out,
            "PROMPTS BLOCKED: ccgate's files were changed and could not be restored ({problem}). An admin must run sudo ccgate setup again."
        );
    }
    out
}

fn render_report(out: &mut String, report: &UsageReport, now: Timestamp) {
    let zone = TimeZone::get(&report.time_zone).unwrap_or_else(|_| TimeZone::system());
    let _ = writeln!(
        out,
        "{} · {} · times in {}",
        report.user.name,
        report.status.as_str(),
        report.time_zone
    );
    match report.status {
        UserStatus::Active => {}
        UserStatus::Paused => {
            let _ = writeln!(
                out,
                "Your access is paused by your admin: prompts are blocked."
            );
        }
        UserStatus::Killed => {
            let _ = writeln!(
                out,
                "Your access was revoked by your admin: prompts are blocked."
            );
        }
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["Model", "Limit", "Used", "Of", "", "Left", "Resets"]);
    for limit in &report.limits {
        table.add_row(limit_row(limit, &zone, now));
    }
    if report.limits.is_empty() {
        let _ = writeln!(out, "No limits: your use is only metered.");
    } else {
        let _ = writeln!(out, "{table}");
    }
    for share in &report.shares {
        let window = share.window.phrase();
        let resets = share
            .resets_at
            .map(|at| format!(", frees up {}", when(at, &zone, now)))
            .unwrap_or_default();
        let _ = match share.used_bp {
            Some(used) => writeln!(
                out,
                "Share of the team's {window} window: {} of {} % allowed {}{resets}",
                format_args!("{} %", (used + 50) / 100),
                share.percent,
                progress_bar(u64::from(used), u64::from(share.percent) * 100),
            ),
            None => writeln!(
                out,
                "Share of the team's {window} window: at most {} % (no estimate yet)",
                share.percent
            ),
        };
    }
    for schedule in &report.schedules {
        let model = schedule.family.map_or("all models", ModelFamily::as_str);
        let change = schedule
            .next_change
            .map(|at| when(at, &zone, now))
            .unwrap_or_default();
        let _ = if schedule.open_now {
            writeln!(out, "Hours for {model}: open now, closes {change}")
        } else {
            writeln!(out, "Hours for {model}: closed now, opens {change}")
        };
    }
    let mut today = Vec::new();
    for family in ModelFamily::ALL {
        let totals = &report.today[family];
        if totals.prompts > 0 || totals.input_tokens + totals.output_tokens > 0 {
            today.push(format!(
                "{} {} prompts, {} credits, {} in / {} out tokens",
                family.as_str(),
                totals.prompts,
                totals.credits,
                thousands(
                    totals.input_tokens
                        + totals.cache_creation_input_tokens
                        + totals.cache_read_input_tokens
                ),
                thousands(totals.output_tokens)
            ));
        }
    }
    if today.is_empty() {
        let _ = writeln!(out, "Today: nothing used yet.");
    } else {
        let _ = writeln!(out, "Today: {}", today.join("; "));
    }
}

/// "Your part of it: 38 % of this 5-hour window, 12 % of the week."
fn shares_line(shares: &[WindowShare]) -> Option<String> {
    let parts: Vec<String> = ShareWindow::ALL
        .iter()
        .filter_map(|window| {
            let share = shares.iter().find(|s| s.window == *window)?;
            Some(match window {
                ShareWindow::FiveHour => format!("{} % of this 5-hour window", share.percent()),
                ShareWindow::SevenDay => format!("{} % of the week", share.percent()),
            })
        })
        .collect();
    (!parts.is_empty()).then(|| format!("Your part of it: {}.", parts.join(", ")))
}

fn limit_row(limit: &LimitUsage, zone: &TimeZone, now: Timestamp) -> Vec<Cell> {
    let model = limit.family.map_or("all", ModelFamily::as_str);
    let what = match limit.metric {
        Metric::Prompts => "prompts".to_owned(),
        Metric::Credits => "credits".to_owned(),
        Metric::Tokens(kind) => format!("{} tokens", kind.as_str().replace('_', " ")),
    };
    let (of, bar, left) = match limit.limit {
        -1 => ("unlimited".to_owned(), String::new(), "-".to_owned()),
        0 => ("0".to_owned(), "not allowed".to_owned(), "0".to_owned()),
        cap => (
            thousands(cap as u64),
            progress_bar(limit.used, cap as u64),
            thousands(limit.remaining.unwrap_or(0)),
        ),
    };
    let resets = match (limit.resets_at, limit.frees_at) {
        (Some(at), _) => when(at, zone, now),
        (None, Some(at)) => format!("frees {}", when(at, zone, now)),
        (None, None) => format!("rolling {}", limit.window.as_str()),
    };
    vec![
        Cell::new(model),
        Cell::new(format!("{what} {}", limit.window.as_str())),
        Cell::new(thousands(limit.used)),
        Cell::new(of),
        Cell::new(bar),
        Cell::new(left),
        Cell::new(resets),
    ]
}

/// `████████░░░░ 67%`
pub fn progress_bar(used: u64, cap: u64) -> String {
    let ratio = if cap == 0 {
        1.0
    } else {
        used as f64 / cap as f64
    };
    let filled = ((ratio.min(1.0) * BAR_WIDTH as f64).round() as usize).min(BAR_WIDTH);
    format!(
        "{}{} {:.0}%",
        "█".repeat(filled),
        "░".repeat(BAR_WIDTH - filled),
        ratio * 100.0
    )
}

/// A moment in the user's zone: `14:00 (in 2h 5m)` today, else with the day.
fn when(at: Timestamp, zone: &TimeZone, now: Timestamp) -> String {
    let local = at.to_zoned(zone.clone());
    let today = now.to_zoned(zone.clone()).date();
    let clock = if local.date() == today {
        local.strftime("%H:%M").to_string()
    } else {
        local.strftime("%a %d %b %H:%M").to_string()
    };
    if at > now {
        format!("{clock} ({})", in_duration(at.duration_since(now)))
    } else {
        clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_persons_shares_read_as_a_sentence() {
        let shares = [
            WindowShare::from_fraction(ShareWindow::SevenDay, 0.12, None),
            WindowShare::from_fraction(ShareWindow::FiveHour, 0.38, None),
        ];
        assert_eq!(
            shares_line(&shares).unwrap(),
            "Your part of it: 38 % of this 5-hour window, 12 % of the week."
        );
        assert_eq!(shares_line(&[]), None);
    }

    #[test]
    fn the_bar_fills_with_use() {
        assert_eq!(progress_bar(0, 4), format!("{} 0%", "░".repeat(20)));
        assert_eq!(
            progress_bar(1, 2),
            format!("{}{} 50%", "█".repeat(10), "░".repeat(10))
        );
        assert_eq!(progress_bar(5, 4), format!("{} 125%", "█".repeat(20)));
    }
}
