//! Relaying a Responses API stream, one [`StreamChunk`] per event.
//!
//! The Responses API streams typed events (`event: response.created`, `response.output_text.delta`,
//! …, `response.completed`) and has no `stream_options`: usage arrives, unasked, inside the final
//! event's `response` object (`response.completed`, or `response.incomplete` / `response.failed`
//! when generation stopped early). Every event is relayed to the client unchanged; on the way the
//! gateway learns:
//!
//! - the usage in `response.usage` when an event carries one (it is `null` until the end);
//! - the UTF-8 length of generated text (the `delta` of every `*.delta` event but audio ones, whose
//!   deltas are base64: output text, refusals, reasoning, function arguments), so a stream cut
//!   short can still be billed.
//!
//! [`ResponsesAnswer`] reads Responses answers for OpenAI and vLLM alike.

use std::borrow::Cow;

use bytes::Bytes;
use odock_core::{ReportedUsage, StreamChunk};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::forward::ReadAnswer;
use super::stream::TextLen;
use super::usage::{reported_any_usage, unary_facts};
use crate::sse::{encode_event, Event};

/// Ends the type of an event whose `delta` is generated output.
const DELTA: &str = ".delta";

/// Responses API answers: a `response` object, or a stream of typed events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponsesAnswer;

impl ReadAnswer for ResponsesAnswer {
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        unary_facts(body)
    }

    fn event(&mut self, event: &Event) -> StreamChunk {
        chunk_from_event(event)
    }
}

/// The gateway's view of one event; every other field is skipped.
#[derive(Deserialize)]
struct EventProbe<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    delta: TextLen,
    #[serde(default, borrow)]
    response: Option<ResponseProbe<'a>>,
}

#[derive(Deserialize)]
struct ResponseProbe<'a> {
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// Turns one upstream event into what the client receives (the event as sent) and what the
/// gateway learns from it.
pub fn chunk_from_event(event: &Event) -> StreamChunk {
    let bytes = encode_event(event);
    let Ok(probe) = serde_json::from_str::<EventProbe<'_>>(&event.data) else {
        return StreamChunk {
            bytes,
            ..StreamChunk::default()
        };
    };
    // The data's `type` names the event; the SSE `event:` line repeats it.
    let kind = probe.kind.as_deref().unwrap_or(event.event_type());
    // Audio deltas are base64, not generated text.
    let output_text_bytes = if kind.ends_with(DELTA) && !kind.contains("audio") {
        probe.delta.0
    } else {
        0
    };
    StreamChunk {
        bytes,
        usage: probe
            .response
            .and_then(|response| response.usage)
            .and_then(reported_any_usage),
        output_text_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odock_core::TokenUsage;

    const STREAM: &str = include_str!("fixtures/responses_stream.sse");

    /// The fixture's events, split the way the SSE parser would.
    fn events() -> Vec<Event> {
        STREAM
            .split("\n\n")
            .filter(|block| !block.is_empty())
            .map(|block| {
                let (event, data) = block.split_once('\n').unwrap();
                Event {
                    event: Some(event.strip_prefix("event: ").unwrap().to_owned()),
                    data: data.strip_prefix("data: ").unwrap().to_owned(),
                    ..Event::default()
                }
            })
            .collect()
    }

    #[test]
    fn every_event_is_relayed_unchanged_and_usage_comes_from_response_completed() {
        let chunks: Vec<StreamChunk> = events().iter().map(chunk_from_event).collect();
        let relayed: String = chunks
            .iter()
            .map(|c| std::str::from_utf8(&c.bytes).unwrap())
            .collect();
        assert_eq!(relayed, STREAM);

        let usage: Vec<_> = chunks.iter().filter_map(|c| c.usage.as_ref()).collect();
        assert_eq!(usage.len(), 1, "response.created carries usage: null");
        assert_eq!(
            usage[0].tokens,
            TokenUsage {
                input: 37,
                output: 11,
                cached_input: 5,
                reasoning: 2,
                ..TokenUsage::default()
            }
        );
        assert_eq!(usage[0].raw["total_tokens"], 48);
        assert!(chunks.last().unwrap().usage.is_some());
    }

    #[test]
    fn only_text_deltas_count_as_generated_text() {
        let total: u64 = events()
            .iter()
            .map(chunk_from_event)
            .map(|c| c.output_text_bytes)
            .sum();
        // `response.output_text.done` repeats the whole text; it is not counted twice.
        assert_eq!(total, "Bonjour! Héllo wörld 👋".len() as u64);

        let arguments = Event {
            event: Some("response.function_call_arguments.delta".into()),
            data: r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"city\":"}"#.into(),
            ..Event::default()
        };
        assert_eq!(chunk_from_event(&arguments).output_text_bytes, 8);

        let audio = Event {
            event: Some("response.audio.delta".into()),
            data: r#"{"type":"response.audio.delta","delta":"AAAA"}"#.into(),
            ..Event::default()
        };
        assert_eq!(chunk_from_event(&audio).output_text_bytes, 0);
    }

    #[test]
    fn an_incomplete_response_still_reports_its_usage() {
        let event = Event {
            event: Some("response.incomplete".into()),
            data: r#"{"type":"response.incomplete","response":{"status":"incomplete","usage":{"input_tokens":3,"output_tokens":16}}}"#.into(),
            ..Event::default()
        };
        let usage = chunk_from_event(&event).usage.unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (3, 16));
    }

    #[test]
    fn data_that_is_not_json_is_relayed_unchanged() {
        let event = Event {
            event: Some("error".into()),
            data: "upstream hiccup".into(),
            ..Event::default()
        };
        let chunk = chunk_from_event(&event);
        assert_eq!(chunk.bytes, "event: error\ndata: upstream hiccup\n\n");
        assert!(chunk.usage.is_none());
    }
}
