//! The provider for Mistral's API (La Plateforme).
//!
//! - **URLs:** the base URL includes the version (`https://api.mistral.ai/v1`); the gateway
//!   appends `chat/completions`, `fim/completions` (`prompt`, `suffix`), `embeddings`,
//!   `moderations` or `ocr`. `/v1/llm/chat` goes to `chat/completions`.
//! - **Auth:** `Authorization: Bearer <provider key>`.
//! - **Body:** forwarded as bytes with `model` set to the upstream slug. Mistral rejects
//!   `stream_options`, so it is never sent — not even when the client set it — and neither is
//!   Odock's top-level `include_usage`.
//! - **Usage:** Mistral reports usage unasked, on the last chunk of a stream (next to its
//!   `finish_reason`) and in every unary body; streams are relayed unchanged and that usage is
//!   billed. OCR answers carry `usage_info` instead: `pages_processed` becomes `units` with
//!   `unit_kind: "pages"`, and `usage_info` is the raw provider usage ([`ocr_usage`]).
//! - **Errors:** non-2xx answers are relayed; on `/v1/llm/chat` they become
//!   [`ProviderError::Upstream`].
//!
//! The forwarding itself (body rewrite with `stream_options` switched off, request, relay) is the
//! shared OpenAI-compatible one of [`crate::openai_compat`].

use async_trait::async_trait;
use bytes::Bytes;
use odock_core::{
    Endpoint, MistralRoute, Provider, ProviderError, ProviderRequest, ProviderResponse,
    ReportedUsage, StreamChunk, TokenUsage,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::openai_compat::forward::{forward, json_body, Outgoing, ReadAnswer};
use crate::openai_compat::rewrite::StreamOptions;
use crate::openai_compat::stream::ChatAnswer;
use crate::sse::Event;
use crate::UpstreamClient;

/// The unit OCR is billed in.
pub const OCR_UNIT: &str = "pages";

/// Calls Mistral. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct MistralProvider {
    client: UpstreamClient,
}

impl MistralProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }
}

/// The path of `route` below the (versioned) base URL.
const fn upstream_path(route: MistralRoute) -> &'static str {
    match route {
        MistralRoute::ChatCompletions => "chat/completions",
        MistralRoute::FimCompletions => "fim/completions",
        MistralRoute::Embeddings => "embeddings",
        MistralRoute::Moderations => "moderations",
        MistralRoute::Ocr => "ocr",
    }
}

#[async_trait]
impl Provider for MistralProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let route = match request.endpoint {
            Endpoint::Mistral(route) => route,
            Endpoint::UnifiedChat => MistralRoute::ChatCompletions,
            _ => return Err(ProviderError::UnsupportedEndpoint),
        };
        let model = &request.model;
        let url = format!(
            "{}/{}",
            model.provider.base_url.trim_end_matches('/'),
            upstream_path(route)
        );
        // Mistral rejects `stream_options`, so it is never sent.
        let body = json_body(&request, StreamOptions::Never)?;
        let outgoing = Outgoing {
            request_id_header: "mistral-correlation-id",
            ..Outgoing::json(url, body, request.stream)
        };
        match route {
            MistralRoute::Ocr => forward(&self.client, &request, outgoing, OcrAnswer).await,
            // Nothing was asked for, so nothing is withheld: Mistral's last chunk reaches the
            // client as sent, usage and all.
            _ => {
                let answer = ChatAnswer {
                    keep_usage_chunk: true,
                };
                forward(&self.client, &request, outgoing, answer).await
            }
        }
    }
}

/// OCR answers: `{pages, model, usage_info: {pages_processed, doc_size_bytes}, …}`.
#[derive(Debug, Clone, Copy)]
struct OcrAnswer;

impl ReadAnswer for OcrAnswer {
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>) {
        (None, ocr_usage(body))
    }

    fn event(&mut self, event: &Event) -> StreamChunk {
        // OCR does not stream; relay anything unexpected as it came.
        ChatAnswer {
            keep_usage_chunk: true,
        }
        .event(event)
    }
}

#[derive(Deserialize)]
struct OcrProbe<'a> {
    #[serde(default, borrow)]
    usage_info: Option<&'a RawValue>,
}

/// The pages an OCR answer processed, as `units` of `pages`, with `usage_info` as the raw usage.
/// `None` when the body carries no usable `usage_info`.
pub fn ocr_usage(body: &[u8]) -> Option<ReportedUsage> {
    let probe: OcrProbe<'_> = serde_json::from_slice(body).ok()?;
    let raw: Value = serde_json::from_str(probe.usage_info?.get()).ok()?;
    let pages = raw.get("pages_processed")?.as_u64()?;
    Some(ReportedUsage {
        tokens: TokenUsage {
            units: pages,
            unit_kind: Some(OCR_UNIT.to_owned()),
            ..TokenUsage::default()
        },
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ocr_pages_become_units() {
        let body = br#"{"pages":[{"index":0,"markdown":"Title"}],"model":"mistral-ocr-2505",
            "usage_info":{"pages_processed":3,"doc_size_bytes":12345},"document_annotation":null}"#;
        let usage = ocr_usage(body).unwrap();
        assert_eq!(usage.tokens.units, 3);
        assert_eq!(usage.tokens.unit_kind.as_deref(), Some("pages"));
        assert_eq!(usage.tokens.total(), 0);
        assert_eq!(
            usage.raw,
            json!({"pages_processed": 3, "doc_size_bytes": 12345})
        );

        assert!(ocr_usage(br#"{"pages":[]}"#).is_none());
        assert!(ocr_usage(br#"{"usage_info":{"pages_processed":null}}"#).is_none());
        assert!(ocr_usage(b"not json").is_none());
    }
}
