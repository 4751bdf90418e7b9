//! [`TokenUsage`]: token counts normalised across providers — what pricing bills and usage records
//! carry.

use serde::{Deserialize, Serialize};

/// Token counts normalised across providers. `input` includes cached, audio and image input tokens;
/// `output` includes reasoning, audio and image output tokens (the OpenAI convention).
///
/// On the wire (usage records) it reads `{input, output, cached, reasoning, total, …}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "TokenUsageWire", from = "TokenUsageWire")]
pub struct TokenUsage {
    /// Input tokens, cached, audio and image ones included.
    pub input: u64,
    /// Output tokens, reasoning, audio and image ones included.
    pub output: u64,
    /// The part of `input` read from a prompt cache.
    pub cached_input: u64,
    /// The part of `output` spent on reasoning.
    pub reasoning: u64,
    /// The part of `input` that was audio.
    pub input_audio: u64,
    /// The part of `output` that was audio.
    pub output_audio: u64,
    /// The part of `input` that was images.
    pub input_image: u64,
    /// The part of `output` that was images.
    pub output_image: u64,
    /// Per-unit endpoints (pages, images, …).
    pub units: u64,
    /// What `units` count (`page`, `image`, …).
    pub unit_kind: Option<String>,
}

/// The serialised shape of [`TokenUsage`]; `total` is derived, never trusted on input.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, rename_all = "camelCase")]
struct TokenUsageWire {
    #[cfg_attr(feature = "openapi", schema(required = true))]
    input: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    output: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    cached: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    reasoning: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    total: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    input_audio: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    output_audio: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    input_image: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    output_image: u64,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    units: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_kind: Option<String>,
}

/// [`TokenUsage`] is documented as its wire form.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TokenUsage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <TokenUsageWire as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TokenUsage {}

impl Default for TokenUsageWire {
    fn default() -> Self {
        TokenUsage::default().into()
    }
}

impl From<TokenUsage> for TokenUsageWire {
    fn from(t: TokenUsage) -> Self {
        Self {
            total: t.total(),
            input: t.input,
            output: t.output,
            cached: t.cached_input,
            reasoning: t.reasoning,
            input_audio: t.input_audio,
            output_audio: t.output_audio,
            input_image: t.input_image,
            output_image: t.output_image,
            units: t.units,
            unit_kind: t.unit_kind,
        }
    }
}

impl From<TokenUsageWire> for TokenUsage {
    fn from(w: TokenUsageWire) -> Self {
        Self {
            input: w.input,
            output: w.output,
            cached_input: w.cached,
            reasoning: w.reasoning,
            input_audio: w.input_audio,
            output_audio: w.output_audio,
            input_image: w.input_image,
            output_image: w.output_image,
            units: w.units,
            unit_kind: w.unit_kind,
        }
    }
}

impl TokenUsage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}
