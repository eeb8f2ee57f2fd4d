//! Small text helpers shared by the channels.

use crate::Severity;

/// At most `max` characters; a cut is marked with "…" (counted in `max`).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    escape_truncated(s, max, |_| None)
}

/// Escapes `s` char by char with `esc` and stops before the result would
/// exceed `max` characters, so a cut never splits an entity like `&amp;`.
pub(crate) fn escape_truncated(
    s: &str,
    max: usize,
    esc: fn(char) -> Option<&'static str>,
) -> String {
    let total: usize = s
        .chars()
        .map(|c| esc(c).map_or(1, |e| e.chars().count()))
        .sum();
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::with_capacity(s.len().min(max.saturating_mul(4)));
    let mut used = 0;
    for c in s.chars() {
        let (piece, len) = match esc(c) {
            Some(e) => (e, e.chars().count()),
            None => ("", 1),
        };
        if used + len > budget {
            out.push('…');
            return out;
        }
        used += len;
        if piece.is_empty() {
            out.push(c);
        } else {
            out.push_str(piece);
        }
    }
    out
}

/// HTML text escaping (Matrix's formatted_body) and Slack's mrkdwn escaping,
/// which is the same three characters minus quotes.
pub(crate) fn html_char(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        _ => None,
    }
}

pub(crate) fn slack_char(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

pub(crate) fn html_escape(s: &str) -> String {
    escape_truncated(s, usize::MAX, html_char)
}

/// The start of a response body for error messages: whitespace collapsed,
/// at most 300 characters.
pub(crate) fn excerpt(body: &str) -> String {
    let collapsed = body.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, 300)
}

/// A prefix that makes the severity visible at a glance in chat channels.
pub(crate) fn severity_emoji(s: Severity) -> &'static str {
    match s {
        Severity::Info => "ℹ️",
        Severity::Warning => "⚠️",
        Severity::Critical => "🚨",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_chars_and_marks_cut() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo!", 5), "héll…");
        assert_eq!(truncate("", 3), "");
    }

    #[test]
    fn escaping_never_splits_an_entity() {
        assert_eq!(escape_truncated("a&b", 10, slack_char), "a&amp;b");
        // 'a' + '&amp;' would be 6 > budget 4: cut before the entity.
        assert_eq!(escape_truncated("a&b", 5, slack_char), "a…");
        assert_eq!(
            html_escape("<b>\"x\"</b>"),
            "&lt;b&gt;&quot;x&quot;&lt;/b&gt;"
        );
    }

    #[test]
    fn excerpt_collapses_and_cuts() {
        assert_eq!(excerpt("  a\n\n b  "), "a b");
        assert_eq!(excerpt(&"x".repeat(1000)).chars().count(), 300);
    }
}
