//! Usage as Gemini reports it (`usageMetadata`), normalised into [`TokenUsage`].
//!
//! | `usageMetadata` field                                   | [`TokenUsage`]                  |
//! |---------------------------------------------------------|---------------------------------|
//! | `promptTokenCount` + `toolUsePromptTokenCount`          | `input`                         |
//! | `cachedContentTokenCount`                               | `cached_input`                  |
//! | `candidatesTokenCount` + `thoughtsTokenCount`           | `output`                        |
//! | `thoughtsTokenCount`                                    | `reasoning`                     |
//! | `promptTokensDetails[]` with modality `AUDIO` / `IMAGE` | `input_audio` / `input_image`   |
//! | `candidatesTokensDetails[]` with `AUDIO` / `IMAGE`      | `output_audio` / `output_image` |
//!
//! Gemini counts thinking *outside* the candidates: `candidatesTokenCount` is the answer only and
//! `totalTokenCount` = prompt + tool-use prompt + candidates + thoughts. Odock's `output` includes
//! reasoning (the OpenAI convention), so it is `candidatesTokenCount + thoughtsTokenCount`.
//! Likewise `toolUsePromptTokenCount` (what built-in tools such as search fed back to the model)
//! is billed as input but not included in `promptTokenCount`, so it is added to `input`.
//! `promptTokenCount` already includes the cached tokens.
//!
//! In a stream every chunk carries the usage so far (cumulative, not a delta); the last one is the
//! request's. The raw `usageMetadata` object is kept as reported, for the usage record.

use std::borrow::Cow;

use odock_core::{ReportedUsage, TokenUsage};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Vec<ModalityCount>>,
    #[serde(default)]
    tool_use_prompt_tokens_details: Option<Vec<ModalityCount>>,
    #[serde(default)]
    candidates_tokens_details: Option<Vec<ModalityCount>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    #[serde(default)]
    modality: Option<String>,
    #[serde(default)]
    token_count: Option<u64>,
}

/// Sums the tokens of `modality` over some `*TokensDetails` lists.
fn modality_tokens<'a>(
    lists: impl IntoIterator<Item = &'a Option<Vec<ModalityCount>>>,
    modality: &str,
) -> u64 {
    lists
        .into_iter()
        .flatten()
        .flatten()
        .filter(|count| count.modality.as_deref() == Some(modality))
        .filter_map(|count| count.token_count)
        .fold(0u64, u64::saturating_add)
}

/// The facts the gateway takes from a unary response; every other member is skipped unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseProbe<'a> {
    #[serde(default, borrow)]
    response_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    usage_metadata: Option<&'a RawValue>,
}

/// Normalises a raw `usageMetadata` value. `None` when it is not an object of token counts.
pub fn reported_usage(raw: &RawValue) -> Option<ReportedUsage> {
    let raw: Value = serde_json::from_str(raw.get()).ok()?;
    usage_from_value(raw)
}

/// Normalises a parsed `usageMetadata` value. `None` when it is not an object of token counts.
pub fn usage_from_value(raw: Value) -> Option<ReportedUsage> {
    if !raw.is_object() {
        return None;
    }
    let wire = match WireUsage::deserialize(&raw) {
        Ok(wire) => wire,
        Err(error) => {
            tracing::warn!(%error, "Gemini usageMetadata has unexpected token counts; ignoring it");
            return None;
        }
    };
    let thoughts = wire.thoughts_token_count.unwrap_or(0);
    let inputs = [
        &wire.prompt_tokens_details,
        &wire.tool_use_prompt_tokens_details,
    ];
    let outputs = [&wire.candidates_tokens_details];
    let tokens = TokenUsage {
        input: wire
            .prompt_token_count
            .unwrap_or(0)
            .saturating_add(wire.tool_use_prompt_token_count.unwrap_or(0)),
        output: wire
            .candidates_token_count
            .unwrap_or(0)
            .saturating_add(thoughts),
        cached_input: wire.cached_content_token_count.unwrap_or(0),
        reasoning: thoughts,
        input_audio: modality_tokens(inputs, "AUDIO"),
        input_image: modality_tokens(inputs, "IMAGE"),
        output_audio: modality_tokens(outputs, "AUDIO"),
        output_image: modality_tokens(outputs, "IMAGE"),
        ..TokenUsage::default()
    };
    Some(ReportedUsage { tokens, raw })
}

/// The `responseId` and usage of a unary `GenerateContentResponse` body, or of a JSON array of
/// them (how `streamGenerateContent` answers without `alt=sse`; the last usage is the request's).
/// A body that is neither yields nothing (it is still relayed).
pub fn response_facts(body: &[u8]) -> (Option<String>, Option<ReportedUsage>) {
    let probes = match serde_json::from_slice::<ResponseProbe<'_>>(body) {
        Ok(probe) => vec![probe],
        Err(_) => serde_json::from_slice::<Vec<ResponseProbe<'_>>>(body).unwrap_or_default(),
    };
    let id = probes
        .iter()
        .find_map(|probe| probe.response_id.as_deref().filter(|id| !id.is_empty()))
        .map(str::to_owned);
    let usage = probes
        .iter()
        .rev()
        .find_map(|probe| probe.usage_metadata.and_then(reported_usage));
    (id, usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UNARY: &str = include_str!("fixtures/generate_content.json");

    #[test]
    fn unary_fixture_usage_is_normalised() {
        let (id, usage) = response_facts(UNARY.as_bytes());
        assert_eq!(id.as_deref(), Some("xBJ2aOu3Ks-Az7IP2Kq8wQ8"));
        let usage = usage.unwrap();
        assert_eq!(
            usage.tokens,
            TokenUsage {
                input: 1187,
                output: 31 + 94,
                cached_input: 1024,
                reasoning: 94,
                ..TokenUsage::default()
            }
        );
        let fixture: Value = serde_json::from_str(UNARY).unwrap();
        assert_eq!(usage.raw, fixture["usageMetadata"]);
        assert_eq!(
            usage.tokens.total(),
            fixture["usageMetadata"]["totalTokenCount"]
                .as_u64()
                .unwrap(),
            "Odock's total matches Gemini's once thoughts count as output"
        );
    }

    #[test]
    fn modalities_and_tool_use_prompts_are_counted() {
        let usage = usage_from_value(json!({
            "promptTokenCount": 1300,
            "toolUsePromptTokenCount": 200,
            "candidatesTokenCount": 400,
            "totalTokenCount": 1900,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 42},
                {"modality": "IMAGE", "tokenCount": 1032},
                {"modality": "AUDIO", "tokenCount": 226}
            ],
            "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 200}],
            "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 400}]
        }))
        .unwrap();
        assert_eq!(usage.tokens.input, 1500);
        assert_eq!(usage.tokens.input_image, 1032);
        assert_eq!(usage.tokens.input_audio, 226);
        assert_eq!(usage.tokens.output, 400);
        assert_eq!(usage.tokens.output_audio, 400);
        assert_eq!(usage.tokens.output_image, 0);
        assert_eq!(usage.tokens.total(), 1900);
    }

    #[test]
    fn early_stream_chunks_may_carry_only_the_prompt() {
        let usage = usage_from_value(json!({"promptTokenCount": 9, "totalTokenCount": 9})).unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (9, 0));
    }

    #[test]
    fn unusable_usage_is_ignored() {
        assert!(usage_from_value(json!(null)).is_none());
        assert!(usage_from_value(json!([1])).is_none());
        assert!(usage_from_value(json!({"promptTokenCount": "many"})).is_none());
        assert_eq!(response_facts(b"<html>bad gateway</html>"), (None, None));
        let (id, usage) = response_facts(
            br#"[{"responseId":"r1","usageMetadata":{"promptTokenCount":3}},
                 {"responseId":"r1","usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":8}}]"#,
        );
        assert_eq!(id.as_deref(), Some("r1"));
        assert_eq!(usage.unwrap().tokens.output, 8);
        assert_eq!(
            response_facts(br#"{"responseId":"r","usageMetadata":null}"#),
            (Some("r".into()), None)
        );
    }
}
