//! Relaying an OpenAI-compatible `chat.completion.chunk` stream, one [`StreamChunk`] per event.
//!
//! Each event is relayed as the upstream sent it, with three things learned on the way:
//!
//! - a chunk carrying a non-null `usage` reports it (the upstream's exact count, for billing);
//! - the usage-only chunk (`"choices": []` plus `usage`) exists because the gateway asked for it,
//!   so it is withheld from the client unless the client asked for usage itself;
//! - the UTF-8 length of the generated text (`delta.content`, `delta.reasoning_content`,
//!   `delta.tool_calls[].function.arguments`, and a legacy completion's `text`), so a stream cut
//!   short can still be billed.
//!
//! [`ChatAnswer`] is how every OpenAI-compatible family (OpenAI, vLLM, Mistral, Hugging Face)
//! reads chat-shaped answers when forwarding (see `forward`).
//!
//! Chunks are probed with borrowed, mostly-ignored fields rather than parsed into a tree; data
//! that is not JSON (like `[DONE]`) is relayed unchanged.

use std::fmt;

use bytes::Bytes;
use odock_core::{ReportedUsage, StreamChunk};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::forward::ReadAnswer;
use super::usage::{reported_usage, unary_facts};
use crate::sse::{encode_event, Event};

/// Chat-completion-shaped answers: chat, legacy completions, embeddings, audio, vLLM's pooling
/// routes, Mistral and Hugging Face chat.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChatAnswer {
    /// Relay a usage-only stream chunk. False only when the gateway asked for it and the client
    /// did not.
    pub keep_usage_chunk: bool,
}

impl ReadAnswer for ChatAnswer {
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        unary_facts(body)
    }

    fn event(&mut self, event: &Event) -> StreamChunk {
        chunk_from_event(event, self.keep_usage_chunk)
    }
}

/// The gateway's view of one chunk; every other field is skipped.
#[derive(Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default)]
    choices: Option<Vec<ChoiceProbe>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[serde(default)]
    delta: Option<DeltaProbe>,
    /// Legacy completions stream their text here instead of in a delta.
    #[serde(default)]
    text: TextLen,
}

#[derive(Deserialize)]
struct DeltaProbe {
    #[serde(default)]
    content: TextLen,
    #[serde(default)]
    reasoning_content: TextLen,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallProbe>>,
}

#[derive(Deserialize)]
struct ToolCallProbe {
    #[serde(default)]
    function: Option<FunctionProbe>,
}

#[derive(Deserialize)]
struct FunctionProbe {
    #[serde(default)]
    arguments: TextLen,
}

/// Turns one upstream event into what the client receives and what the gateway learns from it.
pub fn chunk_from_event(event: &Event, client_wants_usage: bool) -> StreamChunk {
    let Ok(probe) = serde_json::from_str::<ChunkProbe<'_>>(&event.data) else {
        // `[DONE]`, comments-as-data, or something we do not understand: relay it as sent.
        return StreamChunk {
            bytes: encode_event(event),
            ..StreamChunk::default()
        };
    };
    let choices = probe.choices.unwrap_or_default();
    let usage_only = choices.is_empty() && probe.usage.is_some();
    let output_text_bytes = choices
        .iter()
        .map(|choice| {
            choice
                .delta
                .as_ref()
                .map_or(0, DeltaProbe::text_bytes)
                .saturating_add(choice.text.0)
        })
        .fold(0u64, u64::saturating_add);
    let bytes = if usage_only && !client_wants_usage {
        Bytes::new()
    } else {
        encode_event(event)
    };
    StreamChunk {
        bytes,
        usage: probe.usage.and_then(reported_usage),
        output_text_bytes,
    }
}

impl DeltaProbe {
    fn text_bytes(&self) -> u64 {
        let arguments = self
            .tool_calls
            .iter()
            .flatten()
            .filter_map(|call| call.function.as_ref())
            .map(|function| function.arguments.0)
            .fold(0u64, u64::saturating_add);
        self.content
            .0
            .saturating_add(self.reasoning_content.0)
            .saturating_add(arguments)
    }
}

/// The UTF-8 length of a string field, without keeping the string. Anything that is not a
/// string (null, or an unexpected shape from a loosely compatible upstream) counts as 0.
#[derive(Default)]
pub(crate) struct TextLen(pub u64);

impl<'de> Deserialize<'de> for TextLen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextLenVisitor).map(TextLen)
    }
}

struct TextLenVisitor;

impl<'de> Visitor<'de> for TextLenVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        Ok(v.len() as u64)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_none<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use odock_core::TokenUsage;

    fn data(data: &str) -> Event {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    #[test]
    fn completion_chunks_count_their_text() {
        let chunk = chunk_from_event(
            &data(r#"{"id":"cmpl-1","choices":[{"index":0,"text":"héllo","finish_reason":null}]}"#),
            false,
        );
        assert_eq!(chunk.output_text_bytes, 6);
        assert!(!chunk.bytes.is_empty());

        let usage_only = chunk_from_event(
            &data(
                r#"{"id":"cmpl-1","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}"#,
            ),
            false,
        );
        assert!(
            usage_only.bytes.is_empty(),
            "the gateway's usage chunk is withheld"
        );
        assert_eq!(usage_only.usage.unwrap().tokens.output, 2);
    }

    const STREAM: &str = include_str!("fixtures/chat_completion_stream.sse");
    const TOOL_CALL_STREAM: &str = include_str!("fixtures/chat_completion_stream_tool_calls.sse");

    /// The fixture's events, split the way the SSE parser would.
    fn events(fixture: &str) -> Vec<Event> {
        fixture
            .split("\n\n")
            .filter(|block| !block.is_empty())
            .map(|block| Event {
                event: Some("message".into()),
                data: block.strip_prefix("data: ").unwrap().to_owned(),
                ..Event::default()
            })
            .collect()
    }

    fn relay(fixture: &str, client_wants_usage: bool) -> Vec<StreamChunk> {
        events(fixture)
            .iter()
            .map(|event| chunk_from_event(event, client_wants_usage))
            .collect()
    }

    fn client_bytes(chunks: &[StreamChunk]) -> String {
        chunks
            .iter()
            .map(|c| std::str::from_utf8(&c.bytes).unwrap())
            .collect()
    }

    #[test]
    fn the_usage_chunk_is_reported_and_withheld_from_a_client_that_did_not_ask() {
        let chunks = relay(STREAM, false);
        assert_eq!(chunks.len(), 8);

        let usage: Vec<_> = chunks.iter().filter_map(|c| c.usage.as_ref()).collect();
        assert_eq!(usage.len(), 1, "only the usage-only chunk reports usage");
        assert_eq!(
            usage[0].tokens,
            TokenUsage {
                input: 19,
                output: 10,
                ..TokenUsage::default()
            }
        );
        assert_eq!(usage[0].raw["total_tokens"], 29);

        let usage_chunk = &chunks[6];
        assert!(usage_chunk.usage.is_some());
        assert!(usage_chunk.bytes.is_empty(), "stripped for the client");

        let expected: String = STREAM
            .split("\n\n")
            .filter(|block| !block.is_empty() && !block.contains("\"choices\":[]"))
            .map(|block| format!("{block}\n\n"))
            .collect();
        assert_eq!(
            client_bytes(&chunks),
            expected,
            "everything else is relayed byte for byte"
        );
        assert!(client_bytes(&chunks).ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn a_client_that_asked_for_usage_receives_the_stream_unchanged() {
        let chunks = relay(STREAM, true);
        assert_eq!(client_bytes(&chunks), STREAM);
        assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
    }

    #[test]
    fn generated_text_is_counted_in_utf8_bytes() {
        let chunks = relay(STREAM, false);
        let per_chunk: Vec<u64> = chunks.iter().map(|c| c.output_text_bytes).collect();
        assert_eq!(per_chunk, vec![0, 5, 2, 6, 12, 0, 0, 0]);
        assert_eq!(
            per_chunk.iter().sum::<u64>(),
            "Hello! Héllo wörld 👋".len() as u64
        );
    }

    #[test]
    fn tool_call_arguments_count_as_generated_text() {
        let chunks = relay(TOOL_CALL_STREAM, false);
        let total: u64 = chunks.iter().map(|c| c.output_text_bytes).sum();
        assert_eq!(total, r#"{"location":"Zürich"}"#.len() as u64);
        let usage = chunks.iter().find_map(|c| c.usage.as_ref()).unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (81, 16));
    }

    #[test]
    fn reasoning_content_counts_as_generated_text() {
        let event = Event {
            data: r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think","content":null}},{"index":1,"delta":{"content":"ab"}}]}"#.into(),
            ..Event::default()
        };
        assert_eq!(chunk_from_event(&event, false).output_text_bytes, 7);
    }

    #[test]
    fn usage_on_a_chunk_with_choices_is_reported_and_relayed() {
        // Some compatible servers put usage on the last content chunk.
        let event = Event {
            data: r#"{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}"#.into(),
            ..Event::default()
        };
        let chunk = chunk_from_event(&event, false);
        assert_eq!(chunk.usage.unwrap().tokens.output, 1);
        assert!(!chunk.bytes.is_empty());
        assert_eq!(chunk.output_text_bytes, 1);
    }

    #[test]
    fn unparseable_data_is_relayed_unchanged() {
        for data in [
            "[DONE]",
            "not json {",
            "{\"choices\": 5}",
            "line one\nline two",
        ] {
            let event = Event {
                data: data.into(),
                ..Event::default()
            };
            let chunk = chunk_from_event(&event, false);
            assert_eq!(chunk.bytes, crate::sse::encode_data(data), "{data}");
            assert!(chunk.usage.is_none());
            assert_eq!(chunk.output_text_bytes, 0);
        }
    }

    #[test]
    fn odd_text_shapes_count_as_zero_instead_of_failing_the_chunk() {
        let event = Event {
            data: r#"{"choices":[{"delta":{"content":[{"type":"text","text":"x"}]}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#.into(),
            ..Event::default()
        };
        let chunk = chunk_from_event(&event, false);
        assert_eq!(chunk.output_text_bytes, 0);
        assert!(chunk.usage.is_some());
    }
}
