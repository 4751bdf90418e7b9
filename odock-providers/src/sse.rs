//! Provider streams over the one event-stream codec ([`odock_core::sse`]).
//!
//! [`events`] turns an upstream byte stream into parsed [`Event`]s, bounding the silence between
//! two events by the provider's timeout; [`encode_event`] and [`encode_data`] write events back
//! out for the client.
//!
//! The stream ends after its first error: a transport failure, an idle timeout or bytes that are
//! not an event stream yield one `Err` and nothing more, so the gateway can close the client's
//! stream cleanly. An event the upstream cut off (no closing blank line) is dropped.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use odock_core::sse::{self as codec, SseStreamError, Tail};
use odock_core::ProviderError;

pub use odock_core::sse::{encode_data, SseEvent as Event};

/// Parses `bytes` as an event stream. Each wait for the next event may last at most
/// `idle_timeout`; a longer silence yields [`ProviderError::Timeout`]`(idle_timeout)` and ends
/// the stream.
pub fn events<S>(
    bytes: S,
    idle_timeout: Duration,
) -> BoxStream<'static, Result<Event, ProviderError>>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static,
{
    let parsed = codec::decode(bytes, Tail::Drop).boxed();
    stream::unfold(Some(parsed), move |state| async move {
        let mut parsed = state?;
        match tokio::time::timeout(idle_timeout, parsed.next()).await {
            Ok(Some(Ok(event))) => Some((Ok(event), Some(parsed))),
            Ok(None) => None,
            Ok(Some(Err(error))) => Some((Err(stream_error(error, idle_timeout)), None)),
            Err(_elapsed) => Some((Err(ProviderError::Timeout(idle_timeout)), None)),
        }
    })
    .boxed()
}

fn stream_error(error: SseStreamError<reqwest::Error>, timeout: Duration) -> ProviderError {
    match error {
        SseStreamError::Transport(error) => crate::http::provider_error(error, timeout),
        SseStreamError::Decode(error) => {
            ProviderError::InvalidResponse(format!("malformed event stream: {error}"))
        }
    }
}

/// `event` as the client should see it: its `event:` line when it named a type, then its data.
/// Ids and retry hints are the upstream's business and are not relayed.
pub fn encode_event(event: &Event) -> Bytes {
    match event.event_type() {
        codec::DEFAULT_EVENT_TYPE => encode_data(&event.data),
        kind => codec::encode_typed(kind, &event.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn byte_stream(
        parts: Vec<&'static str>,
    ) -> impl Stream<Item = Result<Bytes, reqwest::Error>> + Send + 'static {
        stream::iter(
            parts
                .into_iter()
                .map(|part| Ok(Bytes::from_static(part.as_bytes()))),
        )
    }

    #[tokio::test]
    async fn events_are_parsed_across_chunk_boundaries() {
        let parts = vec![
            "data: {\"a\":",
            "1}\n\nevent: ping\ndata: x\n",
            "\n: comment\n\ndata: [DONE]\n\n",
        ];
        let events: Vec<Event> = events(byte_stream(parts), Duration::from_secs(5))
            .try_collect()
            .await
            .unwrap();
        let summary: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.event_type(), e.data.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("message", "{\"a\":1}"),
                ("ping", "x"),
                ("message", "[DONE]")
            ]
        );
    }

    #[tokio::test]
    async fn recorded_streams_decode_to_every_event() {
        for (fixture, expected) in [
            (
                include_str!("openai_compat/fixtures/chat_completion_stream.sse"),
                8,
            ),
            (include_str!("anthropic/fixtures/message_stream.sse"), 17),
        ] {
            let events: Vec<Event> = events(byte_stream(vec![fixture]), Duration::from_secs(5))
                .try_collect()
                .await
                .unwrap();
            assert_eq!(events.len(), expected);
        }
    }

    #[tokio::test]
    async fn a_silent_upstream_times_out_once_and_the_stream_ends() {
        let idle = Duration::from_millis(50);
        let bytes = byte_stream(vec!["data: first\n\n"]).chain(stream::pending());
        let mut events = events(bytes, idle);
        assert_eq!(events.next().await.unwrap().unwrap().data, "first");
        assert_eq!(events.next().await, Some(Err(ProviderError::Timeout(idle))));
        assert!(events.next().await.is_none());
    }

    #[tokio::test]
    async fn bytes_that_are_not_utf8_end_the_stream_with_one_error() {
        let bytes = stream::iter(vec![
            Ok(Bytes::from_static(b"data: ok\n\n")),
            Ok(Bytes::from_static(b"data: \xff\xfe\n\n")),
            Ok(Bytes::from_static(b"data: never\n\n")),
        ]);
        let mut events = events(bytes, Duration::from_secs(5));
        assert_eq!(events.next().await.unwrap().unwrap().data, "ok");
        assert!(matches!(
            events.next().await,
            Some(Err(ProviderError::InvalidResponse(_)))
        ));
        assert!(events.next().await.is_none());
    }

    #[test]
    fn data_is_encoded_one_line_per_data_field() {
        assert_eq!(
            encode_data("[DONE]"),
            Bytes::from_static(b"data: [DONE]\n\n")
        );
        assert_eq!(
            encode_data("a\nb"),
            Bytes::from_static(b"data: a\ndata: b\n\n")
        );
        assert_eq!(encode_data(""), Bytes::from_static(b"data: \n\n"));
    }

    #[test]
    fn named_events_keep_their_type() {
        let event = Event {
            event: Some("error".into()),
            data: "{\"x\":1}".into(),
            id: Some("7".into()),
            retry: None,
        };
        assert_eq!(
            encode_event(&event),
            Bytes::from_static(b"event: error\ndata: {\"x\":1}\n\n")
        );
        let plain = Event {
            event: Some("message".into()),
            data: "hi".into(),
            ..Event::default()
        };
        assert_eq!(encode_event(&plain), Bytes::from_static(b"data: hi\n\n"));
    }
}
