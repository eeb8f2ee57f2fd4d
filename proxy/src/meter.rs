//! Reads a Messages API reply as it passes (SSE or JSON) for what must be
//! metered: token usage, `stop_reason`, whether it ended in an error, the
//! tool calls it asks for (their results may continue the turn), and, for a
//! reply cut before its final usage, an estimate of what it carried.

use ccgate_quota::wire::TokenUsage;
use serde::Deserialize;

use crate::sse::SseParser;

/// The largest JSON reply copied for parsing; longer replies pass untouched
/// and only their status is recorded.
const MAX_JSON_COPY: usize = 8 << 20;
/// Tool calls remembered per reply.
const MAX_TOOL_USES: usize = 64;
/// The JSON around a delta's text (`{"type":"content_block_delta",…}`).
const DELTA_FRAMING: usize = 70;
/// Characters per token for estimates (English prose and code average 3.5–4).
const CHARS_PER_TOKEN: usize = 4;

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
struct ContentBlock {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    id: Option<String>,
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
    /// `content_block_start`'s block.
    #[serde(default)]
    content_block: Option<ContentBlock>,
    /// A whole JSON message's blocks.
    #[serde(default)]
    content: Option<Vec<ContentBlock>>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    stop_reason: Option<String>,
}

fn wanted_event(name: &str) -> bool {
    matches!(
        name,
        "message_start" | "message_delta" | "message_stop" | "error" | "content_block_start"
    )
}

/// The bulk of a stream: only how many and how big.
fn counted_event(name: &str) -> bool {
    name == "content_block_delta"
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
    /// The final usage arrived (`message_delta`, or a whole JSON message).
    pub final_usage: bool,
    /// Tool calls the reply asked for (`tool_use` blocks).
    pub tool_uses: Vec<String>,
    /// Content deltas seen, and the bytes of their data.
    pub deltas: u64,
    pub delta_bytes: u64,
}

impl Reading {
    /// Output tokens the deltas seen carried, at least one per delta.
    pub fn estimated_output_tokens(&self) -> u64 {
        let text = (self.delta_bytes as usize)
            .saturating_sub(self.deltas as usize * DELTA_FRAMING)
            .div_ceil(CHARS_PER_TOKEN);
        (text as u64).max(self.deltas)
    }
}

/// Input tokens a request of this many bytes carries, for a reply that never
/// reported them (JSON framing and tool schemas included: an over-estimate).
pub fn estimated_input_tokens(request_bytes: usize) -> u64 {
    request_bytes.div_ceil(CHARS_PER_TOKEN) as u64
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
                Format::Sse(Box::new(SseParser::new(wanted_event, counted_event)))
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
        match &self.format {
            Format::Json(copy) => apply_event(&mut self.reading, copy),
            Format::Sse(parser) => {
                let counted = parser.counted();
                self.reading.deltas = counted.events;
                self.reading.delta_bytes = counted.data_bytes;
            }
            Format::Skipped => {}
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
        Some("content_block_start") => {
            if let Some(block) = event.content_block {
                note_tool_use(reading, block);
            }
        }
        Some("message_delta") => {
            if let Some(usage) = &event.usage {
                usage.apply(&mut reading.usage);
                reading.final_usage = true;
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
                reading.final_usage = true;
            }
            reading.stop_reason = event.stop_reason;
            for block in event.content.into_iter().flatten() {
                note_tool_use(reading, block);
            }
        }
        _ => {}
    }
}

fn note_tool_use(reading: &mut Reading, block: ContentBlock) {
    if block.kind.as_deref() == Some("tool_use")
        && let Some(id) = block.id
        && reading.tool_uses.len() < MAX_TOOL_USES
        && id.len() <= 200
    {
        reading.tool_uses.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_yields_final_usage_and_stop_reason() {
        let mut meter = Meter::new(Some("text/event-stream; charset=utf-8"));
        meter.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n");
        meter.feed(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"Bash\",\"input\":{}}}\n\n");
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
        assert!(reading.started && reading.finished && reading.final_usage);
        assert_eq!(reading.error, None);
        assert_eq!(reading.tool_uses, ["toolu_01"]);
    }

    #[test]
    fn a_cut_stream_is_estimated_from_its_deltas() {
        let mut meter = Meter::new(Some("text/event-stream"));
        meter.feed(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n");
        let text = "x".repeat(400);
        for _ in 0..20 {
            let delta = format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
            );
            meter.feed(delta.as_bytes());
        }
        let reading = meter.finish();
        assert!(!reading.final_usage);
        assert_eq!(reading.usage.output_tokens, 1, "message_start's count only");
        assert_eq!(reading.deltas, 20);
        // 20 deltas of 400 characters: about 2,000 tokens, never fewer than 20.
        let estimate = reading.estimated_output_tokens();
        assert!((1_900..=2_300).contains(&estimate), "{estimate}");
        assert_eq!(estimated_input_tokens(4_000), 1_000);
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
        meter.feed(br#"{"id":"m","type":"message","stop_reason":"end_turn","content":[{"type":"tool_use","id":"toolu_j","name":"Bash","input":{}}],"usage":{"input_tokens":5,"output_tokens":"#);
        meter.feed(br#"9}}"#);
        let reading = meter.finish();
        assert_eq!(
            (reading.usage.input_tokens, reading.usage.output_tokens),
            (5, 9)
        );
        assert!(reading.finished);
        assert_eq!(reading.tool_uses, ["toolu_j"]);
        let mut meter = Meter::new(Some("application/json"));
        meter.feed(br#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#);
        assert_eq!(meter.finish().error.as_deref(), Some("rate_limit_error"));
    }
}
