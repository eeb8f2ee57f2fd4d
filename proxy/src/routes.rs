//! Which requests to Anthropic's API the proxy forwards. Only an explicit
//! list of methods and paths passes — the Messages API (gated and metered)
//! and the endpoints Claude Code itself calls — and only over https to port
//! 443. Paths are matched after normalising (percent-decoding, repeated and
//! trailing slashes, dot segments, case), and the request goes out with the
//! canonical path, so what is gated is exactly what Anthropic receives.

use std::collections::HashMap;
use std::sync::Mutex;

use http::{Method, Uri};
use jiff::{SignedDuration, Timestamp};

/// The one host ccgate intercepts.
pub use ccgate_machine::ca::ANTHROPIC_HOST;

/// What the proxy does with an allowed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/messages`: classified, gated, metered.
    Messages,
    /// Claude Code's other calls: forwarded (with the team credential
    /// swapped in, in that mode), not metered.
    Forward,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error(
        "ccgate does not forward {method} {path} to api.anthropic.com: only the Messages API and Claude Code's own endpoints pass through ccgate"
    )]
    NotAllowed { method: String, path: String },
    #[error("ccgate forwards api.anthropic.com only over https on port 443")]
    NotHttps,
    #[error("ccgate could not read the request path {0:?}")]
    BadPath(String),
}

/// A path segment of the allow-list: fixed text, or a value (an id).
#[derive(Clone, Copy)]
enum Segment {
    Fixed(&'static str),
    Value,
}

use Segment::{Fixed, Value};

/// The allow-list. Seen with Claude Code 2.1.330 under an API key, a
/// subscription login and a long-lived token (`docs/architecture.md`).
const ALLOWED: &[(Method, &[Segment], Route)] = &[
    (
        Method::POST,
        &[Fixed("v1"), Fixed("messages")],
        Route::Messages,
    ),
    (
        Method::POST,
        &[Fixed("v1"), Fixed("messages"), Fixed("count_tokens")],
        Route::Forward,
    ),
    (Method::GET, &[Fixed("v1"), Fixed("models")], Route::Forward),
    (
        Method::GET,
        &[Fixed("v1"), Fixed("models"), Value],
        Route::Forward,
    ),
    (
        Method::GET,
        &[Fixed("v1"), Fixed("mcp_servers")],
        Route::Forward,
    ),
    (Method::GET, &[Fixed("api"), Fixed("hello")], Route::Forward),
    (
        Method::GET,
        &[Fixed("api"), Fixed("oauth"), Fixed("profile")],
        Route::Forward,
    ),
    (
        Method::GET,
        &[Fixed("api"), Fixed("oauth"), Fixed("usage")],
        Route::Forward,
    ),
    (
        Method::GET,
        &[
            Fixed("api"),
            Fixed("oauth"),
            Fixed("claude_cli"),
            Fixed("roles"),
        ],
        Route::Forward,
    ),
    (
        Method::GET,
        &[Fixed("api"), Fixed("claude_cli"), Fixed("bootstrap")],
        Route::Forward,
    ),
    (
        Method::GET,
        &[Fixed("api"), Fixed("claude_code"), Fixed("settings")],
        Route::Forward,
    ),
    (
        Method::GET,
        &[Fixed("api"), Fixed("claude_code"), Fixed("policy_limits")],
        Route::Forward,
    ),
    (
        Method::GET,
        &[Fixed("api"), Fixed("claude_code_penguin_mode")],
        Route::Forward,
    ),
    (
        Method::GET,
        &[Fixed("api"), Fixed("directory"), Fixed("server-urls")],
        Route::Forward,
    ),
    (
        Method::POST,
        &[Fixed("api"), Fixed("eval"), Value],
        Route::Forward,
    ),
    (
        Method::POST,
        &[Fixed("api"), Fixed("event_logging"), Fixed("batch")],
        Route::Forward,
    ),
    (
        Method::POST,
        &[
            Fixed("api"),
            Fixed("event_logging"),
            Fixed("v2"),
            Fixed("batch"),
        ],
        Route::Forward,
    ),
    (
        Method::POST,
        &[Fixed("api"), Fixed("artifacts"), Fixed("mcp")],
        Route::Forward,
    ),
];

/// Whether `host` (as a client wrote it) names Anthropic's API host:
/// case and a trailing dot do not matter.
pub fn is_anthropic_host(host: &str) -> bool {
    host.trim_end_matches('.')
        .eq_ignore_ascii_case(ANTHROPIC_HOST)
}

/// Decides what to do with a request to Anthropic's host; on success, the
/// URI to send it with (canonical host, port and path; the query kept).
pub fn route(method: &Method, uri: &Uri) -> Result<(Route, Uri), Refusal> {
    if uri.scheme_str() != Some("https") || uri.port_u16().is_some_and(|port| port != 443) {
        return Err(Refusal::NotHttps);
    }
    let raw = uri.path();
    let segments = segments(raw).ok_or_else(|| Refusal::BadPath(raw.to_owned()))?;
    let not_allowed = || Refusal::NotAllowed {
        method: method.to_string(),
        path: format!("/{}", segments.join("/")),
    };
    let (pattern, route) = ALLOWED
        .iter()
        .find(|(allowed, pattern, _)| allowed == method && matches(pattern, &segments))
        .map(|(_, pattern, route)| (*pattern, *route))
        .ok_or_else(not_allowed)?;
    let mut path = String::new();
    for (segment, given) in pattern.iter().zip(&segments) {
        path.push('/');
        path.push_str(match segment {
            Fixed(text) => text,
            Value => given,
        });
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let canonical = Uri::builder()
        .scheme("https")
        .authority(ANTHROPIC_HOST)
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| Refusal::BadPath(raw.to_owned()))?;
    Ok((route, canonical))
}

fn matches(pattern: &[Segment], segments: &[String]) -> bool {
    pattern.len() == segments.len()
        && pattern
            .iter()
            .zip(segments)
            .all(|(segment, given)| match segment {
                Fixed(text) => given.eq_ignore_ascii_case(text),
                Value => given
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            })
}

/// The path's segments, percent-decoded, without empty and `.` segments and
/// with `..` applied. `None` for a path that decodes to something that is
/// not plain text or hides a separator (`%2F`).
fn segments(path: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for raw in path.split('/') {
        let decoded = percent_decode(raw)?;
        if decoded.contains(['/', '\\', '\0', ';']) {
            return None;
        }
        match decoded.as_str() {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(decoded),
        }
    }
    Some(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Refused requests are reported to the server, each method and path once
/// an hour (a new Claude Code endpoint would otherwise flood the log).
#[derive(Debug, Default)]
pub struct RefusalLog {
    reported: Mutex<HashMap<String, Timestamp>>,
}

const REPORT_EVERY: SignedDuration = SignedDuration::from_hours(1);
/// Different refused paths remembered at most.
const MAX_REMEMBERED: usize = 1000;

impl RefusalLog {
    /// Whether this refusal is to be reported now.
    pub fn report(&self, method: &Method, path: &str, now: Timestamp) -> bool {
        let key = format!("{method} {}", path.chars().take(200).collect::<String>());
        let mut reported = self.reported.lock().expect("refusal log lock");
        if reported
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < REPORT_EVERY)
        {
            return false;
        }
        if reported.len() >= MAX_REMEMBERED {
            reported.retain(|_, at| now.duration_since(*at) < REPORT_EVERY);
        }
        reported.insert(key, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    fn route_of(method: Method, text: &str) -> Result<(Route, String), Refusal> {
        route(&method, &uri(text)).map(|(route, uri)| (route, uri.to_string()))
    }

    #[test]
    fn every_spelling_of_the_messages_path_is_gated() {
        for path in [
            "/v1/messages",
            "/v1/messages/",
            "//v1/messages",
            "/v1//messages",
            "/v1/%6Dessages",
            "/V1/MESSAGES",
            "/v1/./messages",
            "/x/../v1/messages",
        ] {
            let (route, canonical) = route_of(
                Method::POST,
                &format!("https://api.anthropic.com{path}?beta=true"),
            )
            .unwrap();
            assert_eq!(route, Route::Messages, "{path}");
            assert_eq!(
                canonical, "https://api.anthropic.com/v1/messages?beta=true",
                "{path}"
            );
        }
    }

    #[test]
    fn anything_not_on_the_list_is_refused() {
        for (method, path) in [
            (Method::POST, "/v1/chat/completions"),
            (Method::POST, "/v1/complete"),
            (Method::POST, "/v1/messages/batches"),
            (Method::GET, "/v1/messages"),
            (Method::POST, "/v1/files"),
            (Method::POST, "/api/eval/a%2Fb"),
            (Method::POST, "/v1/messages%2F"),
            (Method::POST, "/v1/messages;x"),
        ] {
            let result = route_of(method.clone(), &format!("https://api.anthropic.com{path}"));
            assert!(result.is_err(), "{method} {path}: {result:?}");
        }
    }

    #[test]
    fn claude_codes_own_calls_pass_with_their_ids_intact() {
        let (route, canonical) = route_of(
            Method::POST,
            "https://api.anthropic.com/api/eval/sdk-zAZezfDKGoZuXXKe",
        )
        .unwrap();
        assert_eq!(route, Route::Forward);
        assert_eq!(
            canonical,
            "https://api.anthropic.com/api/eval/sdk-zAZezfDKGoZuXXKe"
        );
        let (_, canonical) = route_of(
            Method::GET,
            "https://api.anthropic.com/api/claude_cli/bootstrap?entrypoint=cli",
        )
        .unwrap();
        assert!(canonical.ends_with("/api/claude_cli/bootstrap?entrypoint=cli"));
    }

    #[test]
    fn refusals_are_reported_once_an_hour() {
        let log = RefusalLog::default();
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert!(log.report(&Method::POST, "/v1/chat/completions", now));
        assert!(!log.report(&Method::POST, "/v1/chat/completions", now));
        assert!(log.report(&Method::GET, "/v1/chat/completions", now));
        let later = now.checked_add(REPORT_EVERY).unwrap();
        assert!(log.report(&Method::POST, "/v1/chat/completions", later));
    }

    #[test]
    fn only_https_on_443_and_only_anthropics_host() {
        assert_eq!(
            route_of(Method::POST, "http://api.anthropic.com/v1/messages"),
            Err(Refusal::NotHttps)
        );
        assert_eq!(
            route_of(Method::POST, "https://api.anthropic.com:8443/v1/messages"),
            Err(Refusal::NotHttps)
        );
        assert!(route_of(Method::POST, "https://api.anthropic.com:443/v1/messages").is_ok());
        assert!(is_anthropic_host("API.Anthropic.com."));
        assert!(!is_anthropic_host("api.anthropic.com.evil.example"));
    }
}
