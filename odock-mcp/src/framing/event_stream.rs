//! Server-Sent Events: an incremental decoder for upstream streams and the serialiser that writes
//! events back out. MCP relays keep the event `id` (clients resume with `Last-Event-ID`) and type.

use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use odock_core::McpError;

/// The largest event the decoder buffers; a longer one means a broken or hostile upstream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One event. `data` joins multiple `data:` lines with `\n`, as the SSE spec says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
}

impl SseEvent {
    /// A plain `message` event carrying `data`.
    pub fn message(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// The event's type, `message` when unnamed.
    pub fn event_type(&self) -> &str {
        self.event.as_deref().unwrap_or("message")
    }

    /// Serialises the event, ending with the blank line that dispatches it.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.data.len() + 32);
        if let Some(id) = &self.id {
            put_field(&mut out, "id", id);
        }
        if let Some(event) = &self.event {
            put_field(&mut out, "event", event);
        }
        if let Some(retry) = self.retry {
            put_field(&mut out, "retry", &retry.to_string());
        }
        for line in self.data.split('\n') {
            put_field(&mut out, "data", line);
        }
        out.put_u8(b'\n');
        out.freeze()
    }

    /// Parses exactly one serialised event (as the transports' stream items are); `None` when
    /// `bytes` holds no event.
    pub fn parse(bytes: &[u8]) -> Option<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = decoder.push(bytes).unwrap_or_default();
        if events.is_empty() {
            return decoder.finish();
        }
        Some(events.swap_remove(0))
    }
}

fn put_field(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_u8(b'\n');
}

/// Decodes an SSE byte stream incrementally: feed chunks with [`push`](Self::push), take whole events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: BytesMut,
    current: SseEvent,
    has_field: bool,
    data_lines: usize,
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `chunk` and returns the events it completed. Errors when one event grows past the
    /// buffer limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, McpError> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(newline) = self.pending.iter().position(|b| *b == b'\n') {
            let line = self.pending.split_to(newline + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(event) = self.line(line) {
                events.push(event);
            }
        }
        if self.pending.len() + self.current.data.len() > MAX_EVENT_BYTES {
            return Err(McpError::Upstream(
                "event stream event exceeds the size limit".into(),
            ));
        }
        Ok(events)
    }

    /// Ends the stream: an event left without its closing blank line is still delivered.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            let line = line.strip_suffix(b"\r").unwrap_or(&line).to_vec();
            if let Some(event) = self.line(&line) {
                return Some(event);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(b":") {
            return None; // a comment (keep-alive)
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match name {
            b"data" => {
                if self.has_data() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.mark_data();
            }
            b"event" => {
                self.current.event = Some(value.into_owned());
                self.has_field = true;
            }
            b"id" => {
                self.current.id = Some(value.into_owned());
                self.has_field = true;
            }
            b"retry" => {
                if let Ok(retry) = value.parse() {
                    self.current.retry = Some(retry);
                    self.has_field = true;
                }
            }
            _ => {}
        }
        None
    }

    fn has_data(&self) -> bool {
        self.data_lines > 0
    }

    fn mark_data(&mut self) {
        self.data_lines += 1;
        self.has_field = true;
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !self.has_field {
            return None;
        }
        self.has_field = false;
        self.data_lines = 0;
        Some(std::mem::take(&mut self.current))
    }
}

/// Decodes a byte stream into events; the stream ends after its first error.
pub fn sse_events<S, E>(bytes: S) -> BoxStream<'static, Result<SseEvent, McpError>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + 'static,
{
    let state = Some((bytes.boxed(), SseDecoder::new(), Vec::<SseEvent>::new()));
    stream::unfold(state, |state| async move {
        let (mut bytes, mut decoder, mut ready) = state?;
        loop {
            if !ready.is_empty() {
                let event = ready.remove(0);
                return Some((Ok(event), Some((bytes, decoder, ready))));
            }
            match bytes.next().await {
                Some(Ok(chunk)) => match decoder.push(&chunk) {
                    Ok(events) => ready = events,
                    Err(error) => return Some((Err(error), None)),
                },
                Some(Err(error)) => {
                    let error = McpError::Upstream(format!("event stream broke: {error}"));
                    return Some((Err(error), None));
                }
                None => return decoder.finish().map(|event| (Ok(event), None)),
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_events_split_across_chunks() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"id: 1\nevent: mess").unwrap().is_empty());
        let events = decoder
            .push(b"age\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: x\ndata: y\n\n")
            .unwrap();
        assert_eq!(
            events,
            vec![
                SseEvent {
                    id: Some("1".into()),
                    event: Some("message".into()),
                    data: "{\"a\":1}".into(),
                    retry: None
                },
                SseEvent::message("x\ny"),
            ]
        );
    }

    #[test]
    fn round_trips_and_keeps_priming_events() {
        let event = SseEvent {
            id: Some("42".into()),
            event: Some("endpoint".into()),
            data: "/messages?session=1".into(),
            retry: Some(1000),
        };
        assert_eq!(SseEvent::parse(&event.to_bytes()), Some(event));
        // An id with empty data (a resumption priming event) is still an event.
        let priming = SseEvent::parse(b"id: 7\ndata:\n\n").unwrap();
        assert_eq!(priming.id.as_deref(), Some("7"));
        assert_eq!(priming.data, "");
    }

    #[test]
    fn unterminated_last_event_is_delivered_at_the_end() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: tail").unwrap().is_empty());
        assert_eq!(decoder.finish(), Some(SseEvent::message("tail")));
        assert_eq!(decoder.finish(), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut decoder = SseDecoder::new();
        for chunk in [
            &b"\xff\xfe:\n\n"[..],
            b"data\n\n",
            b"retry: x\n\n",
            b"\r\r\n",
            b":",
        ] {
            let _ = decoder.push(chunk).unwrap();
        }
        assert_eq!(SseEvent::parse(b""), None);
    }

    #[tokio::test]
    async fn decodes_a_byte_stream() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"data: one\n")),
            Ok(Bytes::from_static(b"\ndata: two\n\n")),
        ];
        let events: Vec<_> = sse_events(stream::iter(chunks)).collect().await;
        let data: Vec<String> = events.into_iter().map(|e| e.unwrap().data).collect();
        assert_eq!(data, vec!["one", "two"]);
    }
}
