//! An incremental parser of server-sent events that keeps only the events
//! it is asked about: the bulk of a Messages stream (`content_block_delta`)
//! passes without being buffered.

/// Longest event data kept; anything longer is not a usage event.
const MAX_DATA: usize = 1 << 20;

#[derive(Debug)]
pub struct SseParser {
    wanted: fn(&str) -> bool,
    line: Vec<u8>,
    event: Option<String>,
    data: Vec<u8>,
    /// The current line is data of an event nobody wants: drop it as it comes.
    skipping_line: bool,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// `wanted(event_name)` says which events to keep; events without an
    /// `event:` line are kept (their name is empty).
    pub fn new(wanted: fn(&str) -> bool) -> Self {
        Self {
            wanted,
            line: Vec::new(),
            event: None,
            data: Vec::new(),
            skipping_line: false,
            after_cr: false,
        }
    }

    /// Feeds bytes; calls `on_event(name, data)` for each complete wanted event.
    pub fn feed(&mut self, mut chunk: &[u8], on_event: &mut impl FnMut(&str, &[u8])) {
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.append(chunk);
                    return;
                }
                Some(end) => {
                    self.append(&chunk[..end]);
                    self.end_line(on_event);
                    let crlf = chunk[end] == b'\r';
                    chunk = &chunk[end + 1..];
                    if crlf {
                        match chunk.first() {
                            Some(b'\n') => chunk = &chunk[1..],
                            None => self.after_cr = true,
                            _ => {}
                        }
                    }
                }
            }
        }
    }

    fn current_wanted(&self) -> bool {
        self.event.as_deref().is_none_or(self.wanted)
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.skipping_line {
            return;
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() >= 5
            && self.line.starts_with(b"data:")
            && (!self.current_wanted() || self.data.len() + self.line.len() > MAX_DATA)
        {
            self.skipping_line = true;
            self.line.clear();
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(&str, &[u8])) {
        if std::mem::take(&mut self.skipping_line) {
            return;
        }
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if !self.data.is_empty() && self.current_wanted() {
                on_event(self.event.as_deref().unwrap_or(""), &self.data);
            }
            self.event = None;
            self.data.clear();
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &b""[..]),
        };
        match field {
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"data" => {
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(name: &str) -> bool {
        matches!(name, "message_start" | "message_delta" | "error")
    }

    fn parse_in_pieces(stream: &[u8], piece: usize) -> Vec<(String, String)> {
        let mut parser = SseParser::new(wanted);
        let mut events = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.feed(chunk, &mut |name, data| {
                events.push((name.to_owned(), String::from_utf8_lossy(data).into_owned()))
            });
        }
        events
    }

    #[test]
    fn keeps_wanted_events_whatever_the_chunking() {
        let stream = b"event: message_start\ndata: {\"a\":1}\n\n: comment\r\n\
            event: content_block_delta\r\ndata: {\"big\":\"xxxxxxxxxxxxxxxxxxxx\"}\r\n\r\n\
            event: message_delta\rdata: {\"b\":2}\r\rdata: {\"untyped\":3}\n\n\
            event: error\ndata: line1\ndata: line2\n\n";
        let expected = vec![
            ("message_start".to_owned(), "{\"a\":1}".to_owned()),
            ("message_delta".to_owned(), "{\"b\":2}".to_owned()),
            (String::new(), "{\"untyped\":3}".to_owned()),
            ("error".to_owned(), "line1\nline2".to_owned()),
        ];
        for piece in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(
                parse_in_pieces(stream, piece),
                expected,
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn unwanted_data_is_not_buffered() {
        let mut parser = SseParser::new(wanted);
        parser.feed(b"event: content_block_delta\ndata: ", &mut |_, _| {});
        for _ in 0..1000 {
            parser.feed(&[b'x'; 1024], &mut |_, _| {});
        }
        assert!(parser.line.capacity() < 4096, "{}", parser.line.capacity());
    }
}
