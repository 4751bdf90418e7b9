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
//! - **Usage:** whatever OpenAI-style `usage` the answer carries (see [`answer`]); tokenize and
//!   detokenize report none.
//! - **Errors:** non-2xx answers are relayed (see [`passthrough`]).

pub(crate) mod answer;
pub(crate) mod members;
pub(crate) mod passthrough;

use async_trait::async_trait;
use bytes::Bytes;
use odock_core::layers::resolve::multipart;
use odock_core::{
    BodyFormat, Endpoint, Provider, ProviderError, ProviderRequest, ProviderResponse, VllmRoute,
};

use self::answer::{CompletionsAnswer, OpenAiAnswer, ResponsesAnswer};
use self::passthrough::{forward, server_root, Outgoing};
use crate::openai_compat::rewrite::rewrite_body;

/// Calls vLLM servers. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct VllmProvider {
    client: reqwest::Client,
}

impl VllmProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: reqwest::Client) -> Self {
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
            BodyFormat::Multipart => multipart_outgoing(&request, url)?,
            BodyFormat::Json => {
                let body = if request.endpoint == Endpoint::UnifiedChat {
                    members::unified_chat_body(&request.body, &model.slug)
                        .and_then(|body| rewrite_body(&body, &model.slug, ask_usage))
                } else {
                    rewrite_body(&request.body, &model.slug, ask_usage)
                }
                .map_err(|e| {
                    // The gateway decodes the body before it gets here, so this is a bug upstream of us.
                    ProviderError::InvalidResponse(format!(
                        "request body is not a JSON object: {e}"
                    ))
                })?;
                Outgoing::json(url, body, stream)
            }
        };

        match route {
            VllmRoute::Completions => {
                let answer = CompletionsAnswer { keep_usage_chunk };
                forward(&self.client, &request, outgoing, answer).await
            }
            VllmRoute::Responses => {
                forward(&self.client, &request, outgoing, ResponsesAnswer).await
            }
            _ => {
                let answer = OpenAiAnswer { keep_usage_chunk };
                forward(&self.client, &request, outgoing, answer).await
            }
        }
    }
}

/// A multipart audio request with its `model` field set to the slug.
fn multipart_outgoing(request: &ProviderRequest, url: String) -> Result<Outgoing, ProviderError> {
    let invalid = |what: &str| ProviderError::InvalidResponse(format!("multipart request {what}"));
    let content_type = request
        .content_type
        .clone()
        .ok_or_else(|| invalid("has no content type"))?;
    let boundary = content_type
        .to_str()
        .ok()
        .and_then(multipart::boundary)
        .ok_or_else(|| invalid("has no boundary"))?;
    let body: Bytes =
        multipart::replace_text_field(&request.body, &boundary, "model", &request.model.slug)
            .ok_or_else(|| invalid("has no model field"))?;
    Ok(Outgoing {
        content_type,
        ..Outgoing::json(url, body, request.stream)
    })
}
