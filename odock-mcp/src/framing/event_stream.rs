//! MCP event streams over the one event-stream codec ([`odock_core::sse`]). MCP relays keep the
//! event `id` (clients resume with `Last-Event-ID`) and type, and deliver an event the upstream
//! left without its closing blank line.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use odock_core::sse::{self, SseStreamError, Tail};
use odock_core::McpError;

pub use odock_core::sse::{SseDecoder, SseEvent};

/// Decodes a byte stream into events; the stream ends after its first error.
pub fn sse_events<S, E>(bytes: S) -> BoxStream<'static, Result<SseEvent, McpError>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    sse::decode(bytes, Tail::Deliver)
        .map(|event| {
            event.map_err(|error| match error {
                SseStreamError::Transport(error) => {
                    McpError::Upstream(format!("event stream broke: {error}"))
                }
                SseStreamError::Decode(error) => McpError::Upstream(error.to_string()),
            })
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn chunks(
        parts: &'static [&'static [u8]],
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        stream::iter(parts.iter().map(|part| Ok(Bytes::from_static(part))))
    }

    #[tokio::test]
    async fn decodes_a_byte_stream_and_delivers_the_unterminated_tail() {
        let parts: &[&'static [u8]] = &[b"id: 1\ndata: one\n", b"\ndata: two\n\ndata: tail"];
        let events: Vec<_> = sse_events(chunks(parts)).collect().await;
        let events: Vec<SseEvent> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(events[0].id.as_deref(), Some("1"));
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, vec!["one", "two", "tail"]);
    }

    #[tokio::test]
    async fn a_broken_stream_is_one_upstream_error() {
        let parts: &[&'static [u8]] = &[b"data: ok\n\n", b"data: \xff\n\n", b"data: no\n\n"];
        let mut events = sse_events(chunks(parts));
        assert_eq!(events.next().await.unwrap().unwrap().data, "ok");
        assert!(matches!(
            events.next().await,
            Some(Err(McpError::Upstream(_)))
        ));
        assert!(events.next().await.is_none());
    }
}
