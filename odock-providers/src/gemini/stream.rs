//! Gemini streams (`:streamGenerateContent?alt=sse`): one `GenerateContentResponse` per event,
//! each with the text generated since the previous one and the usage *so far*.
//!
//! - **Native** ([`native_chunk`]): each event is relayed as the upstream sent it (its data byte
//!   for byte; line endings are the shared SSE adapter's `\n`), reporting the event's
//!   `usageMetadata` (the latest report is the request's) and the UTF-8 length of its generated
//!   text and function-call arguments, so a stream cut short can still be billed.
//! - **Translated** ([`ChunkTranslator`], for `/v1/llm/chat`): each event becomes OpenAI
//!   `chat.completion.chunk` events: a first chunk with `role: assistant` per choice, deltas of
//!   `content`, `reasoning_content` (thought parts) and `tool_calls` (Gemini sends each call whole,
//!   so one delta carries its name and complete arguments), a chunk with the `finish_reason`; at
//!   the end a usage-only chunk (`"choices": []`) when the client asked for usage, then
//!   `data: [DONE]`.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use bytes::BytesMut;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use odock_core::{ProviderError, StreamChunk};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::convert::{candidate_parts, finish_reason, openai_usage, CandidateParts};
use super::upstream_error;
use super::usage::{reported_usage, usage_from_value};
use super::wire::GenerateContentResponse;
use crate::sse::{encode_data, encode_event, Event};

/// The gateway's view of one native chunk; every other member is skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChunkProbe<'a> {
    #[serde(default, borrow)]
    candidates: Option<Vec<CandidateProbe<'a>>>,
    #[serde(default, borrow)]
    usage_metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CandidateProbe<'a> {
    #[serde(default, borrow)]
    content: Option<ContentProbe<'a>>,
}

#[derive(Deserialize)]
struct ContentProbe<'a> {
    #[serde(default, borrow)]
    parts: Option<Vec<PartProbe<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartProbe<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function_call: Option<FunctionCallProbe<'a>>,
}

#[derive(Deserialize)]
struct FunctionCallProbe<'a> {
    #[serde(default, borrow)]
    args: Option<&'a RawValue>,
}

/// One upstream event of a native stream: relayed unchanged, with what the gateway learns from it.
pub fn native_chunk(event: &Event) -> StreamChunk {
    let bytes = encode_event(event);
    let Ok(probe) = serde_json::from_str::<ChunkProbe<'_>>(&event.data) else {
        // An error object or something we do not understand: relay it as sent.
        return StreamChunk {
            bytes,
            ..StreamChunk::default()
        };
    };
    let output_text_bytes = probe
        .candidates
        .iter()
        .flatten()
        .filter_map(|candidate| candidate.content.as_ref()?.parts.as_ref())
        .flatten()
        .map(|part| {
            let text = part.text.as_ref().map_or(0, |text| text.len() as u64);
            let args = part
                .function_call
                .as_ref()
                .and_then(|call| call.args)
                .map_or(0, |args| args.get().len() as u64);
            text.saturating_add(args)
        })
        .fold(0u64, u64::saturating_add);
    StreamChunk {
        bytes,
        usage: probe.usage_metadata.and_then(reported_usage),
        output_text_bytes,
    }
}

/// Turns a Gemini stream into OpenAI `chat.completion.chunk` events, one upstream event at a time.
#[derive(Debug)]
pub struct ChunkTranslator {
    /// The completion id: the upstream's `responseId` once seen, else this fallback.
    id: String,
    id_from_upstream: bool,
    /// The Odock model name.
    model: String,
    created: u64,
    client_wants_usage: bool,
    /// Tool calls sent so far, by choice index; a choice is present once its role chunk went out.
    choices: HashMap<u64, usize>,
    /// The latest `usageMetadata` (cumulative).
    usage: Option<Value>,
}

impl ChunkTranslator {
    pub fn new(fallback_id: String, model: String, created: u64, client_wants_usage: bool) -> Self {
        Self {
            id: fallback_id,
            id_from_upstream: false,
            model,
            created,
            client_wants_usage,
            choices: HashMap::new(),
            usage: None,
        }
    }

    /// The OpenAI events for one upstream event. An error object from the upstream ends the
    /// stream with [`ProviderError::Upstream`].
    pub fn event(&mut self, data: &str) -> Result<StreamChunk, ProviderError> {
        let response: GenerateContentResponse = match serde_json::from_str(data) {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, "skipping a Gemini stream event that is not a response");
                return Ok(StreamChunk::default());
            }
        };
        if let Some(error) = &response.error {
            return Err(upstream_error(
                error.code.unwrap_or(502),
                data.as_bytes(),
                None,
            ));
        }
        if !self.id_from_upstream {
            if let Some(id) = response.response_id.as_ref().filter(|id| !id.is_empty()) {
                self.id.clone_from(id);
                self.id_from_upstream = true;
            }
        }

        let mut out = BytesMut::new();
        let mut output_text_bytes = 0u64;
        for (position, candidate) in response.candidates.iter().enumerate() {
            let index = candidate.index.map_or(position as u64, u64::from);
            self.start_choice(index, &mut out);
            let parts = candidate
                .content
                .as_ref()
                .map_or(&[][..], |content| &content.parts[..]);
            let calls_so_far = self.choices.get(&index).copied().unwrap_or(0);
            let CandidateParts {
                text,
                reasoning,
                tool_calls,
            } = candidate_parts(parts, calls_so_far);

            let mut delta = serde_json::Map::new();
            if !reasoning.is_empty() {
                output_text_bytes = output_text_bytes.saturating_add(reasoning.len() as u64);
                delta.insert("reasoning_content".to_owned(), Value::String(reasoning));
            }
            if !text.is_empty() {
                output_text_bytes = output_text_bytes.saturating_add(text.len() as u64);
                delta.insert("content".to_owned(), Value::String(text));
            }
            if !tool_calls.is_empty() {
                let calls: Vec<Value> = tool_calls
                    .into_iter()
                    .enumerate()
                    .map(|(offset, mut call)| {
                        if let Some(arguments) = call.pointer("/function/arguments") {
                            let len = arguments.as_str().map_or(0, str::len) as u64;
                            output_text_bytes = output_text_bytes.saturating_add(len);
                        }
                        if let Some(object) = call.as_object_mut() {
                            object.insert("index".to_owned(), json!(calls_so_far + offset));
                        }
                        call
                    })
                    .collect();
                self.choices.insert(index, calls_so_far + calls.len());
                delta.insert("tool_calls".to_owned(), Value::Array(calls));
            }
            if !delta.is_empty() {
                self.push(&mut out, index, Value::Object(delta), None);
            }
            if let Some(reason) = &candidate.finish_reason {
                let has_tool_calls = self.choices.get(&index).is_some_and(|&calls| calls > 0);
                let finish = finish_reason(reason, has_tool_calls);
                self.push(&mut out, index, json!({}), Some(finish));
            }
        }
        if response.candidates.is_empty() {
            if let Some(block) = response
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_ref())
            {
                tracing::debug!(block_reason = %block, "Gemini blocked the prompt");
                self.start_choice(0, &mut out);
                self.push(&mut out, 0, json!({}), Some("content_filter"));
            }
        }

        let usage = response.usage_metadata.and_then(|raw| {
            let reported = usage_from_value(raw.clone())?;
            self.usage = Some(raw);
            Some(reported)
        });
        Ok(StreamChunk {
            bytes: out.freeze(),
            usage,
            output_text_bytes,
        })
    }

    /// What follows the last upstream event: the usage chunk (when the client asked for usage)
    /// and `[DONE]`.
    pub fn finish(&mut self) -> StreamChunk {
        let mut out = BytesMut::new();
        if self.client_wants_usage {
            if let Some(usage) = self.usage.as_ref().and_then(openai_usage) {
                let chunk = json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                });
                out.extend_from_slice(&encode_data(&chunk.to_string()));
            }
        }
        out.extend_from_slice(&encode_data("[DONE]"));
        StreamChunk {
            bytes: out.freeze(),
            ..StreamChunk::default()
        }
    }

    /// Sends the `role: assistant` chunk the first time a choice appears.
    fn start_choice(&mut self, index: u64, out: &mut BytesMut) {
        if let Entry::Vacant(choice) = self.choices.entry(index) {
            choice.insert(0);
            self.push(
                out,
                index,
                json!({"role": "assistant", "content": ""}),
                None,
            );
        }
    }

    fn push(&self, out: &mut BytesMut, index: u64, delta: Value, finish: Option<&str>) {
        let chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        });
        out.extend_from_slice(&encode_data(&chunk.to_string()));
    }
}

/// The translated stream: every upstream event through `translator`, then its closing chunk. The
/// stream ends after its first error (an upstream failure is not followed by `[DONE]`).
pub fn translated(
    events: BoxStream<'static, Result<Event, ProviderError>>,
    translator: ChunkTranslator,
) -> BoxStream<'static, Result<StreamChunk, ProviderError>> {
    stream::unfold(Some((events, translator)), |state| async move {
        let (mut events, mut translator) = state?;
        match events.next().await {
            Some(Ok(event)) => match translator.event(&event.data) {
                Ok(chunk) => Some((Ok(chunk), Some((events, translator)))),
                Err(error) => Some((Err(error), None)),
            },
            Some(Err(error)) => Some((Err(error), None)),
            None => Some((Ok(translator.finish()), None)),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use odock_core::TokenUsage;

    const STREAM: &str = include_str!("fixtures/stream_generate_content.sse");
    const CALLS: &str = include_str!("fixtures/stream_function_calls.sse");

    /// The client-facing bytes of chunks.
    fn concat(chunks: &[StreamChunk]) -> Bytes {
        chunks
            .iter()
            .flat_map(|c| c.bytes.iter().copied())
            .collect()
    }

    /// The fixture's events, split the way the SSE parser would.
    fn events(fixture: &str) -> Vec<Event> {
        fixture
            .split("\r\n\r\n")
            .filter(|block| !block.is_empty())
            .map(|block| Event {
                event: Some("message".into()),
                data: block.strip_prefix("data: ").unwrap().to_owned(),
                ..Event::default()
            })
            .collect()
    }

    fn translate(fixture: &str, client_wants_usage: bool) -> (Vec<StreamChunk>, Vec<Value>) {
        let mut translator = ChunkTranslator::new(
            "chatcmpl-fallback".into(),
            "odock-gemini".into(),
            1_753_804_512,
            client_wants_usage,
        );
        let mut chunks: Vec<StreamChunk> = events(fixture)
            .iter()
            .map(|event| translator.event(&event.data).unwrap())
            .collect();
        chunks.push(translator.finish());
        let text = String::from_utf8(concat(&chunks).to_vec()).unwrap();
        let payloads = text
            .split("\n\n")
            .filter(|block| !block.is_empty())
            .map(|block| {
                let data = block.strip_prefix("data: ").unwrap();
                serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
            })
            .collect();
        (chunks, payloads)
    }

    #[test]
    fn native_events_are_relayed_with_their_cumulative_usage() {
        let chunks: Vec<StreamChunk> = events(STREAM).iter().map(native_chunk).collect();
        let relayed = String::from_utf8(concat(&chunks).to_vec()).unwrap();
        assert_eq!(
            relayed,
            STREAM.replace("\r\n", "\n"),
            "every event's data is relayed byte for byte"
        );
        let usage: Vec<&TokenUsage> = chunks
            .iter()
            .filter_map(|c| c.usage.as_ref().map(|u| &u.tokens))
            .collect();
        assert_eq!(usage.len(), 3, "every chunk reports the usage so far");
        assert_eq!((usage[0].input, usage[0].output), (9, 0));
        assert_eq!(
            *usage[2],
            TokenUsage {
                input: 9,
                output: 56,
                reasoning: 50,
                ..TokenUsage::default()
            },
            "the last report is the request's"
        );
        let per_chunk: Vec<u64> = chunks.iter().map(|c| c.output_text_bytes).collect();
        assert_eq!(
            per_chunk.iter().sum::<u64>(),
            "Hello! Héllo wörld 👋".len() as u64
        );
    }

    #[test]
    fn native_function_call_arguments_count_as_generated_text() {
        let chunks: Vec<StreamChunk> = events(CALLS).iter().map(native_chunk).collect();
        assert_eq!(
            chunks[0].output_text_bytes,
            (r#"{"city": "Zürich"}"#.len() + r#"{"timezone": "Europe/Zurich"}"#.len()) as u64
        );
    }

    #[test]
    fn unparseable_native_events_are_relayed_without_usage() {
        let event = Event {
            data: r#"{"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}"#
                .into(),
            ..Event::default()
        };
        let chunk = native_chunk(&event);
        assert_eq!(chunk.bytes, encode_data(&event.data));
        assert!(chunk.usage.is_none());
        let chunk = native_chunk(&Event {
            data: "not json".into(),
            ..Event::default()
        });
        assert_eq!(chunk.bytes, encode_data("not json"));
    }

    #[test]
    fn text_streams_become_openai_chunks_ending_in_done() {
        let (chunks, payloads) = translate(STREAM, false);
        let base = |delta: Value, finish: Value| {
            json!({"id": "AdVRaMmDCYekqtsPrb_-iAw", "object": "chat.completion.chunk",
                   "created": 1_753_804_512, "model": "odock-gemini",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        assert_eq!(
            payloads,
            vec![
                base(json!({"role": "assistant", "content": ""}), Value::Null),
                base(json!({"content": "Hello! Héllo"}), Value::Null),
                base(json!({"content": " wörld"}), Value::Null),
                base(json!({"content": " 👋"}), Value::Null),
                base(json!({}), json!("stop")),
                json!("[DONE]"),
            ]
        );
        let last_usage = chunks.iter().rev().find_map(|c| c.usage.as_ref()).unwrap();
        assert_eq!((last_usage.tokens.input, last_usage.tokens.output), (9, 56));
        let text: u64 = chunks.iter().map(|c| c.output_text_bytes).sum();
        assert_eq!(text, "Hello! Héllo wörld 👋".len() as u64);
    }

    #[test]
    fn a_client_that_asked_for_usage_gets_a_usage_chunk_before_done() {
        let (_, payloads) = translate(STREAM, true);
        let usage = &payloads[payloads.len() - 2];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 56, "total_tokens": 65,
                   "prompt_tokens_details": {"cached_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 50}})
        );
        assert_eq!(payloads[payloads.len() - 1], json!("[DONE]"));
    }

    #[test]
    fn function_calls_stream_as_whole_tool_call_deltas() {
        let (chunks, payloads) = translate(CALLS, false);
        assert_eq!(payloads.len(), 4, "{payloads:#?}");
        assert_eq!(payloads[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            payloads[1]["choices"][0]["delta"]["tool_calls"],
            json!([
                {"index": 0, "id": "call_0", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Zürich\"}"},
                 "extra_content": {"google": {"thought_signature": "CiQBVKhc7xYq3cJ9mNwR0ubzg5h2bA1TlLtu8e9yH3z0V5vQfGk="}}},
                {"index": 1, "id": "call_1", "type": "function",
                 "function": {"name": "get_time", "arguments": "{\"timezone\":\"Europe/Zurich\"}"}}
            ])
        );
        assert_eq!(payloads[2]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(payloads[3], json!("[DONE]"));
        let usage = chunks[0].usage.as_ref().unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (81, 96));
    }

    #[test]
    fn tool_call_indexes_continue_across_events() {
        let mut translator = ChunkTranslator::new("id".into(), "m".into(), 0, false);
        let event = r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"a","args":{}}}]},"index":0}]}"#;
        translator.event(event).unwrap();
        let chunk = translator.event(event).unwrap();
        let text = String::from_utf8(chunk.bytes.to_vec()).unwrap();
        let payload: Value =
            serde_json::from_str(text.trim().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(payload["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(
            payload["choices"][0]["delta"]["tool_calls"][0]["id"],
            "call_1"
        );
    }

    #[test]
    fn an_error_event_ends_the_translated_stream_with_the_upstream_message() {
        let mut translator = ChunkTranslator::new("id".into(), "m".into(), 0, false);
        let error = translator
            .event(r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#)
            .unwrap_err();
        assert_eq!(
            error,
            ProviderError::Upstream {
                status: 503,
                message: "The model is overloaded.".into(),
                retry_after: None,
            }
        );
    }

    #[test]
    fn a_blocked_prompt_finishes_with_content_filter() {
        let mut translator = ChunkTranslator::new("id".into(), "m".into(), 0, false);
        let chunk = translator
            .event(r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}"#)
            .unwrap();
        let text = String::from_utf8(chunk.bytes.to_vec()).unwrap();
        assert!(
            text.contains(r#""finish_reason":"content_filter""#),
            "{text}"
        );
        assert_eq!(chunk.usage.unwrap().tokens.input, 5);
    }
}
