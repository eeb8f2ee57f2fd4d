//! The text a blocked person reads. Claude Code prints it after
//! `API Error: 400`, so it must stand alone: what ran out, when it comes
//! back (in their time zone), and everything they have used. No double
//! quotes: the CLI shows them escaped.

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::engine::Breach;
use crate::model::ModelFamily;
use crate::policy::{CompiledPolicy, CredentialMode, UserStatus};
use crate::report::{LimitUsage, Metric, UsageReport};
use crate::rules::{Limit, RuleSpec, TokenKind};
use crate::usage::Totals;

/// A paused or revoked person: what happened and what to do, not how much
/// is left (asking for more would not help).
fn status_message(policy: &CompiledPolicy, status: UserStatus) -> String {
    let name = &policy.policy.user.name;
    let text = match status {
        UserStatus::Paused => format!(
            "ccgate stopped this prompt: {name}, your ccgate admin has paused your Claude Code access. \
             Nothing is sent to Anthropic while it is paused, and your usage so far is kept. \
             When your admin resumes your access, send the prompt again; there is nothing to reinstall or restart."
        ),
        _ => {
            let after = match policy.policy.credential {
                CredentialMode::TeamCredential { .. } => "restart Claude Code",
                CredentialMode::PersonalLogin => "sign Claude Code in again with /login",
            };
            format!(
                "ccgate stopped this prompt: {name}, your ccgate admin has revoked your Claude Code access (the kill switch), \
                 and any reply in progress was stopped. Talk to your admin; once they reinstate you, {after}."
            )
        }
    };
    text.replace('"', "'")
}

pub(crate) fn block_message(
    policy: &CompiledPolicy,
    report: &UsageReport,
    breach: &Breach,
    family: ModelFamily,
    cost: u64,
) -> String {
    let name = &policy.policy.user.name;
    let now = report.generated_at;
    let mut text = String::from("ccgate blocked this prompt. ");
    match breach {
        Breach::Status(status) => return status_message(policy, *status),
        Breach::Closed {
            rule_index,
            opens_at,
        } => {
            let (rule, zone) = policy
                .rules()
                .nth(*rule_index)
                .expect("breach names a rule");
            if let RuleSpec::TimeOfDay { start, end, .. } = &rule.spec {
                let _ = write!(
                    text,
                    "{} is allowed only from {} to {} ({}).",
                    models_phrase(rule.spec.model()),
                    start.strftime("%H:%M"),
                    end.strftime("%H:%M"),
                    CompiledPolicy::zone_name(zone)
                );
            }
            if let Some(at) = opens_at {
                let _ = write!(text, " It opens again {}.", when(*at, now, zone));
            }
        }
        Breach::Limit(line) => write_limit_breach(&mut text, line, family, cost, now, &policy.tz),
        Breach::Share(share) => {
            let used = share.used_bp.unwrap_or_default();
            let _ = write!(
                text,
                "You have used {} % of the team's {} window; the limit is {} %",
                (used + 50) / 100,
                share.window.phrase(),
                share.percent
            );
            match share.resets_at {
                Some(at) => {
                    let _ = write!(text, "; it frees up {}.", when(at, now, &policy.tz));
                }
                None => text.push('.'),
            }
        }
    }
    text.push('\n');
    let _ = write!(text, "{name}'s usage: ");
    write_usage_summary(&mut text, report, &policy.tz);
    text.push_str("\nAsk your ccgate admin if you need more. ccgate status shows your usage.");
    text.replace('"', "'")
}

fn write_limit_breach(
    text: &mut String,
    line: &LimitUsage,
    family: ModelFamily,
    cost: u64,
    now: Timestamp,
    tz: &TimeZone,
) {
    let period = line.window.phrase();
    let scope = models_phrase(line.family);
    let forbidden = Limit::from_value(line.limit) == Ok(Limit::Forbidden);
    let _ = match line.metric {
        Metric::Prompts if forbidden => write!(text, "{scope} is not allowed for you."),
        Metric::Prompts => write!(
            text,
            "Your {} {scope} limit is used up: {} of {} prompts {period}.",
            line.window, line.used, line.limit
        ),
        Metric::Credits => write!(
            text,
            "Not enough credits: {} of {} left {period}, and a {family} prompt costs {cost}.",
            line.remaining.unwrap_or(0),
            line.limit
        ),
        Metric::Tokens(kind) => write!(
            text,
            "Your {} token budget for {scope} is spent: {} of {} {} {period}.",
            line.window,
            thousands(line.used),
            thousands(line.limit.max(0).unsigned_abs()),
            kind.phrase()
        ),
    };
    if forbidden {
        return;
    }
    if let Some(at) = line.resets_at {
        let _ = write!(text, " It resets {}.", when(at, now, tz));
    } else if let Some(at) = line.frees_at {
        let _ = write!(
            text,
            " This is a rolling window: the oldest use leaves it {}.",
            when(at, now, tz)
        );
    }
}

/// Every family's use today, the rule that binds it, credits and tokens.
fn write_usage_summary(text: &mut String, report: &UsageReport, tz: &TimeZone) {
    let mut parts = Vec::new();
    for family in ModelFamily::ALL {
        let used_today = report.today[family].prompts;
        match report.tightest_prompt_limit(family) {
            Some(line) if line.limit == 0 => parts.push(format!("{family} not allowed")),
            Some(line) if line.limit > 0 => parts.push(format!(
                "{family} {}/{} {}",
                line.used,
                line.limit,
                line.window.phrase()
            )),
            _ if used_today > 0 || family != ModelFamily::Other => {
                parts.push(format!("{family} {used_today} today"))
            }
            _ => {}
        }
    }
    let _ = write!(text, "{}.", parts.join(", "));
    if let Some(credits) = report.tightest_credits().filter(|c| c.limit >= 0) {
        let weights = report.credit_weights;
        let _ = write!(
            text,
            " Credits: {} of {} left {} (opus {}, sonnet {}, haiku {} per prompt)",
            credits.remaining.unwrap_or(0),
            credits.limit,
            credits.window.phrase(),
            weights.opus,
            weights.sonnet,
            weights.haiku
        );
        if let Some(at) = credits.resets_at {
            let _ = write!(text, ", resets {}", when(at, report.generated_at, tz));
        }
        text.push('.');
    }
    let tokens: Totals = report.today.sum();
    if tokens.tokens(TokenKind::Total) > 0 {
        let _ = write!(
            text,
            " Tokens today: {} in, {} out, {} cache read, {} cache write.",
            thousands(tokens.input_tokens),
            thousands(tokens.output_tokens),
            thousands(tokens.cache_read_input_tokens),
            thousands(tokens.cache_creation_input_tokens)
        );
    }
}

fn models_phrase(family: Option<ModelFamily>) -> String {
    family.map_or_else(|| "all models".to_owned(), |f| f.to_string())
}

/// `at 00:00 on Tue 24 Nov (Europe/Berlin), in 3h 12m`.
fn when(at: Timestamp, now: Timestamp, tz: &TimeZone) -> String {
    let local = at.to_zoned(tz.clone());
    format!(
        "at {} on {} {} {} ({}), {}",
        local.strftime("%H:%M"),
        local.strftime("%a"),
        local.day(),
        local.strftime("%b"),
        CompiledPolicy::zone_name(tz),
        in_duration(at.duration_since(now))
    )
}

/// `in 3h 12m`, `in 2d 4h`, `in 45m`, `in under a minute`.
pub fn in_duration(duration: SignedDuration) -> String {
    let minutes = duration.as_secs().max(0) / 60;
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, 0) => "in under a minute".to_owned(),
        (0, 0, m) => format!("in {m}m"),
        (0, h, m) => format!("in {h}h {m}m"),
        (d, h, _) => format!("in {d}d {h}h"),
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
