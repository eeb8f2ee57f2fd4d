//! Reads a Messages API reply as it passes (SSE or JSON) for what must be
//! metered: token usage, `stop_reason`, and whether it ended in an error.

use ccgate_quota::wire::TokenUsage;
use serde::Deserialize;

use crate::sse::SseParser;

/// The largest JSON reply copied for parsing; longer replies pass untouched
/// and only their status is recorded.
const MAX_JSON_COPY: usize = 8 << 20;

#[derive(Debug, Default, Deserialize)]
struct UsageFields {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl UsageFields {
    /// Later values replace earlier ones (message_delta carries the final counts).
    fn apply(&self, usage: &mut TokenUsage) {
        let set = |slot: &mut u64, value: Option<u64>| {
            if let Some(v) = value {
                *slot = v;
            }
        };
        set(&mut usage.input_tokens, self.input_tokens);
        set(&mut usage.output_tokens, self.output_tokens);
        set(
            &mut usage.cache_creation_input_tokens,
            self.cache_creation_input_tokens,
        );
        set(
            &mut usage.cache_read_input_tokens,
            self.cache_read_input_tokens,
        );
    }
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    usage: Option<UsageFields>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    stop_reason: Option<String>,
}

fn wanted_event(name: &str) -> bool {
    matches!(
        name,
        "message_start" | "message_delta" | "message_stop" | "error"
    )
}

/// What the meter learned from a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    pub usage: TokenUsage,
    pub stop_reason: Option<String>,
    /// The reply started a message (`message_start`, or a JSON message).
    pub started: bool,
    /// The reply finished its message (`message_stop`, or a whole JSON message).
    pub finished: bool,
    /// The error type of an SSE `error` event or an error body.
    pub error: Option<String>,
}

#[derive(Debug)]
enum Format {
    Sse(Box<SseParser>),
    /// A JSON body, copied up to [`MAX_JSON_COPY`].
    Json(Vec<u8>),
    /// Too long to copy.
    Skipped,
}

#[derive(Debug)]
pub struct Meter {
    format: Format,
    reading: Reading,
}

impl Meter {
    pub fn new(content_type: Option<&str>) -> Self {
        let sse = content_type.is_some_and(|c| c.starts_with("text/event-stream"));
        Self {
            format: if sse {
                Format::Sse(Box::new(SseParser::new(wanted_event)))
            } else {
                Format::Json(Vec::new())
            },
            reading: Reading::default(),
        }
    }

    pub fn is_sse(&self) -> bool {
        matches!(self.format, Format::Sse(_))
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.format {
            Format::Sse(parser) => {
                let reading = &mut self.reading;
                parser.feed(chunk, &mut |_, data| apply_event(reading, data));
            }
            Format::Json(copy) => {
                if copy.len() + chunk.len() > MAX_JSON_COPY {
                    self.format = Format::Skipped;
                } else {
                    copy.extend_from_slice(chunk);
                }
            }
            Format::Skipped => {}
        }
    }

    /// Ends the reading; a JSON body is parsed now.
    pub fn finish(mut self) -> Reading {
        if let Format::Json(copy) = &self.format {
            apply_event(&mut self.reading, copy);
        }
        self.reading
    }
}

fn apply_event(reading: &mut Reading, data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Event>(data) else {
        return;
    };
    match event.kind.as_deref() {
        Some("message_start") => {
            reading.started = true;
            if let Some(usage) = event.message.as_ref().and_then(|m| m.usage.as_ref()) {
                usage.apply(&mut reading.usage);
            }
        }
        Some("message_delta") => {
            if let Some(usage) = &event.usage {
                usage.apply(&mut reading.usage);
            }
            if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                reading.stop_reason = Some(reason);
            }
        }
        Some("message_stop") => reading.finished = true,
        Some("error") => {
            reading.error = Some(
                event
                    .error
                    .and_then(|e| e.kind)
                    .unwrap_or_else(|| "error".to_owned()),
            );
        }
        // A whole non-streaming reply.
        Some("message") => {
            reading.started = true;
            reading.finished = true;
            if let Some(usage) = &event.usage {
                usage.apply(&mut reading.usage);
            }
            reading.stop_reason = event.stop_reason;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_yields_final_usage_and_stop_reason() {
        let mut meter = Meter::new(Some("text/event-stream; charset=utf-8"));
        meter.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n");
        meter.feed(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n");
        meter.feed(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":57}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        let reading = meter.finish();
        assert_eq!(
            reading.usage,
            TokenUsage {
                input_tokens: 12,
                output_tokens: 57,
                cache_creation_input_tokens: 100,
                cache_read_input_tokens: 2000
            }
        );
        assert_eq!(reading.stop_reason.as_deref(), Some("tool_use"));
        assert!(reading.started && reading.finished);
        assert_eq!(reading.error, None);
    }

    #[test]
    fn an_error_event_is_seen() {
        let mut meter = Meter::new(Some("text/event-stream"));
        meter.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        let reading = meter.finish();
        assert_eq!(reading.error.as_deref(), Some("overloaded_error"));
        assert!(!reading.finished);
    }

    #[test]
    fn json_replies_and_json_errors() {
        let mut meter = Meter::new(Some("application/json"));
        meter.feed(br#"{"id":"m","type":"message","stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":"#);
        meter.feed(br#"9}}"#);
        let reading = meter.finish();
        assert_eq!(
            (reading.usage.input_tokens, reading.usage.output_tokens),
            (5, 9)
        );
        assert!(reading.finished);
        let mut meter = Meter::new(Some("application/json"));
        meter.feed(br#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#);
        assert_eq!(meter.finish().error.as_deref(), Some("rate_limit_error"));
    }
}
