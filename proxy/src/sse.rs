//! An incremental parser of server-sent events that keeps only the events
//! it is asked about: the bulk of a Messages stream (`content_block_delta`)
//! passes without being buffered; of those, only the number and the size
//! of their data are counted. Its buffers are reused from event to event.

/// Longest event data kept; anything longer is not a usage event.
const MAX_DATA: usize = 1 << 20;

/// Events whose data was counted, not kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub events: u64,
    pub data_bytes: u64,
}

#[derive(Debug)]
pub struct SseParser {
    wanted: fn(&str) -> bool,
    counted_names: fn(&str) -> bool,
    line: Vec<u8>,
    /// The current event's name (`has_event`: an `event:` line was seen).
    event: String,
    has_event: bool,
    data: Vec<u8>,
    /// The current line is data of an event nobody wants: drop it as it comes.
    skipping_line: bool,
    /// The skipped line's bytes are counted.
    counting_line: bool,
    /// Nothing of the counted line's value was seen yet (its one leading
    /// space, if any, is not data).
    value_start: bool,
    /// The current event had counted data.
    counting_event: bool,
    counted: Counted,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// `wanted(event_name)` says which events to keep; events without an
    /// `event:` line are kept (their name is empty). Of the others, those
    /// `counted(event_name)` names are counted (see [`Self::counted`]).
    pub fn new(wanted: fn(&str) -> bool, counted: fn(&str) -> bool) -> Self {
        Self {
            wanted,
            counted_names: counted,
            line: Vec::new(),
            event: String::new(),
            has_event: false,
            data: Vec::new(),
            skipping_line: false,
            counting_line: false,
            value_start: false,
            counting_event: false,
            counted: Counted::default(),
            after_cr: false,
        }
    }

    /// The unwanted events counted so far.
    pub fn counted(&self) -> Counted {
        self.counted
    }

    /// Feeds bytes; calls `on_event(name, data)` for each complete wanted event.
    pub fn feed(&mut self, mut chunk: &[u8], on_event: &mut impl FnMut(&str, &[u8])) {
        if chunk.is_empty() {
            return;
        }
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

    fn name(&self) -> Option<&str> {
        self.has_event.then_some(self.event.as_str())
    }

    fn current_wanted(&self) -> bool {
        self.name().is_none_or(self.wanted)
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.skipping_line {
            if self.counting_line {
                self.count_value(bytes);
            }
            return;
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() >= 5
            && self.line.starts_with(b"data:")
            && (!self.current_wanted() || self.data.len() + self.line.len() > MAX_DATA)
        {
            self.skipping_line = true;
            self.counting_line =
                !self.current_wanted() && self.name().is_some_and(self.counted_names);
            if self.counting_line {
                self.counting_event = true;
                self.value_start = true;
                let line = std::mem::take(&mut self.line);
                self.count_value(&line[5..]);
                self.line = line;
            }
            self.line.clear();
        }
    }

    fn count_value(&mut self, mut bytes: &[u8]) {
        if self.value_start && !bytes.is_empty() {
            self.value_start = false;
            bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
        }
        self.counted.data_bytes += bytes.len() as u64;
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(&str, &[u8])) {
        if std::mem::take(&mut self.skipping_line) {
            self.counting_line = false;
            return;
        }
        if self.line.is_empty() {
            if !self.data.is_empty() && self.current_wanted() {
                on_event(if self.has_event { &self.event } else { "" }, &self.data);
            }
            if std::mem::take(&mut self.counting_event) {
                self.counted.events += 1;
            }
            self.has_event = false;
            self.data.clear();
            return;
        }
        if self.line[0] != b':' {
            let line = &self.line;
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (&line[..], &b""[..]),
            };
            match field {
                b"event" => {
                    self.event.clear();
                    self.event.push_str(&String::from_utf8_lossy(value));
                    self.has_event = true;
                }
                b"data" => {
                    if !self.data.is_empty() {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                }
                _ => {}
            }
        }
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(name: &str) -> bool {
        matches!(name, "message_start" | "message_delta" | "error")
    }

    fn parse_in_pieces(stream: &[u8], piece: usize) -> Vec<(String, String)> {
        let mut parser = SseParser::new(wanted, |_| false);
        let mut events = Vec::new();
        for chunk in stream.chunks(piece) {
            parser.feed(chunk, &mut |name, data| {
                events.push((name.to_owned(), String::from_utf8_lossy(data).into_owned()))
            });
        }
        events
    }

    /// Found by the property test: an empty chunk between `\r` and `\n`
    /// (hyper may pass on empty data frames) made the `\n` a blank line,
    /// ending the event before its data.
    #[test]
    fn an_empty_chunk_between_cr_and_lf_changes_nothing() {
        let mut parser = SseParser::new(wanted, |_| false);
        let mut events = Vec::new();
        for chunk in [&b"event: message_start\r"[..], b"", b"\ndata: {}\r\n\r\n"] {
            parser.feed(chunk, &mut |name, data| {
                events.push((name.to_owned(), String::from_utf8_lossy(data).into_owned()))
            });
        }
        assert_eq!(events, [("message_start".to_owned(), "{}".to_owned())]);
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
    fn unwanted_events_can_be_counted_without_being_kept() {
        let stream = b"event: content_block_delta\ndata: 12345\n\nevent: ping\ndata: {}\n\n\
            event: content_block_delta\r\ndata: 123\r\n\r\n";
        for piece in [1, 2, 5, stream.len()] {
            let mut parser = SseParser::new(wanted, |name| name == "content_block_delta");
            for chunk in stream.chunks(piece) {
                parser.feed(chunk, &mut |name, _| panic!("{name} was kept"));
            }
            assert_eq!(
                parser.counted(),
                Counted {
                    events: 2,
                    data_bytes: 8
                },
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn unwanted_data_is_not_buffered() {
        let mut parser = SseParser::new(wanted, |_| false);
        parser.feed(b"event: content_block_delta\ndata: ", &mut |_, _| {});
        for _ in 0..1000 {
            parser.feed(&[b'x'; 1024], &mut |_, _| {});
        }
        assert!(parser.line.capacity() < 4096, "{}", parser.line.capacity());
    }
}
