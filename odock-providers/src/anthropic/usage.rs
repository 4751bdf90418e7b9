//! Usage as the Messages API reports it, normalised into [`TokenUsage`].
//!
//! | upstream field                  | [`TokenUsage`]                     |
//! |---------------------------------|------------------------------------|
//! | `input_tokens`                  | `input` (the uncached part)        |
//! | `cache_read_input_tokens`       | `input` and `cached_input`         |
//! | `cache_creation_input_tokens`   | `input` (billed at the input rate) |
//! | `output_tokens`                 | `output` (thinking included)       |
//!
//! Anthropic's `input_tokens` excludes cached tokens, whereas [`TokenUsage::input`] follows the
//! OpenAI convention of including them; hence the sum.
//!
//! A stream reports usage in two halves: `message_start.message.usage` (input and cache counts)
//! and `message_delta.usage` (the final `output_tokens`, and on newer API versions cumulative
//! input counts too). [`merge`] overlays the second on the first.

use odock_core::{ReportedUsage, TokenUsage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// Normalises a raw `usage` object, keeping it as the record's raw usage. `None` when it is not
/// an object of token counts.
pub fn reported_usage(raw: Value) -> Option<ReportedUsage> {
    let tokens = token_usage(&raw)?;
    Some(ReportedUsage { tokens, raw })
}

/// The normalised counts of a raw `usage` object.
pub fn token_usage(raw: &Value) -> Option<TokenUsage> {
    if !raw.is_object() {
        return None;
    }
    let wire = match WireUsage::deserialize(raw) {
        Ok(wire) => wire,
        Err(error) => {
            tracing::warn!(%error, "upstream usage has unexpected token counts; ignoring it");
            return None;
        }
    };
    let cache_read = wire.cache_read_input_tokens.unwrap_or(0);
    Some(TokenUsage {
        input: wire
            .input_tokens
            .unwrap_or(0)
            .saturating_add(cache_read)
            .saturating_add(wire.cache_creation_input_tokens.unwrap_or(0)),
        cached_input: cache_read,
        output: wire.output_tokens.unwrap_or(0),
        ..TokenUsage::default()
    })
}

/// `start` with every non-null member of `delta` written over it: the usage of a whole stream.
pub fn merge(start: &Value, delta: &Value) -> Value {
    let mut merged = match start {
        Value::Object(start) => start.clone(),
        _ => serde_json::Map::new(),
    };
    if let Value::Object(delta) = delta {
        for (key, value) in delta {
            if !value.is_null() {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(merged)
}

/// An OpenAI `usage` object (cached tokens under `prompt_tokens_details`), serialised in the order
/// OpenAI writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpenAiUsage {
    /// Input tokens, cached ones included (Anthropic counts those apart).
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input plus output tokens.
    pub total_tokens: u64,
    /// The cached part of the input.
    pub prompt_tokens_details: PromptTokensDetails,
}

/// OpenAI's `prompt_tokens_details`, as far as Anthropic's usage fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
}

/// The OpenAI usage for normalised counts.
pub fn openai_usage(tokens: &TokenUsage) -> OpenAiUsage {
    OpenAiUsage {
        prompt_tokens: tokens.input,
        completion_tokens: tokens.output,
        total_tokens: tokens.total(),
        prompt_tokens_details: PromptTokensDetails {
            cached_tokens: tokens.cached_input,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cache_tokens_count_as_input_and_reads_as_cached() {
        let usage = reported_usage(json!({
            "input_tokens": 472,
            "cache_creation_input_tokens": 120,
            "cache_read_input_tokens": 2048,
            "output_tokens": 89,
            "service_tier": "standard"
        }))
        .unwrap();
        assert_eq!(
            usage.tokens,
            TokenUsage {
                input: 472 + 120 + 2048,
                cached_input: 2048,
                output: 89,
                ..TokenUsage::default()
            }
        );
        assert_eq!(usage.raw["service_tier"], "standard", "kept raw");
    }

    #[test]
    fn missing_and_null_counts_are_zero() {
        let tokens =
            token_usage(&json!({"output_tokens": 3, "cache_read_input_tokens": null})).unwrap();
        assert_eq!(
            (tokens.input, tokens.cached_input, tokens.output),
            (0, 0, 3)
        );
    }

    #[test]
    fn unusable_usage_is_ignored() {
        assert!(reported_usage(json!(null)).is_none());
        assert!(reported_usage(json!([1])).is_none());
        assert!(reported_usage(json!({"input_tokens": "many"})).is_none());
    }

    #[test]
    fn the_delta_overrides_the_start_but_nulls_do_not() {
        let start = json!({"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1});
        let delta = json!({"output_tokens": 42, "cache_read_input_tokens": null});
        assert_eq!(
            merge(&start, &delta),
            json!({"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 42})
        );
        assert_eq!(merge(&Value::Null, &delta), json!({"output_tokens": 42}));
    }

    #[test]
    fn openai_usage_carries_cached_tokens() {
        let tokens = TokenUsage {
            input: 30,
            cached_input: 20,
            output: 5,
            ..TokenUsage::default()
        };
        assert_eq!(
            serde_json::to_value(openai_usage(&tokens)).unwrap(),
            json!({"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35,
                   "prompt_tokens_details": {"cached_tokens": 20}})
        );
    }
}
