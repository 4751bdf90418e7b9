//! Anthropic Messages streams, one [`StreamChunk`] per upstream event.
//!
//! - [`NativeRelay`] (`/v1/messages`): every event is relayed as sent (`event:` and `data:`
//!   lines), while the gateway learns the usage and the generated text on the way.
//! - [`ChunkTranslator`] (`/v1/llm/chat`): events become OpenAI `chat.completion.chunk`s: the role
//!   on `message_start`, text deltas as `delta.content`, a `tool_use` block as a `delta.tool_calls`
//!   entry (numbered among the tool calls, as OpenAI does) followed by its `input_json_delta`s as
//!   argument fragments, `message_delta` as the chunk with `finish_reason`, then on `message_stop`
//!   the usage chunk (when the client asked) and `data: [DONE]`. Thinking is not carried over.
//!
//! Usage comes in two halves, `message_start.message.usage` (input and cache counts) and
//! `message_delta.usage` (the final output count); both relays report the merged object once, on
//! `message_delta`. Text, tool input and thinking deltas count as generated text so that a stream
//! cut short before `message_delta` can still be billed.

use bytes::{BufMut, Bytes, BytesMut};
use odock_core::{ProviderError, StreamChunk, TokenUsage};
use serde::Serialize;
use serde_json::Value;

use super::convert::finish_reason;
use super::usage::{merge, openai_usage, reported_usage, OpenAiUsage};
use super::wire::{ContentBlock, Delta, StreamEvent};
use crate::sse::{encode_data, encode_event, Event};

/// Relays a native stream unchanged, reporting its usage.
#[derive(Debug, Default)]
pub struct NativeRelay {
    start_usage: Value,
}

impl NativeRelay {
    /// A relay that has seen no usage yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the client receives for `event` (the event itself) and what the gateway learns.
    pub fn chunk(&mut self, event: &Event) -> StreamChunk {
        let mut chunk = StreamChunk {
            bytes: encode_event(event),
            ..StreamChunk::default()
        };
        // Anything unreadable is still relayed; it just teaches the gateway nothing.
        let Ok(parsed) = serde_json::from_str::<StreamEvent>(&event.data) else {
            return chunk;
        };
        match parsed {
            StreamEvent::MessageStart { message } => self.start_usage = message.usage,
            StreamEvent::ContentBlockDelta { delta, .. } => {
                chunk.output_text_bytes = delta.generated_bytes();
            }
            StreamEvent::MessageDelta { usage, .. } => {
                chunk.usage = reported_usage(merge(&self.start_usage, &usage));
            }
            _ => {}
        }
        chunk
    }
}

/// Translates a stream into OpenAI chunks. One per upstream response.
#[derive(Debug)]
pub struct ChunkTranslator {
    model_name: String,
    created: u64,
    client_wants_usage: bool,
    id: String,
    start_usage: Value,
    usage: Option<TokenUsage>,
    /// `(content block index, tool call index)` of each `tool_use` block seen.
    tool_calls: Vec<(usize, usize)>,
    finished: bool,
}

impl ChunkTranslator {
    /// A translator for the Odock model `model_name`; `created` is the chunks' Unix timestamp.
    pub fn new(model_name: impl Into<String>, created: u64, client_wants_usage: bool) -> Self {
        Self {
            model_name: model_name.into(),
            created,
            client_wants_usage,
            id: String::new(),
            start_usage: Value::Null,
            usage: None,
            tool_calls: Vec::new(),
            finished: false,
        }
    }

    /// The chunk for one upstream event. An `error` event (e.g. `overloaded_error`) becomes
    /// [`ProviderError::Upstream`], as does an upstream error on this route before the stream.
    pub fn translate(&mut self, event: &Event) -> Result<StreamChunk, ProviderError> {
        if self.finished {
            return Ok(StreamChunk::default());
        }
        let parsed = serde_json::from_str::<StreamEvent>(&event.data).map_err(|e| {
            ProviderError::InvalidResponse(format!(
                "unreadable `{}` event: {e}",
                event.event_type()
            ))
        })?;
        let mut chunk = StreamChunk::default();
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.start_usage = message.usage;
                chunk.bytes = self.delta_chunk(
                    ChunkDelta {
                        role: Some("assistant"),
                        content: Some(""),
                        ..ChunkDelta::default()
                    },
                    None,
                );
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ContentBlock::ToolUse { id, name, .. } => {
                    let call = self.tool_calls.len();
                    self.tool_calls.push((index, call));
                    chunk.bytes = self.tool_call_chunk(ToolCallDelta {
                        index: call,
                        id: Some(&id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(&name),
                            arguments: "",
                        },
                    });
                }
                ContentBlock::Text { text } if !text.is_empty() => {
                    chunk.bytes = self.content_chunk(&text);
                    chunk.output_text_bytes = text.len() as u64;
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => {
                chunk.output_text_bytes = delta.generated_bytes();
                match &delta {
                    Delta::TextDelta { text } if !text.is_empty() => {
                        chunk.bytes = self.content_chunk(text);
                    }
                    Delta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                        if let Some(call) = self.tool_call_index(index) {
                            chunk.bytes = self.tool_call_chunk(ToolCallDelta {
                                index: call,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: partial_json,
                                },
                            });
                        }
                    }
                    _ => {}
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                let reported = reported_usage(merge(&self.start_usage, &usage));
                self.usage = reported.as_ref().map(|r| r.tokens.clone());
                chunk.usage = reported;
                chunk.bytes = self.delta_chunk(
                    ChunkDelta::default(),
                    Some(finish_reason(delta.stop_reason.as_deref())),
                );
            }
            StreamEvent::MessageStop => {
                self.finished = true;
                let mut out = BytesMut::new();
                if let (true, Some(usage)) = (self.client_wants_usage, &self.usage) {
                    out.put(self.encode(&Chunk {
                        id: &self.id,
                        object: CHUNK_OBJECT,
                        created: self.created,
                        model: &self.model_name,
                        choices: &[],
                        usage: Some(openai_usage(usage)),
                    }));
                }
                out.put(encode_data("[DONE]"));
                chunk.bytes = out.freeze();
            }
            StreamEvent::Error { error } => {
                return Err(ProviderError::Upstream {
                    status: error.status(),
                    message: error.message,
                    retry_after: None,
                });
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Other => {}
        }
        Ok(chunk)
    }

    /// Called when the upstream stream ends: an error unless `message_stop` was seen, since the
    /// client's stream would otherwise end without a finish reason or `[DONE]`.
    pub fn finish(&self) -> Option<ProviderError> {
        (!self.finished).then(|| {
            ProviderError::InvalidResponse("the upstream stream ended before message_stop".into())
        })
    }

    fn tool_call_index(&self, block: usize) -> Option<usize> {
        self.tool_calls
            .iter()
            .find(|(index, _)| *index == block)
            .map(|(_, call)| *call)
    }

    fn content_chunk(&self, text: &str) -> Bytes {
        self.delta_chunk(
            ChunkDelta {
                content: Some(text),
                ..ChunkDelta::default()
            },
            None,
        )
    }

    fn tool_call_chunk(&self, call: ToolCallDelta<'_>) -> Bytes {
        self.delta_chunk(
            ChunkDelta {
                tool_calls: Some([call]),
                ..ChunkDelta::default()
            },
            None,
        )
    }

    fn delta_chunk(&self, delta: ChunkDelta<'_>, finish_reason: Option<&'static str>) -> Bytes {
        self.encode(&Chunk {
            id: &self.id,
            object: CHUNK_OBJECT,
            created: self.created,
            model: &self.model_name,
            choices: &[ChunkChoice {
                index: 0,
                delta,
                finish_reason,
            }],
            usage: None,
        })
    }

    fn encode(&self, chunk: &Chunk<'_>) -> Bytes {
        match serde_json::to_string(chunk) {
            Ok(json) => encode_data(&json),
            // Strings and integers always serialise; this arm only keeps the signature infallible.
            Err(_) => Bytes::new(),
        }
    }
}

const CHUNK_OBJECT: &str = "chat.completion.chunk";

/// An OpenAI `chat.completion.chunk`, serialised in OpenAI's member order.
#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OpenAiUsage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: ChunkDelta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct ChunkDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = include_str!("fixtures/message_stream.sse");
    const CHAT_STREAM: &str = include_str!("fixtures/chat_completion_stream.sse");

    /// The fixture's events, split the way the SSE parser would.
    fn events(fixture: &str) -> Vec<Event> {
        fixture
            .split("\n\n")
            .filter(|block| !block.trim().is_empty())
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

    fn text(chunks: &[StreamChunk]) -> String {
        chunks
            .iter()
            .map(|c| std::str::from_utf8(&c.bytes).unwrap())
            .collect()
    }

    const GENERATED: &str = concat!(
        "The user wants the weather.",
        "Let me check Zürich 🌤",
        "{\"location\": \"Zürich\"}"
    );

    #[test]
    fn native_events_are_relayed_byte_for_byte_with_merged_usage_on_message_delta() {
        let mut relay = NativeRelay::new();
        let chunks: Vec<_> = events(STREAM).iter().map(|e| relay.chunk(e)).collect();
        assert_eq!(text(&chunks), STREAM);

        let reported: Vec<_> = chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.usage.as_ref().map(|u| (i, u)))
            .collect();
        assert_eq!(reported.len(), 1, "usage is reported once");
        let (at, usage) = reported[0];
        assert_eq!(at, chunks.len() - 2, "on message_delta");
        assert_eq!(
            usage.tokens,
            TokenUsage {
                input: 472 + 120 + 2048,
                cached_input: 2048,
                output: 89,
                ..TokenUsage::default()
            }
        );
        assert_eq!(usage.raw["output_tokens"], 89);
        assert_eq!(usage.raw["cache_creation_input_tokens"], 120);
        assert_eq!(usage.raw["service_tier"], "standard");

        let generated: u64 = chunks.iter().map(|c| c.output_text_bytes).sum();
        assert_eq!(generated, GENERATED.len() as u64);
    }

    #[test]
    fn golden_stream_becomes_the_expected_openai_chunks() {
        let mut translator = ChunkTranslator::new("claude", 1_760_000_000, true);
        let chunks: Vec<_> = events(STREAM)
            .iter()
            .map(|e| translator.translate(e).unwrap())
            .collect();
        assert!(translator.finish().is_none());
        assert_eq!(text(&chunks), CHAT_STREAM);

        let usage: Vec<_> = chunks.iter().filter_map(|c| c.usage.as_ref()).collect();
        assert_eq!(usage.len(), 1);
        assert_eq!((usage[0].tokens.input, usage[0].tokens.output), (2640, 89));
        let generated: u64 = chunks.iter().map(|c| c.output_text_bytes).sum();
        assert_eq!(generated, GENERATED.len() as u64);
    }

    #[test]
    fn without_the_client_asking_there_is_no_usage_chunk_but_still_done() {
        let mut translator = ChunkTranslator::new("claude", 1_760_000_000, false);
        let chunks: Vec<_> = events(STREAM)
            .iter()
            .map(|e| translator.translate(e).unwrap())
            .collect();
        let expected: String = CHAT_STREAM
            .split_inclusive("\n\n")
            .filter(|event| !event.contains("\"choices\":[]"))
            .collect();
        assert_ne!(expected, CHAT_STREAM);
        assert_eq!(text(&chunks), expected);
        assert!(text(&chunks).ends_with("data: [DONE]\n\n"));
        assert!(chunks.iter().any(|c| c.usage.is_some()), "still billed");
    }

    #[test]
    fn an_error_event_fails_the_translated_stream_with_the_upstream_message() {
        let mut translator = ChunkTranslator::new("claude", 1, false);
        let error = Event {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
            ..Event::default()
        };
        assert_eq!(
            translator.translate(&error).unwrap_err(),
            ProviderError::Upstream {
                status: 529,
                message: "Overloaded".into(),
                retry_after: None,
            }
        );
        // The native relay passes it on as sent.
        let relayed = NativeRelay::new().chunk(&error);
        assert_eq!(
            relayed.bytes,
            format!("event: error\ndata: {}\n\n", error.data)
        );
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_an_error_when_translated() {
        let mut translator = ChunkTranslator::new("claude", 1, false);
        for event in events(STREAM).iter().take(3) {
            translator.translate(event).unwrap();
        }
        assert!(matches!(
            translator.finish(),
            Some(ProviderError::InvalidResponse(_))
        ));
    }

    #[test]
    fn unknown_events_and_blocks_are_skipped_and_unreadable_ones_relayed_natively() {
        let mut translator = ChunkTranslator::new("claude", 1, false);
        for data in [
            r#"{"type":"brand_new_event","x":1}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s","name":"web_search","input":{}}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{}}}"#,
        ] {
            let event = Event {
                event: Some("x".into()),
                data: data.into(),
                ..Event::default()
            };
            assert!(
                translator.translate(&event).unwrap().bytes.is_empty(),
                "{data}"
            );
        }
        let garbage = Event {
            event: Some("message_delta".into()),
            data: "{not json".into(),
            ..Event::default()
        };
        assert!(translator.translate(&garbage).is_err());
        let relayed = NativeRelay::new().chunk(&garbage);
        assert_eq!(relayed.bytes, encode_event(&garbage));
        assert!(relayed.usage.is_none());
    }
}
