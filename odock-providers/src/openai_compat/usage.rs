//! Usage as OpenAI-compatible upstreams report it, normalised into [`TokenUsage`].
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
//! The raw `usage` object is kept as reported, for the usage record.

use std::borrow::Cow;

use odock_core::{ReportedUsage, TokenUsage};
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

/// The facts the gateway takes from a unary response; every other field is skipped unparsed.
#[derive(Deserialize)]
struct CompletionProbe<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
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

/// The response `id` and usage of a unary `chat.completion` body. A body that is not JSON yields
/// neither (it is still relayed).
pub fn completion_facts(body: &[u8]) -> (Option<String>, Option<ReportedUsage>) {
    match serde_json::from_slice::<CompletionProbe<'_>>(body) {
        Ok(probe) => (
            probe.id.map(Cow::into_owned).filter(|id| !id.is_empty()),
            probe.usage.and_then(reported_usage),
        ),
        Err(_) => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UNARY: &str = include_str!("fixtures/chat_completion.json");

    #[test]
    fn unary_fixture_usage_is_normalised() {
        let (id, usage) = completion_facts(UNARY.as_bytes());
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
    fn unusable_usage_is_ignored() {
        assert!(usage_from_value(json!(null)).is_none());
        assert!(usage_from_value(json!([1])).is_none());
        assert!(usage_from_value(json!({"prompt_tokens": "many"})).is_none());
        assert_eq!(completion_facts(b"<html>bad gateway</html>"), (None, None));
        assert_eq!(
            completion_facts(br#"{"id":"x","usage":null}"#),
            (Some("x".into()), None)
        );
    }
}
