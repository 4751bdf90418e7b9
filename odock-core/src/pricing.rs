//! Model pricing and the billing calculator.
//!
//! Money is integer nanos USD. Token rates are nanos USD per 1M tokens, unit rates nanos USD per
//! 1,000 units. A record's cost is computed exactly in `i128` and rounded **up** to the next nano
//! once, at the end (never per component), so splitting usage across components never adds nanos.

use serde::{Deserialize, Serialize};

use crate::tokens::TokenUsage;

/// Token rates for one direction, in nanos USD per 1M tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRates {
    /// Text tokens (and any modality whose own rate is 0).
    pub text: i64,
    /// Image tokens; 0 bills them as text.
    pub image: i64,
    /// Audio tokens; 0 bills them as text.
    pub audio: i64,
    /// Video tokens; 0 bills them as text.
    pub video: i64,
    /// Reasoning tokens (output only); 0 bills them as text.
    pub reasoning: i64,
}

/// A model's price list, as stored on the model and snapshotted into each usage record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelPricing {
    /// Rates for input tokens.
    pub input: TokenRates,
    /// Rates for output tokens.
    pub output: TokenRates,
    /// 0..=100, applied to the input text rate for cached input tokens.
    #[cfg_attr(feature = "openapi", schema(maximum = 100))]
    pub cached_input_discount_percent: u8,
    /// Nanos USD per 1M tokens on embeddings endpoints (replaces the input rates there).
    pub embeddings: i64,
    /// Nanos USD per 1,000 units (pages, images, …).
    pub unit_rate: i64,
    /// What a unit is (`page`, `image`, …), for display; it does not change the price.
    pub unit_kind: Option<String>,
}

/// Why a price list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// A rate is negative (the rate's name, as the admin API spells it).
    #[error("pricing rate `{0}` must not be negative")]
    NegativeRate(&'static str),
    /// The cached-input discount is above 100 %.
    #[error("cachedInputDiscountPercent must be between 0 and 100")]
    DiscountOutOfRange,
}

impl ModelPricing {
    /// Text rates in USD per 1M tokens (`0.15` input, `0.60` output, …), stored as integer nanos.
    pub fn usd_per_million_tokens(input: f64, output: f64) -> Self {
        Self {
            input: TokenRates {
                text: usd_to_nanos(input),
                ..TokenRates::default()
            },
            output: TokenRates {
                text: usd_to_nanos(output),
                ..TokenRates::default()
            },
            ..Self::default()
        }
    }

    /// Checks the invariants the calculator relies on.
    pub fn validate(&self) -> Result<(), PricingError> {
        let rates = [
            ("input.text", self.input.text),
            ("input.image", self.input.image),
            ("input.audio", self.input.audio),
            ("input.video", self.input.video),
            ("input.reasoning", self.input.reasoning),
            ("output.text", self.output.text),
            ("output.image", self.output.image),
            ("output.audio", self.output.audio),
            ("output.video", self.output.video),
            ("output.reasoning", self.output.reasoning),
            ("embeddings", self.embeddings),
            ("unitRate", self.unit_rate),
        ];
        if let Some((name, _)) = rates.iter().find(|(_, rate)| *rate < 0) {
            return Err(PricingError::NegativeRate(name));
        }
        if self.cached_input_discount_percent > 100 {
            return Err(PricingError::DiscountOutOfRange);
        }
        Ok(())
    }

    /// True when every rate is zero: the model is unpriced and its usage costs nothing.
    pub fn is_free(&self) -> bool {
        *self
            == ModelPricing {
                unit_kind: self.unit_kind.clone(),
                ..ModelPricing::default()
            }
    }
}

/// How the tokens of a request are priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BillingMode {
    /// Chat, responses, messages: input and output rates.
    Tokens,
    /// Embeddings: input tokens at the embeddings rate.
    Embeddings,
}

/// The calculator's result, stored on the usage record: the exact total, the components (each
/// rounded up on its own, for display only) and the pricing snapshot it used, so later price edits
/// never rewrite history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Bill {
    /// The exact total, rounded up once: what the request costs.
    #[serde(rename = "totalCostNanosUsd")]
    pub cost_nanos_usd: i64,
    /// Input tokens other than cached ones (display only).
    pub input_cost_nanos_usd: i64,
    /// Cached input tokens, discounted (display only).
    pub cached_input_cost_nanos_usd: i64,
    /// Output tokens (display only).
    pub output_cost_nanos_usd: i64,
    /// Units (display only).
    pub units_cost_nanos_usd: i64,
    /// How the tokens were priced.
    pub mode: BillingMode,
    /// The price list used, snapshotted so later edits never rewrite history.
    pub pricing: ModelPricing,
}

/// Fixed-point scale: amounts are summed in 1e-8 nanos so that per-1M-token rates (÷1e6), cache
/// discounts (÷100) and per-1,000-unit rates (÷1e3) are all exact integers before the one rounding.
const SCALE: i128 = 100_000_000;

/// Prices `usage` with `pricing`.
///
/// Rules (documented in DECISIONS.md and docs/architecture.md):
/// - `usage.input` includes cached, audio and image input tokens (OpenAI convention); the text part is
///   what remains. Cached tokens pay the input text rate less the discount.
/// - `usage.output` includes reasoning, audio and image output tokens; reasoning tokens use the
///   output reasoning rate when set, else the output text rate.
/// - A modality rate (image, audio) of 0 means "bill as text".
/// - Units pay `unit_rate` per 1,000 units. When a request reports units and the model has a unit
///   rate, that price is all-inclusive: its tokens are not billed on top (an image generated by a
///   model priced per image costs the image price, whatever tokens the upstream reports).
pub fn bill(pricing: &ModelPricing, usage: &TokenUsage, mode: BillingMode) -> Bill {
    if usage.units > 0 && pricing.unit_rate > 0 {
        let units_only = TokenUsage {
            units: usage.units,
            ..TokenUsage::default()
        };
        return bill_components(pricing, &units_only, mode);
    }
    bill_components(pricing, usage, mode)
}

fn bill_components(pricing: &ModelPricing, usage: &TokenUsage, mode: BillingMode) -> Bill {
    let tokens = |n: u64| i128::from(n);
    let rate =
        |specific: i64, fallback: i64| i128::from(if specific > 0 { specific } else { fallback });
    let per_token = SCALE / 1_000_000; // scale units per (token × nanos-per-1M-token rate)

    let cached = usage.cached_input.min(usage.input);
    let input_audio = usage.input_audio.min(usage.input - cached);
    let input_image = usage.input_image.min(usage.input - cached - input_audio);
    let input_text = usage.input - cached - input_audio - input_image;
    let reasoning = usage.reasoning.min(usage.output);
    let output_audio = usage.output_audio.min(usage.output - reasoning);
    let output_image = usage
        .output_image
        .min(usage.output - reasoning - output_audio);
    let output_text = usage.output - reasoning - output_audio - output_image;

    let (input_part, cached_part) = match mode {
        BillingMode::Embeddings => (
            tokens(usage.input) * i128::from(pricing.embeddings) * per_token,
            0,
        ),
        BillingMode::Tokens => {
            let text = i128::from(pricing.input.text);
            let discount = i128::from(100 - pricing.cached_input_discount_percent.min(100));
            (
                (tokens(input_text) * text
                    + tokens(input_audio) * rate(pricing.input.audio, pricing.input.text)
                    + tokens(input_image) * rate(pricing.input.image, pricing.input.text))
                    * per_token,
                tokens(cached) * text * discount * (per_token / 100),
            )
        }
    };
    let output_part = match mode {
        BillingMode::Embeddings => 0,
        BillingMode::Tokens => {
            (tokens(output_text) * i128::from(pricing.output.text)
                + tokens(reasoning) * rate(pricing.output.reasoning, pricing.output.text)
                + tokens(output_audio) * rate(pricing.output.audio, pricing.output.text)
                + tokens(output_image) * rate(pricing.output.image, pricing.output.text))
                * per_token
        }
    };
    let units_part = tokens(usage.units) * i128::from(pricing.unit_rate) * (SCALE / 1_000);

    let total = input_part + cached_part + output_part + units_part;
    let to_nanos = |scaled: i128| -> i64 {
        let nanos = (scaled + SCALE - 1).div_euclid(SCALE);
        i64::try_from(nanos).unwrap_or(i64::MAX)
    };
    Bill {
        cost_nanos_usd: to_nanos(total),
        input_cost_nanos_usd: to_nanos(input_part),
        cached_input_cost_nanos_usd: to_nanos(cached_part),
        output_cost_nanos_usd: to_nanos(output_part),
        units_cost_nanos_usd: to_nanos(units_part),
        mode,
        pricing: pricing.clone(),
    }
}

/// An MCP server's price list (DECISIONS.md "MCP pricing"): `callNanosUsd` per `tools/call`, and
/// byte rates in nanos USD per 1M bytes applied to every message forwarded (request bytes in,
/// response bytes out). Omitted rates are 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct McpPricing {
    /// Nanos USD per `tools/call`.
    pub call_nanos_usd: i64,
    /// Price per 1M bytes of client messages forwarded upstream.
    pub input_nanos_usd_per_million_bytes: i64,
    /// Price per 1M bytes of upstream replies relayed back.
    pub output_nanos_usd_per_million_bytes: i64,
}

impl McpPricing {
    /// Refuses negative rates (naming the field as the admin API spells it).
    pub fn validate(&self) -> Result<(), PricingError> {
        let rates = [
            ("callNanosUsd", self.call_nanos_usd),
            (
                "inputNanosUsdPerMillionBytes",
                self.input_nanos_usd_per_million_bytes,
            ),
            (
                "outputNanosUsdPerMillionBytes",
                self.output_nanos_usd_per_million_bytes,
            ),
        ];
        match rates.iter().find(|(_, rate)| *rate < 0) {
            Some((name, _)) => Err(PricingError::NegativeRate(name)),
            None => Ok(()),
        }
    }
}

/// The price of one MCP exchange: the exact total (rounded up once), its components (each rounded
/// up on its own, for display) and the pricing snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct McpBill {
    /// The exact total, rounded up once: what the exchange costs.
    #[serde(rename = "totalCostNanosUsd")]
    pub cost_nanos_usd: i64,
    /// The `tools/call` part (display only).
    pub call_cost_nanos_usd: i64,
    /// The request-bytes part (display only).
    pub input_cost_nanos_usd: i64,
    /// The response-bytes part (display only).
    pub output_cost_nanos_usd: i64,
    /// The price list used, snapshotted so later edits never rewrite history.
    pub pricing: McpPricing,
}

/// Prices `tool_calls` calls plus `input_bytes` / `output_bytes` forwarded. Summed exactly in
/// `i128` at a 1e-6-nano scale (byte rates are per 1M bytes), rounded up once.
pub fn bill_mcp(
    pricing: &McpPricing,
    tool_calls: u64,
    input_bytes: u64,
    output_bytes: u64,
) -> McpBill {
    const PER_MILLION: i128 = 1_000_000;
    let call = i128::from(tool_calls) * i128::from(pricing.call_nanos_usd) * PER_MILLION;
    let input = i128::from(input_bytes) * i128::from(pricing.input_nanos_usd_per_million_bytes);
    let output = i128::from(output_bytes) * i128::from(pricing.output_nanos_usd_per_million_bytes);
    let to_nanos = |scaled: i128| -> i64 {
        let nanos = (scaled + PER_MILLION - 1).div_euclid(PER_MILLION);
        i64::try_from(nanos).unwrap_or(i64::MAX)
    };
    McpBill {
        cost_nanos_usd: to_nanos(call + input + output),
        call_cost_nanos_usd: to_nanos(call),
        input_cost_nanos_usd: to_nanos(input),
        output_cost_nanos_usd: to_nanos(output),
        pricing: *pricing,
    }
}

#[cfg(test)]
mod mcp_tests {
    use super::*;

    #[test]
    fn mcp_calls_and_bytes_are_priced_per_the_stated_units() {
        // $2 per 1M calls = 2,000 nanos per call; $0.50 and $1.00 per 1M bytes.
        let pricing = McpPricing {
            call_nanos_usd: 2_000,
            input_nanos_usd_per_million_bytes: 500_000_000,
            output_nanos_usd_per_million_bytes: 1_000_000_000,
        };
        let bill = bill_mcp(&pricing, 1, 2_000, 8_000);
        assert_eq!(bill.call_cost_nanos_usd, 2_000);
        assert_eq!(bill.input_cost_nanos_usd, 1_000_000);
        assert_eq!(bill.output_cost_nanos_usd, 8_000_000);
        assert_eq!(bill.cost_nanos_usd, 9_002_000);
        // One byte at 1 nano per 1M bytes costs a millionth of a nano: the record still costs 1.
        let tiny = McpPricing {
            input_nanos_usd_per_million_bytes: 1,
            ..McpPricing::default()
        };
        assert_eq!(bill_mcp(&tiny, 0, 1, 0).cost_nanos_usd, 1);
        assert_eq!(
            bill_mcp(&McpPricing::default(), 3, 10, 10).cost_nanos_usd,
            0
        );
        let json = serde_json::to_value(bill).unwrap();
        assert_eq!(json["totalCostNanosUsd"], 9_002_000);
        assert_eq!(json["pricing"]["callNanosUsd"], 2_000);
        assert!(McpPricing {
            call_nanos_usd: -1,
            ..McpPricing::default()
        }
        .validate()
        .is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64) -> TokenUsage {
        TokenUsage {
            input,
            output,
            ..TokenUsage::default()
        }
    }

    #[test]
    fn matches_the_documented_example() {
        // 15 input tokens at $2/1M and 644 output tokens at $8/1M = 30,000 + 5,152,000 nanos.
        let pricing = ModelPricing {
            input: TokenRates {
                text: 2_000_000_000,
                ..TokenRates::default()
            },
            output: TokenRates {
                text: 8_000_000_000,
                ..TokenRates::default()
            },
            ..ModelPricing::default()
        };
        let bill = bill(&pricing, &usage(15, 644), BillingMode::Tokens);
        assert_eq!(bill.cost_nanos_usd, 5_182_000);
        assert_eq!(bill.input_cost_nanos_usd, 30_000);
        let json = serde_json::to_value(&bill).unwrap();
        assert_eq!(json["totalCostNanosUsd"], 5_182_000);
        assert_eq!(json["mode"], "tokens");
        assert_eq!(json["pricing"]["output"]["text"], 8_000_000_000i64);
    }

    #[test]
    fn rounds_up_once_for_the_whole_record() {
        // 1 token at 1 nano per 1M tokens is 1e-6 nanos: the record costs 1 nano, not 0.
        let pricing = ModelPricing {
            input: TokenRates {
                text: 1,
                ..TokenRates::default()
            },
            output: TokenRates {
                text: 1,
                ..TokenRates::default()
            },
            ..ModelPricing::default()
        };
        assert_eq!(
            bill(&pricing, &usage(1, 1), BillingMode::Tokens).cost_nanos_usd,
            1
        );
        // 500,000 + 500,000 tokens at 1 nano/1M = exactly 1 nano: no extra nano from rounding twice.
        assert_eq!(
            bill(&pricing, &usage(500_000, 500_000), BillingMode::Tokens).cost_nanos_usd,
            1
        );
        assert_eq!(
            bill(&pricing, &usage(0, 0), BillingMode::Tokens).cost_nanos_usd,
            0
        );
    }

    #[test]
    fn cached_tokens_get_the_discount_and_reasoning_its_rate() {
        let pricing = ModelPricing {
            input: TokenRates {
                text: 1_000_000_000,
                ..TokenRates::default()
            },
            output: TokenRates {
                text: 4_000_000_000,
                reasoning: 2_000_000_000,
                ..TokenRates::default()
            },
            cached_input_discount_percent: 50,
            ..ModelPricing::default()
        };
        let usage = TokenUsage {
            input: 1_000_000,
            cached_input: 400_000,
            output: 1_000_000,
            reasoning: 500_000,
            ..TokenUsage::default()
        };
        // input: 600k × $1/1M = 0.6 USD; cached 400k × $0.5/1M = 0.2 USD;
        // output: 500k × $4/1M = 2 USD; reasoning 500k × $2/1M = 1 USD.
        assert_eq!(
            bill(&pricing, &usage, BillingMode::Tokens).cost_nanos_usd,
            3_800_000_000
        );
    }

    #[test]
    fn embeddings_and_units_use_their_own_rates() {
        let pricing = ModelPricing {
            input: TokenRates {
                text: 9_999,
                ..TokenRates::default()
            },
            embeddings: 20_000_000,
            unit_rate: 30_000_000_000, // $0.03 per image = $30 per 1,000
            ..ModelPricing::default()
        };
        assert_eq!(
            bill(&pricing, &usage(1_000_000, 0), BillingMode::Embeddings).cost_nanos_usd,
            20_000_000
        );
        let two_images = TokenUsage {
            units: 2,
            ..TokenUsage::default()
        };
        assert_eq!(
            bill(&pricing, &two_images, BillingMode::Tokens).cost_nanos_usd,
            60_000_000
        );
    }

    #[test]
    fn validation_rejects_negative_rates_and_bad_discounts() {
        let mut pricing = ModelPricing::default();
        assert!(pricing.is_free());
        pricing.output.text = -1;
        assert_eq!(
            pricing.validate(),
            Err(PricingError::NegativeRate("output.text"))
        );
        pricing.output.text = 1;
        pricing.cached_input_discount_percent = 101;
        assert_eq!(pricing.validate(), Err(PricingError::DiscountOutOfRange));
    }
}

/// A USD amount as integer nanos (1 USD = 1,000,000,000), rounded to the nearest nano. For amounts
/// written by people (prices, budgets); money is never computed in floating point.
pub fn usd_to_nanos(usd: f64) -> i64 {
    (usd * 1e9).round() as i64
}
