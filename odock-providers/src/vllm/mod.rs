//! The provider for vLLM servers: every `/v1/vllm/*` route is a raw pass-through after
//! governance.
//!
//! - **URLs:** the base URL is the server root (`http://localhost:8000`; a trailing `/v1` is
//!   tolerated). The OpenAI-compatible routes live under `/v1` (`chat/completions`,
//!   `completions`, `responses`, `embeddings`, `audio/transcriptions`, `audio/translations`);
//!   vLLM's own `tokenize`, `detokenize`, `pooling`, `classify`, `score` and `rerank` at the root.
//!   `/v1/llm/chat` goes to `/v1/chat/completions`.
//! - **Auth:** `Authorization: Bearer <provider key>` (the server's `--api-key`).
//! - **Body:** forwarded as bytes with `model` set to the upstream slug, or — for the multipart
//!   audio routes — the `model` form field swapped in place, other parts untouched and the
//!   client's `Content-Type` (with its boundary) forwarded. Streaming chat and completions ask for
//!   `stream_options.include_usage`, and the usage-only chunk is withheld from a client that did
//!   not ask for it (as for OpenAI).
//! - **Usage:** whatever OpenAI-style `usage` the answer carries, in the chat, Responses or
//!   total-only convention; tokenize and detokenize report none.
//! - **Errors:** non-2xx answers are relayed; on `/v1/llm/chat` they become
//!   [`ProviderError::Upstream`].
//!
//! Everything but the URL table is the shared OpenAI-compatible forwarding of
//! [`crate::openai_compat`] (`forward`, `rewrite`, `unified`, `stream`, `responses`, `usage`).

use async_trait::async_trait;
use odock_core::{
    BodyFormat, Endpoint, Provider, ProviderError, ProviderRequest, ProviderResponse, VllmRoute,
};

use crate::openai_compat::forward::{forward, json_body, multipart_body, server_root, Outgoing};
use crate::openai_compat::responses::ResponsesAnswer;
use crate::openai_compat::rewrite::StreamOptions;
use crate::openai_compat::stream::ChatAnswer;
use crate::UpstreamClient;

/// Calls vLLM servers. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct VllmProvider {
    client: UpstreamClient,
}

impl VllmProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }
}

/// The path of `route` below the server root.
const fn upstream_path(route: VllmRoute) -> &'static str {
    match route {
        VllmRoute::ChatCompletions => "v1/chat/completions",
        VllmRoute::Completions => "v1/completions",
        VllmRoute::Responses => "v1/responses",
        VllmRoute::Embeddings => "v1/embeddings",
        VllmRoute::AudioTranscriptions => "v1/audio/transcriptions",
        VllmRoute::AudioTranslations => "v1/audio/translations",
        VllmRoute::Tokenize => "tokenize",
        VllmRoute::Detokenize => "detokenize",
        VllmRoute::Pooling => "pooling",
        VllmRoute::Classify => "classify",
        VllmRoute::Score => "score",
        VllmRoute::Rerank => "rerank",
    }
}

#[async_trait]
impl Provider for VllmProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let route = match request.endpoint {
            Endpoint::Vllm(route) => route,
            Endpoint::UnifiedChat => VllmRoute::ChatCompletions,
            _ => return Err(ProviderError::UnsupportedEndpoint),
        };
        let model = &request.model;
        let url = format!(
            "{}/{}",
            server_root(&model.provider.base_url),
            upstream_path(route)
        );
        let stream = request.stream;
        // Only chat and completions streams carry a usage chunk on request.
        let ask_usage = stream
            && request.endpoint.body_format() == BodyFormat::Json
            && matches!(route, VllmRoute::ChatCompletions | VllmRoute::Completions);
        // A usage-only chunk the gateway did not ask for was the client's idea: relay it.
        let keep_usage_chunk = request.client_wants_usage || !ask_usage;

        let outgoing = match request.endpoint.body_format() {
            BodyFormat::Multipart => {
                let (body, content_type) = multipart_body(&request)?;
                Outgoing {
                    content_type,
                    ..Outgoing::json(url, body, stream)
                }
            }
            BodyFormat::Json => {
                let stream_options = StreamOptions::include_usage_if(ask_usage);
                let body = json_body(&request, stream_options)?;
                Outgoing::json(url, body, stream)
            }
        };

        match route {
            VllmRoute::Responses => {
                forward(&self.client, &request, outgoing, ResponsesAnswer).await
            }
            // Legacy completions are chat-shaped chunks whose text is `choices[].text`.
            _ => {
                let answer = ChatAnswer { keep_usage_chunk };
                forward(&self.client, &request, outgoing, answer).await
            }
        }
    }
}
