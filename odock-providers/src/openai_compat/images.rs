//! Relaying a streamed image answer (`gpt-image-1` with `"stream": true`), one [`StreamChunk`] per
//! event.
//!
//! The upstream sends `image_generation.partial_image` (or `image_edit.partial_image`) events
//! while it draws and one `….completed` event per finished image, carrying that image's token
//! usage. Events are relayed unchanged; each completed event adds one `images` unit and its tokens
//! to the running total, which is reported after every completed image, so a client that leaves
//! early pays for the images it was sent.

use std::borrow::Cow;

use bytes::Bytes;
use odock_core::{ReportedUsage, StreamChunk, TokenUsage};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::forward::ReadAnswer;
use super::usage::{image_facts, image_usage, reported_io_usage};
use crate::sse::{encode_event, Event};

/// Ends the type of an event that delivers one finished image.
const COMPLETED: &str = ".completed";

#[derive(Deserialize)]
struct EventProbe<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// The usage of one image stream so far.
#[derive(Debug, Default)]
pub struct ImageStream {
    images: u64,
    tokens: Option<TokenUsage>,
    raw: Option<Value>,
}

impl ImageStream {
    /// Turns one upstream event into what the client receives (the event as sent) and, after a
    /// completed image, the stream's usage so far.
    pub fn chunk_from_event(&mut self, event: &Event) -> StreamChunk {
        let bytes = encode_event(event);
        let Ok(probe) = serde_json::from_str::<EventProbe<'_>>(&event.data) else {
            return StreamChunk {
                bytes,
                ..StreamChunk::default()
            };
        };
        let kind = probe.kind.as_deref().unwrap_or(event.event_type());
        if !kind.ends_with(COMPLETED) {
            return StreamChunk {
                bytes,
                ..StreamChunk::default()
            };
        }
        self.images += 1;
        if let Some(reported) = probe.usage.and_then(reported_io_usage) {
            let total = self.tokens.get_or_insert_with(TokenUsage::default);
            add(total, &reported.tokens);
            self.raw = Some(reported.raw);
        }
        StreamChunk {
            bytes,
            usage: Some(self.usage()),
            output_text_bytes: 0,
        }
    }

    fn usage(&self) -> ReportedUsage {
        let tokens = self.tokens.clone().map(|tokens| ReportedUsage {
            tokens,
            raw: self.raw.clone().unwrap_or(Value::Null),
        });
        image_usage(self.images, tokens)
    }
}

/// Image answers: one unit per image, in a unary `data` list or per completed stream event.
impl ReadAnswer for ImageStream {
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        (None, image_facts(body))
    }

    fn event(&mut self, event: &Event) -> StreamChunk {
        self.chunk_from_event(event)
    }
}

fn add(total: &mut TokenUsage, more: &TokenUsage) {
    total.input = total.input.saturating_add(more.input);
    total.output = total.output.saturating_add(more.output);
    total.cached_input = total.cached_input.saturating_add(more.cached_input);
    total.reasoning = total.reasoning.saturating_add(more.reasoning);
    total.input_audio = total.input_audio.saturating_add(more.input_audio);
    total.output_audio = total.output_audio.saturating_add(more.output_audio);
    total.input_image = total.input_image.saturating_add(more.input_image);
    total.output_image = total.output_image.saturating_add(more.output_image);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str) -> Event {
        Event {
            event: Some(kind.into()),
            data: data.into(),
            ..Event::default()
        }
    }

    #[test]
    fn completed_images_are_counted_and_their_tokens_summed() {
        let mut stream = ImageStream::default();
        let partial = event(
            "image_generation.partial_image",
            r#"{"type":"image_generation.partial_image","b64_json":"AAAA","partial_image_index":0}"#,
        );
        let chunk = stream.chunk_from_event(&partial);
        assert!(chunk.usage.is_none());
        assert_eq!(
            chunk.bytes,
            format!(
                "event: image_generation.partial_image\ndata: {}\n\n",
                partial.data
            )
        );

        let completed = event(
            "image_generation.completed",
            r#"{"type":"image_generation.completed","b64_json":"BBBB","usage":{"input_tokens":10,"output_tokens":100,"input_tokens_details":{"text_tokens":10,"image_tokens":0},"total_tokens":110}}"#,
        );
        let first = stream.chunk_from_event(&completed).usage.unwrap();
        assert_eq!((first.tokens.units, first.tokens.output_image), (1, 100));
        let second = stream.chunk_from_event(&completed).usage.unwrap();
        assert_eq!(second.tokens.units, 2);
        assert_eq!(second.tokens.unit_kind.as_deref(), Some("images"));
        assert_eq!((second.tokens.input, second.tokens.output), (20, 200));
        assert_eq!(second.tokens.output_image, 200);
    }

    #[test]
    fn edits_without_usage_still_count_images() {
        let mut stream = ImageStream::default();
        let usage = stream
            .chunk_from_event(&event(
                "image_edit.completed",
                r#"{"type":"image_edit.completed","b64_json":"CCCC"}"#,
            ))
            .usage
            .unwrap();
        assert_eq!(usage.tokens.units, 1);
        assert_eq!(usage.tokens.total(), 0);
        assert_eq!(usage.raw, serde_json::json!({"images": 1}));
    }
}
