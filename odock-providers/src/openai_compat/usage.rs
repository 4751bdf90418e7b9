//! Usage as OpenAI-compatible upstreams report it, normalised into [`TokenUsage`].
//!
//! Chat completions and embeddings (embeddings report `prompt_tokens` only):
//!
//! | upstream field                                  | [`TokenUsage`]  |
//! |-------------------------------------------------|-----------------|
//! | `prompt_tokens`                                 | `input`         |
//! | `completion_tokens`                             | `output`        |
//! | `prompt_tokens_details.cached_tokens`           | `cached_input`  |
//! | `prompt_tokens_details.audio_tokens`            | `input_audio`   |
//! | `completion_tokens_details.reasoning_tokens`    | `reasoning`     |
//! | `completion_tokens_details.audio_tokens`        | `output_audio`  |
//!
//! The Responses API, `gpt-image-1` and audio transcriptions name them after directions instead:
//!
//! | upstream field                                  | [`TokenUsage`]  |
//! |-------------------------------------------------|-----------------|
//! | `input_tokens`                                  | `input`         |
//! | `output_tokens`                                 | `output`        |
//! | `input_tokens_details.cached_tokens`            | `cached_input`  |
//! | `input_tokens_details.audio_tokens` (or `input_token_details.audio_tokens`) | `input_audio` |
//! | `input_tokens_details.image_tokens`             | `input_image`   |
//! | `output_tokens_details.reasoning_tokens`        | `reasoning`     |
//! | `output_tokens_details.audio_tokens`            | `output_audio`  |
//! | `output_tokens_details.image_tokens`            | `output_image`  |
//!
//! A usage object with neither convention but a `total_tokens` (vLLM rerank) counts it as
//! `input`. [`unary_facts`] and [`any_usage_from_value`] pick the convention from the members
//! present, so embeddings, pooling, score and classify report their prompt tokens as input.
//!
//! Image answers add `units` = the number of items in `data`, `unit_kind` `"images"`; their
//! output tokens are image tokens unless the upstream details say otherwise. Whether units or
//! tokens are billed is the calculator's choice (units when the model has a unit rate).
//!
//! The raw `usage` object is kept as reported, for the usage record.

use std::borrow::Cow;

use odock_core::{ReportedUsage, TokenUsage};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    audio_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
    #[serde(default)]
    audio_tokens: Option<u64>,
}

/// `usage` in the Responses API and image shape.
#[derive(Deserialize)]
struct WireIoUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<IoDetails>,
    /// Audio transcriptions spell it without the plural.
    #[serde(default)]
    input_token_details: Option<IoDetails>,
    #[serde(default)]
    output_tokens_details: Option<IoDetails>,
}

#[derive(Deserialize)]
struct IoDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
    #[serde(default)]
    audio_tokens: Option<u64>,
    #[serde(default)]
    image_tokens: Option<u64>,
}

/// The unit kind recorded for image answers.
pub const IMAGES: &str = "images";

/// The facts the gateway takes from a unary response; every other field is skipped unparsed.
#[derive(Deserialize)]
struct UnaryProbe<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// The response `id` and usage (in any of the conventions above) of a unary OpenAI-shaped body:
/// chat completions, legacy completions, Responses, embeddings, audio, vLLM's own routes. A body
/// that is not JSON (binary media, an HTML error page) yields neither; it is still relayed. An
/// `id` that is not a string is ignored.
pub fn unary_facts(body: &[u8]) -> (Option<String>, Option<ReportedUsage>) {
    match serde_json::from_slice::<UnaryProbe<'_>>(body) {
        Ok(probe) => (
            probe
                .id
                .and_then(|id| serde_json::from_str::<Cow<'_, str>>(id.get()).ok())
                .filter(|id| !id.is_empty())
                .map(Cow::into_owned),
            probe.usage.and_then(reported_any_usage),
        ),
        Err(_) => (None, None),
    }
}

/// Normalises a raw `usage` value in whichever convention it uses (see [`any_usage_from_value`]).
pub fn reported_any_usage(raw: &RawValue) -> Option<ReportedUsage> {
    any_usage_from_value(serde_json::from_str(raw.get()).ok()?)
}

/// Normalises a parsed `usage` value in whichever convention it uses: chat names
/// (`prompt_tokens`, `completion_tokens`) win, then direction names (`input_tokens`,
/// `output_tokens`), then a lone `total_tokens` as input. `None` when it is not an object of token
/// counts.
pub fn any_usage_from_value(raw: Value) -> Option<ReportedUsage> {
    let has = |name: &str| raw.get(name).is_some();
    if has("prompt_tokens") || has("completion_tokens") || !raw.is_object() {
        return usage_from_value(raw);
    }
    if has("input_tokens") || has("output_tokens") {
        return io_usage_from_value(raw);
    }
    if let Some(total) = raw.get("total_tokens").and_then(Value::as_u64) {
        let tokens = TokenUsage {
            input: total,
            ..TokenUsage::default()
        };
        return Some(ReportedUsage { tokens, raw });
    }
    usage_from_value(raw)
}

/// Normalises a raw `usage` value. `None` when it is not an object of token counts.
pub fn reported_usage(raw: &RawValue) -> Option<ReportedUsage> {
    let raw: Value = serde_json::from_str(raw.get()).ok()?;
    usage_from_value(raw)
}

/// Normalises a parsed `usage` value. `None` when it is not an object of token counts.
pub fn usage_from_value(raw: Value) -> Option<ReportedUsage> {
    if !raw.is_object() {
        return None;
    }
    let wire = match WireUsage::deserialize(&raw) {
        Ok(wire) => wire,
        Err(error) => {
            tracing::warn!(%error, "upstream usage has unexpected token counts; ignoring it");
            return None;
        }
    };
    let prompt = wire.prompt_tokens_details.as_ref();
    let completion = wire.completion_tokens_details.as_ref();
    let tokens = TokenUsage {
        input: wire.prompt_tokens.unwrap_or(0),
        output: wire.completion_tokens.unwrap_or(0),
        cached_input: prompt.and_then(|d| d.cached_tokens).unwrap_or(0),
        input_audio: prompt.and_then(|d| d.audio_tokens).unwrap_or(0),
        reasoning: completion.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        output_audio: completion.and_then(|d| d.audio_tokens).unwrap_or(0),
        ..TokenUsage::default()
    };
    Some(ReportedUsage { tokens, raw })
}

/// Normalises a raw Responses-style `usage` value (`input_tokens`, `output_tokens`, …). `None`
/// when it is not an object of token counts.
pub fn reported_io_usage(raw: &RawValue) -> Option<ReportedUsage> {
    let raw: Value = serde_json::from_str(raw.get()).ok()?;
    io_usage_from_value(raw)
}

/// Normalises a parsed Responses-style `usage` value.
pub fn io_usage_from_value(raw: Value) -> Option<ReportedUsage> {
    if !raw.is_object() {
        return None;
    }
    let wire = match WireIoUsage::deserialize(&raw) {
        Ok(wire) => wire,
        Err(error) => {
            tracing::warn!(%error, "upstream usage has unexpected token counts; ignoring it");
            return None;
        }
    };
    let input = wire.input_tokens_details.as_ref();
    let output = wire.output_tokens_details.as_ref();
    let tokens = TokenUsage {
        input: wire.input_tokens.unwrap_or(0),
        output: wire.output_tokens.unwrap_or(0),
        cached_input: input.and_then(|d| d.cached_tokens).unwrap_or(0),
        input_audio: input
            .and_then(|d| d.audio_tokens)
            .or_else(|| wire.input_token_details.as_ref()?.audio_tokens)
            .unwrap_or(0),
        input_image: input.and_then(|d| d.image_tokens).unwrap_or(0),
        reasoning: output.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        output_audio: output.and_then(|d| d.audio_tokens).unwrap_or(0),
        output_image: output.and_then(|d| d.image_tokens).unwrap_or(0),
        ..TokenUsage::default()
    };
    Some(ReportedUsage { tokens, raw })
}

/// What an images answer carries: its `data` items (never decoded) and usage.
#[derive(Deserialize)]
struct ImagesProbe<'a> {
    #[serde(default)]
    data: Option<Vec<IgnoredAny>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// Usage of a unary images answer: one unit per item in `data`, plus the tokens `gpt-image-1`
/// reports. `None` when the body is not an images answer or returned no image.
pub fn image_facts(body: &[u8]) -> Option<ReportedUsage> {
    let probe = serde_json::from_slice::<ImagesProbe<'_>>(body).ok()?;
    let images = probe.data.map_or(0, |data| data.len() as u64);
    let tokens = probe.usage.and_then(reported_io_usage);
    if images == 0 && tokens.is_none() {
        return None;
    }
    Some(image_usage(images, tokens))
}

/// `images` units plus the image tokens of `tokens` (when reported). Image output tokens are
/// image tokens unless the upstream broke them down itself.
pub fn image_usage(images: u64, tokens: Option<ReportedUsage>) -> ReportedUsage {
    let (mut usage, raw) = match tokens {
        Some(ReportedUsage { tokens, raw }) => (tokens, raw),
        None => (TokenUsage::default(), serde_json::json!({ IMAGES: images })),
    };
    let output_broken_down = raw
        .get("output_tokens_details")
        .is_some_and(Value::is_object);
    if !output_broken_down {
        usage.output_image = usage.output;
    }
    usage.units = images;
    usage.unit_kind = Some(IMAGES.to_owned());
    ReportedUsage { tokens: usage, raw }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UNARY: &str = include_str!("fixtures/chat_completion.json");

    #[test]
    fn unary_fixture_usage_is_normalised() {
        let (id, usage) = unary_facts(UNARY.as_bytes());
        assert_eq!(
            id.as_deref(),
            Some("chatcmpl-BxQ3kTQ8v2gNqfXzK1aR7cYpLm9Ue")
        );
        let usage = usage.unwrap();
        assert_eq!(
            usage.tokens,
            TokenUsage {
                input: 1117,
                output: 346,
                cached_input: 1024,
                input_audio: 0,
                reasoning: 192,
                output_audio: 0,
                ..TokenUsage::default()
            }
        );
        let fixture: Value = serde_json::from_str(UNARY).unwrap();
        assert_eq!(
            usage.raw, fixture["usage"],
            "the raw usage object is kept as reported"
        );
    }

    #[test]
    fn audio_tokens_map_to_their_directions() {
        let usage = usage_from_value(json!({
            "prompt_tokens": 50,
            "completion_tokens": 70,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 60}
        }))
        .unwrap();
        assert_eq!(usage.tokens.input_audio, 30);
        assert_eq!(usage.tokens.output_audio, 60);
        assert_eq!(usage.tokens.total(), 120);
    }

    #[test]
    fn minimal_and_null_details_are_accepted() {
        let usage = usage_from_value(json!({
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "prompt_tokens_details": null
        }))
        .unwrap();
        assert_eq!(
            (
                usage.tokens.input,
                usage.tokens.output,
                usage.tokens.cached_input
            ),
            (3, 4, 0)
        );
    }

    #[test]
    fn responses_usage_is_normalised_from_its_own_names() {
        let body = br#"{"id":"resp_1","object":"response","output":[],"usage":{"input_tokens":36,
            "input_tokens_details":{"cached_tokens":12},"output_tokens":87,
            "output_tokens_details":{"reasoning_tokens":64},"total_tokens":123}}"#;
        let (id, usage) = unary_facts(body);
        assert_eq!(id.as_deref(), Some("resp_1"));
        let usage = usage.unwrap();
        assert_eq!(
            usage.tokens,
            TokenUsage {
                input: 36,
                output: 87,
                cached_input: 12,
                reasoning: 64,
                ..TokenUsage::default()
            }
        );
        assert_eq!(usage.raw["total_tokens"], 123);
        assert_eq!(unary_facts(b"nope"), (None, None));
    }

    #[test]
    fn images_count_as_units_with_their_tokens() {
        // dall-e: no usage, two images.
        let usage = image_facts(
            br#"{"created":1,"data":[{"url":"https://x/1.png"},{"url":"https://x/2.png"}]}"#,
        )
        .unwrap();
        assert_eq!(usage.tokens.units, 2);
        assert_eq!(usage.tokens.unit_kind.as_deref(), Some("images"));
        assert_eq!(usage.tokens.total(), 0);
        assert_eq!(usage.raw, json!({"images": 2}));

        // gpt-image-1: usage with image input tokens; output tokens are image tokens.
        let usage = image_facts(
            br#"{"created":1,"data":[{"b64_json":"aGVsbG8="}],"usage":{"total_tokens":100,
                "input_tokens":50,"output_tokens":50,
                "input_tokens_details":{"text_tokens":10,"image_tokens":40}}}"#,
        )
        .unwrap();
        assert_eq!(
            usage.tokens,
            TokenUsage {
                input: 50,
                output: 50,
                input_image: 40,
                output_image: 50,
                units: 1,
                unit_kind: Some("images".into()),
                ..TokenUsage::default()
            }
        );
        assert_eq!(usage.raw["total_tokens"], 100);

        // An upstream breakdown of output tokens is taken as given.
        let usage = image_facts(
            br#"{"data":[{}],"usage":{"input_tokens":1,"output_tokens":9,
                "output_tokens_details":{"text_tokens":3,"image_tokens":6}}}"#,
        )
        .unwrap();
        assert_eq!(usage.tokens.output_image, 6);

        assert!(image_facts(br#"{"data":[]}"#).is_none());
        assert!(image_facts(b"<html>").is_none());
    }

    #[test]
    fn every_usage_convention_is_normalised() {
        let chat =
            any_usage_from_value(json!({"prompt_tokens": 7, "completion_tokens": 3})).unwrap();
        assert_eq!((chat.tokens.input, chat.tokens.output), (7, 3));

        let embeddings = any_usage_from_value(
            json!({"prompt_tokens": 9, "total_tokens": 9, "completion_tokens": 0}),
        )
        .unwrap();
        assert_eq!((embeddings.tokens.input, embeddings.tokens.output), (9, 0));

        let responses = any_usage_from_value(json!({
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

        let transcription = any_usage_from_value(json!({
            "type": "tokens", "input_tokens": 14, "output_tokens": 101,
            "input_token_details": {"text_tokens": 10, "audio_tokens": 4}
        }))
        .unwrap();
        assert_eq!(transcription.tokens.input_audio, 4);

        let rerank = any_usage_from_value(json!({"total_tokens": 42})).unwrap();
        assert_eq!((rerank.tokens.input, rerank.tokens.output), (42, 0));
        assert_eq!(rerank.raw, json!({"total_tokens": 42}));

        let duration = any_usage_from_value(json!({"type": "duration", "seconds": 3})).unwrap();
        assert_eq!(duration.tokens, TokenUsage::default());
        assert!(any_usage_from_value(json!("many")).is_none());
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
    fn unusable_usage_is_ignored() {
        assert!(usage_from_value(json!(null)).is_none());
        assert!(usage_from_value(json!([1])).is_none());
        assert!(usage_from_value(json!({"prompt_tokens": "many"})).is_none());
        assert_eq!(unary_facts(b"<html>bad gateway</html>"), (None, None));
        assert_eq!(
            unary_facts(br#"{"id":"x","usage":null}"#),
            (Some("x".into()), None)
        );
    }
}
