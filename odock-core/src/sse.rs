//! Server-Sent Events, the one codec every relay uses: LLM provider streams, MCP transports and
//! the server.
//!
//! [`SseDecoder`] is incremental — byte chunks in, whole [`SseEvent`]s out — and follows the
//! WHATWG event-stream rules: lines end in CRLF, LF or CR (also when a chunk splits the CRLF),
//! `data:` lines join with `\n`, `:` lines are comments, `id`/`event`/`retry` are kept, a leading
//! BOM is dropped and a block without a `data` line dispatches nothing. One event may not grow past
//! a size cap: a broken or hostile upstream gets an error, not unbounded memory. Bytes that are not
//! UTF-8 are an error too, never silently mangled.
//!
//! [`decode`] wraps the decoder around a byte stream; [`SseEvent::to_bytes`], [`encode_data`] and
//! [`encode_typed`] write events back out.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;

/// The largest event [`SseDecoder::new`] buffers (16 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The type of an event that did not name one.
pub const DEFAULT_EVENT_TYPE: &str = "message";

/// One event. `data` joins multiple `data:` lines with `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field, when the event carried one.
    pub id: Option<String>,
    /// The `event` field (the event's type), when the event named one.
    pub event: Option<String>,
    /// The event's data.
    pub data: String,
    /// The `retry` field (reconnection time in milliseconds), when valid.
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

    /// The event's type, `message` when unnamed (or named with an empty string).
    pub fn event_type(&self) -> &str {
        match self.event.as_deref() {
            Some(kind) if !kind.is_empty() => kind,
            _ => DEFAULT_EVENT_TYPE,
        }
    }

    /// Serialises the event with all its fields, ending with the blank line that dispatches it.
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
        put_data(&mut out, &self.data);
        out.freeze()
    }

    /// Parses exactly one serialised event (as relays' stream items are); `None` when `bytes`
    /// holds no event or is not a valid event stream.
    pub fn parse(bytes: &[u8]) -> Option<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        decoder.push_into(bytes, &mut events).ok()?;
        if events.is_empty() {
            return decoder.finish().ok().flatten();
        }
        Some(events.swap_remove(0))
    }
}

/// `data` as one unnamed event: `data: <line>\n` for each of its lines, then a blank line.
pub fn encode_data(data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 8);
    put_data(&mut out, data);
    out.freeze()
}

/// `data` as one event of type `event_type`: its `event:` line, then its data.
pub fn encode_typed(event_type: &str, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(event_type.len() + data.len() + 16);
    put_field(&mut out, "event", event_type);
    put_data(&mut out, data);
    out.freeze()
}

fn put_field(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_slice(b": ");
    out.put_slice(value.as_bytes());
    out.put_u8(b'\n');
}

fn put_data(out: &mut BytesMut, data: &str) {
    // `split('\n')` rather than `lines()`: an empty trailing line is data too.
    for line in data.split('\n') {
        put_field(out, "data", line);
    }
    out.put_u8(b'\n');
}

/// Why a byte stream is not a usable event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line is not UTF-8.
    #[error("event stream is not UTF-8")]
    NotUtf8,
    /// One event grew past the decoder's cap (in bytes).
    #[error("event stream event exceeds the size limit of {0} bytes")]
    TooLarge(usize),
}

/// Decodes an event stream incrementally: feed chunks with [`push`](Self::push), take whole
/// events; [`finish`](Self::finish) at the end of the stream.
#[derive(Debug)]
pub struct SseDecoder {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The last line ended in CR: an LF first in the next chunk completes that CRLF.
    after_cr: bool,
    /// The first line has been seen (a BOM may only lead it).
    started: bool,
    current: SseEvent,
    has_data: bool,
    max_event_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder capping one event at [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder capping one event (its data plus an unfinished line) at `max_event_bytes`.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            partial: Vec::new(),
            after_cr: false,
            started: false,
            current: SseEvent::default(),
            has_data: false,
            max_event_bytes,
        }
    }

    /// Adds `chunk` and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        self.push_into(chunk, &mut events)?;
        Ok(events)
    }

    /// Adds `chunk`, appending the events it completed to `out`. On an error, the events
    /// completed before it are in `out`; the decoder should not be fed again.
    pub fn push_into(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while let Some(end) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let event = if self.partial.is_empty() {
                self.line(&chunk[..end])?
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[..end]);
                let event = self.line(&line);
                // Keep the allocation for the next unfinished line.
                line.clear();
                self.partial = line;
                event?
            };
            out.extend(event);
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            chunk = &chunk[next..];
        }
        self.partial.extend_from_slice(chunk);
        self.check_size()
    }

    /// Ends the stream: an event left without its closing blank line is delivered now.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            if let Some(event) = self.line(&line)? {
                return Ok(Some(event));
            }
        }
        Ok(self.dispatch())
    }

    fn check_size(&self) -> Result<(), SseError> {
        if self.partial.len() + self.current.data.len() > self.max_event_bytes {
            return Err(SseError::TooLarge(self.max_event_bytes));
        }
        Ok(())
    }

    /// Takes one line without its end; returns the event a blank line dispatches.
    fn line(&mut self, mut line: &[u8]) -> Result<Option<SseEvent>, SseError> {
        if !self.started {
            self.started = true;
            line = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        }
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        if line.starts_with(':') {
            return Ok(None); // a comment (keep-alive)
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
                self.check_size()?;
            }
            "event" => self.current.event = Some(value.to_owned()),
            // An id holding NUL is ignored, as the spec says.
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.current.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(None)
    }

    /// The blank line: the event so far, when it had data; its fields start over either way.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.current);
        std::mem::replace(&mut self.has_data, false).then_some(event)
    }
}

/// What [`decode`] does with an event the stream ends in the middle of (no closing blank line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Deliver it: the upstream just forgot the last blank line.
    Deliver,
    /// Drop it, as a browser does: a cut-off event is not trusted.
    Drop,
}

/// Why a [`decode`] stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum SseStreamError<E> {
    /// The byte stream itself failed.
    #[error("event stream broke: {0}")]
    Transport(E),
    /// The bytes were not a usable event stream.
    #[error(transparent)]
    Decode(SseError),
}

/// Decodes a byte stream into events. The stream ends after its first error, which comes after
/// the events completed before it.
pub fn decode<S, B, E>(bytes: S, tail: Tail) -> SseStream<S, E>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    SseStream {
        bytes,
        decoder: SseDecoder::new(),
        ready: Vec::new().into_iter(),
        failure: None,
        tail,
        done: false,
    }
}

pin_project_lite::pin_project! {
    /// The events of a byte stream; see [`decode`].
    pub struct SseStream<S, E> {
        #[pin]
        bytes: S,
        decoder: SseDecoder,
        ready: std::vec::IntoIter<SseEvent>,
        // The error to report once `ready` is drained.
        failure: Option<SseStreamError<E>>,
        tail: Tail,
        done: bool,
    }
}

impl<S, B, E> Stream for SseStream<S, E>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    type Item = Result<SseEvent, SseStreamError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(event) = this.ready.next() {
                return Poll::Ready(Some(Ok(event)));
            }
            if let Some(error) = this.failure.take() {
                return Poll::Ready(Some(Err(error)));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            let mut events = Vec::new();
            match ready!(this.bytes.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    if let Err(error) = this.decoder.push_into(chunk.as_ref(), &mut events) {
                        *this.failure = Some(SseStreamError::Decode(error));
                        *this.done = true;
                    }
                }
                Some(Err(error)) => {
                    *this.failure = Some(SseStreamError::Transport(error));
                    *this.done = true;
                }
                None => {
                    *this.done = true;
                    if *this.tail == Tail::Deliver {
                        match this.decoder.finish() {
                            Ok(tail) => events.extend(tail),
                            Err(error) => *this.failure = Some(SseStreamError::Decode(error)),
                        }
                    }
                }
            }
            *this.ready = events.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::{stream, StreamExt};

    use super::*;

    /// A stream using every feature: BOM, CRLF/LF/CR endings, comments, multi-line data, ids,
    /// types, retry hints, multi-byte characters and a data-less block.
    const STREAM: &[u8] = "\u{feff}: hello\r\nid: 1\r\nevent: delta\r\ndata: {\"a\":\"é\"}\r\n\r\n\
        data: x\rdata:y\r\rretry: 1500\nevent: ping\n\nid: 2\ndata\ndata: 🦀 z\n\n: tail\n"
        .as_bytes();

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                id: Some("1".into()),
                event: Some("delta".into()),
                data: "{\"a\":\"é\"}".into(),
                retry: None,
            },
            SseEvent::message("x\ny"),
            SseEvent {
                id: Some("2".into()),
                ..SseEvent::message("\n🦀 z")
            },
        ]
    }

    fn decode_in_pieces(pieces: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut decoder = SseDecoder::new();
        let mut events = Vec::new();
        for piece in pieces {
            decoder.push_into(piece, &mut events)?;
        }
        events.extend(decoder.finish()?);
        Ok(events)
    }

    #[test]
    fn decodes_every_field_and_line_ending() {
        assert_eq!(decode_in_pieces(&[STREAM]).unwrap(), expected());
    }

    #[test]
    fn a_split_at_any_byte_boundary_gives_the_same_events() {
        for at in 0..=STREAM.len() {
            let (head, tail) = STREAM.split_at(at);
            assert_eq!(
                decode_in_pieces(&[head, tail]).unwrap(),
                expected(),
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(decode_in_pieces(&bytes).unwrap(), expected());
    }

    #[test]
    fn a_crlf_split_between_chunks_is_one_line_end() {
        let events = decode_in_pieces(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]).unwrap();
        assert_eq!(events, vec![SseEvent::message("a\nb")]);
    }

    #[test]
    fn blocks_without_data_dispatch_nothing_and_bad_fields_are_ignored() {
        let events = decode_in_pieces(&[
            b"id: 1\nevent: x\nretry: 5\n\nid: a\0b\nretry: 1s\nunknown: u\ndata: d\n\n",
        ])
        .unwrap();
        // The first block's fields do not leak into the second event.
        assert_eq!(events, vec![SseEvent::message("d")]);
        // An empty `data:` line is data: the MCP resumption priming event.
        let priming = SseEvent::parse(b"id: 7\ndata:\n\n").unwrap();
        assert_eq!(
            (priming.id.as_deref(), priming.data.as_str()),
            (Some("7"), "")
        );
    }

    #[test]
    fn the_unterminated_last_event_is_delivered_by_finish() {
        let mut decoder = SseDecoder::new();
        assert!(decoder.push(b"data: tail").unwrap().is_empty());
        assert_eq!(decoder.finish(), Ok(Some(SseEvent::message("tail"))));
        assert_eq!(decoder.finish(), Ok(None));
    }

    #[test]
    fn an_event_past_the_cap_is_an_error() {
        let mut decoder = SseDecoder::with_max_event_bytes(16);
        assert!(decoder.push(b"data: 0123456789\n").is_ok());
        assert_eq!(
            decoder.push(b"data: 0123456789\n"),
            Err(SseError::TooLarge(16))
        );
        // An endless line without an end is caught too.
        let mut decoder = SseDecoder::with_max_event_bytes(16);
        assert!(decoder.push(b"data: 0123456789").is_ok());
        assert!(decoder.push(b"0123456789").is_err());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error() {
        assert_eq!(
            SseDecoder::new().push(b"data: \xff\xfe\n\n"),
            Err(SseError::NotUtf8)
        );
        assert_eq!(SseEvent::parse(b"data: \xff\n\n"), None);
    }

    #[test]
    fn events_round_trip_through_their_bytes() {
        let event = SseEvent {
            id: Some("42".into()),
            event: Some("endpoint".into()),
            data: "a\n\nb".into(),
            retry: Some(1000),
        };
        assert_eq!(SseEvent::parse(&event.to_bytes()), Some(event));
        assert_eq!(
            encode_data("a\nb"),
            Bytes::from_static(b"data: a\ndata: b\n\n")
        );
        assert_eq!(encode_data(""), Bytes::from_static(b"data: \n\n"));
        assert_eq!(
            encode_typed("error", "{}"),
            Bytes::from_static(b"event: error\ndata: {}\n\n")
        );
        assert_eq!(SseEvent::message("x").event_type(), "message");
    }

    fn chunks(
        parts: &'static [&'static [u8]],
    ) -> impl Stream<Item = Result<&'static [u8], &'static str>> {
        stream::iter(parts.iter().copied().map(Ok))
    }

    #[tokio::test]
    async fn the_stream_keeps_or_drops_the_tail_as_asked() {
        let parts: &[&[u8]] = &[b"data: one\n", b"\ndata: cut"];
        let delivered: Vec<_> = decode(chunks(parts), Tail::Deliver).collect().await;
        let data: Vec<String> = delivered.into_iter().map(|e| e.unwrap().data).collect();
        assert_eq!(data, vec!["one", "cut"]);
        let dropped: Vec<_> = decode(chunks(parts), Tail::Drop).collect().await;
        let data: Vec<String> = dropped.into_iter().map(|e| e.unwrap().data).collect();
        assert_eq!(data, vec!["one"]);
    }

    #[tokio::test]
    async fn the_stream_ends_after_its_first_error_and_keeps_the_events_before_it() {
        let parts: &[&[u8]] = &[b"data: a\n\ndata: \xff\n\n", b"data: never\n\n"];
        let mut events = decode(chunks(parts), Tail::Deliver);
        assert_eq!(events.next().await.unwrap().unwrap().data, "a");
        assert!(matches!(
            events.next().await,
            Some(Err(SseStreamError::Decode(SseError::NotUtf8)))
        ));
        assert!(events.next().await.is_none());

        let broken = stream::iter(vec![
            Ok(&b"data: a\n\n"[..]),
            Err("reset"),
            Ok(b"data: b\n\n"),
        ]);
        let items: Vec<_> = decode(broken, Tail::Deliver).collect().await;
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1], Err(SseStreamError::Transport("reset"))));
    }
}
