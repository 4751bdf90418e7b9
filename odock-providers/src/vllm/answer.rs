//! Reading OpenAI-shaped answers: chat completions, legacy completions, the Responses API,
//! embeddings and vLLM's own pooling/score/classify/rerank routes.
//!
//! Usage is normalised from whichever convention the body uses:
//!
//! | upstream `usage`                                       | [`TokenUsage`]            |
//! |--------------------------------------------------------|---------------------------|
//! | `prompt_tokens` / `completion_tokens` (+ details)      | see `openai_compat::usage`|
//! | `input_tokens` / `output_tokens` (Responses, audio)    | `input` / `output`        |
//! | `input_tokens_details.cached_tokens`                   | `cached_input`            |
//! | `output_tokens_details.reasoning_tokens`               | `reasoning`               |
//! | only `total_tokens` (vLLM rerank)                      | `input`                   |
//!
//! so embeddings, pooling, score and classify report their prompt tokens as input. The raw
//! `usage` object is kept as reported.

use std::borrow::Cow;

use bytes::Bytes;
use odock_core::{ReportedUsage, StreamChunk, TokenUsage};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::passthrough::ReadAnswer;
use crate::openai_compat::{stream, usage};
use crate::sse::{encode_event, Event};

/// Chat-completion-shaped answers (chat, audio, embeddings, vLLM's pooling routes, …).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenAiAnswer {
    /// Relay a usage-only stream chunk. False only when the gateway asked for it and the client
    /// did not.
    pub keep_usage_chunk: bool,
}

impl ReadAnswer for OpenAiAnswer {
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        unary_facts(body)
    }

    fn event(&self, event: &Event) -> StreamChunk {
        stream::chunk_from_event(event, self.keep_usage_chunk)
    }
}

/// Legacy completions: chat-completion chunks whose text is `choices[].text`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompletionsAnswer {
    pub keep_usage_chunk: bool,
}

#[derive(Deserialize)]
struct CompletionChunkProbe<'a> {
    #[serde(default, borrow)]
    choices: Vec<CompletionChoiceProbe<'a>>,
}

#[derive(Deserialize)]
struct CompletionChoiceProbe<'a> {
    #[serde(default, borrow)]
    text: Option<&'a RawValue>,
}

impl ReadAnswer for CompletionsAnswer {
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        unary_facts(body)
    }

    fn event(&self, event: &Event) -> StreamChunk {
        let mut chunk = stream::chunk_from_event(event, self.keep_usage_chunk);
        if let Ok(probe) = serde_json::from_str::<CompletionChunkProbe<'_>>(&event.data) {
            chunk.output_text_bytes = probe
                .choices
                .iter()
                .filter_map(|choice| choice.text)
                .map(text_len)
                .fold(chunk.output_text_bytes, u64::saturating_add);
        }
        chunk
    }
}

/// The Responses API: usage sits in `response.usage` of the final `response.completed` (or
/// `.incomplete` / `.failed`) event; generated text arrives in `*.delta` events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResponsesAnswer;

#[derive(Deserialize)]
struct ResponsesEventProbe<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<&'a RawValue>,
    #[serde(default, borrow)]
    response: Option<ResponseProbe<'a>>,
}

#[derive(Deserialize)]
struct ResponseProbe<'a> {
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

impl ReadAnswer for ResponsesAnswer {
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        unary_facts(body)
    }

    fn event(&self, event: &Event) -> StreamChunk {
        let bytes = encode_event(event);
        let Ok(probe) = serde_json::from_str::<ResponsesEventProbe<'_>>(&event.data) else {
            return StreamChunk {
                bytes,
                ..StreamChunk::default()
            };
        };
        let kind = probe.kind.as_deref().unwrap_or(&event.event);
        // Audio deltas are base64, not generated text.
        let output_text_bytes = match probe.delta {
            Some(delta) if kind.ends_with(".delta") && !kind.contains("audio") => text_len(delta),
            _ => 0,
        };
        StreamChunk {
            bytes,
            usage: probe
                .response
                .and_then(|r| r.usage)
                .and_then(reported_usage),
            output_text_bytes,
        }
    }
}

/// The facts the gateway takes from a unary body; every other field is skipped unparsed.
#[derive(Deserialize)]
struct UnaryProbe<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// The response `id` and usage of a unary OpenAI-shaped body. A body that is not JSON (binary
/// media, an HTML error page) yields neither; it is still relayed.
pub(crate) fn unary_facts(body: &[u8]) -> (Option<String>, Option<ReportedUsage>) {
    match serde_json::from_slice::<UnaryProbe<'_>>(body) {
        Ok(probe) => (
            probe
                .id
                .and_then(|id| serde_json::from_str::<String>(id.get()).ok())
                .filter(|id| !id.is_empty()),
            probe.usage.and_then(reported_usage),
        ),
        Err(_) => (None, None),
    }
}

/// Normalises a raw `usage` value in any of the conventions above.
pub(crate) fn reported_usage(raw: &RawValue) -> Option<ReportedUsage> {
    usage_from_value(serde_json::from_str(raw.get()).ok()?)
}

/// Normalises a parsed `usage` value. `None` when it is not an object of token counts.
pub(crate) fn usage_from_value(raw: Value) -> Option<ReportedUsage> {
    let count = |path: &str| raw.pointer(path).and_then(Value::as_u64);
    let chat_style = raw.get("prompt_tokens").is_some() || raw.get("completion_tokens").is_some();
    if !chat_style && raw.is_object() {
        let (input, output) = (count("/input_tokens"), count("/output_tokens"));
        if input.is_some() || output.is_some() {
            let tokens = TokenUsage {
                input: input.unwrap_or(0),
                output: output.unwrap_or(0),
                cached_input: count("/input_tokens_details/cached_tokens").unwrap_or(0),
                reasoning: count("/output_tokens_details/reasoning_tokens").unwrap_or(0),
                input_audio: count("/input_token_details/audio_tokens")
                    .or_else(|| count("/input_tokens_details/audio_tokens"))
                    .unwrap_or(0),
                ..TokenUsage::default()
            };
            return Some(ReportedUsage { tokens, raw });
        }
        if let Some(total) = count("/total_tokens") {
            let tokens = TokenUsage {
                input: total,
                ..TokenUsage::default()
            };
            return Some(ReportedUsage { tokens, raw });
        }
    }
    usage::usage_from_value(raw)
}

/// The UTF-8 length of a raw JSON string; 0 for anything else.
fn text_len(raw: &RawValue) -> u64 {
    serde_json::from_str::<Cow<'_, str>>(raw.get()).map_or(0, |text| text.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(data: &str) -> Event {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    #[test]
    fn every_usage_convention_is_normalised() {
        let chat = usage_from_value(json!({"prompt_tokens": 7, "completion_tokens": 3})).unwrap();
        assert_eq!((chat.tokens.input, chat.tokens.output), (7, 3));

        let embeddings = usage_from_value(
            json!({"prompt_tokens": 9, "total_tokens": 9, "completion_tokens": 0}),
        )
        .unwrap();
        assert_eq!((embeddings.tokens.input, embeddings.tokens.output), (9, 0));

        let responses = usage_from_value(json!({
            "input_tokens": 20, "output_tokens": 12, "total_tokens": 32,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens_details": {"reasoning_tokens": 5}
        }))
        .unwrap();
        assert_eq!(
            responses.tokens,
            TokenUsage {
                input: 20,
                output: 12,
                cached_input: 4,
                reasoning: 5,
                ..TokenUsage::default()
            }
        );

        let rerank = usage_from_value(json!({"total_tokens": 42})).unwrap();
        assert_eq!((rerank.tokens.input, rerank.tokens.output), (42, 0));
        assert_eq!(rerank.raw, json!({"total_tokens": 42}));

        let duration = usage_from_value(json!({"type": "duration", "seconds": 3})).unwrap();
        assert_eq!(duration.tokens, TokenUsage::default());
        assert!(usage_from_value(json!("many")).is_none());
    }

    #[test]
    fn unary_bodies_give_their_id_and_usage() {
        let (id, usage) = unary_facts(
            br#"{"id":"resp_1","object":"response","usage":{"input_tokens":3,"output_tokens":2}}"#,
        );
        assert_eq!(id.as_deref(), Some("resp_1"));
        assert_eq!(usage.unwrap().tokens.total(), 5);
        let (id, usage) = unary_facts(br#"{"id":7,"count":3,"tokens":[1,2,3]}"#);
        assert_eq!((id, usage), (None, None));
        assert_eq!(unary_facts(b"\x89PNG\r\n"), (None, None));
    }

    #[test]
    fn completion_chunks_count_their_text() {
        let answer = CompletionsAnswer {
            keep_usage_chunk: false,
        };
        let chunk = answer.event(&event(
            r#"{"id":"cmpl-1","choices":[{"index":0,"text":"héllo","finish_reason":null}]}"#,
        ));
        assert_eq!(chunk.output_text_bytes, 6);
        assert!(!chunk.bytes.is_empty());

        let usage_only = answer.event(&event(
            r#"{"id":"cmpl-1","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2}}"#,
        ));
        assert!(
            usage_only.bytes.is_empty(),
            "the gateway's usage chunk is withheld"
        );
        assert_eq!(usage_only.usage.unwrap().tokens.output, 2);
    }

    #[test]
    fn responses_events_are_relayed_with_their_names_and_usage_read_at_the_end() {
        let delta = Event {
            event: "response.output_text.delta".into(),
            data: r#"{"type":"response.output_text.delta","delta":"Hi there"}"#.into(),
            ..Event::default()
        };
        let chunk = ResponsesAnswer.event(&delta);
        assert_eq!(chunk.output_text_bytes, 8);
        assert!(chunk.usage.is_none());
        assert!(std::str::from_utf8(&chunk.bytes)
            .unwrap()
            .starts_with("event: response.output_text.delta\ndata: "));

        let done = ResponsesAnswer.event(&event(
            r#"{"type":"response.completed","response":{"id":"resp_1","usage":{"input_tokens":11,"output_tokens":2}}}"#,
        ));
        let usage = done.usage.unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (11, 2));

        let created = ResponsesAnswer.event(&event(
            r#"{"type":"response.created","response":{"usage":null}}"#,
        ));
        assert!(created.usage.is_none());
        assert_eq!(
            ResponsesAnswer.event(&event("[DONE]")).bytes,
            Bytes::from_static(b"data: [DONE]\n\n")
        );
    }
}
