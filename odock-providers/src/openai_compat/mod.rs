//! The provider for OpenAI-compatible upstreams (OpenAI, Azure OpenAI, Custom): every OpenAI route,
//! unary and streamed, plus `/v1/llm/chat` for models of these families — and the OpenAI-compatible
//! forwarding that [`crate::vllm`], [`crate::mistral`] and [`crate::huggingface`] reuse as
//! `pub(crate)` building blocks:
//!
//! | module      | piece                                                                   |
//! |-------------|-------------------------------------------------------------------------|
//! | `rewrite`   | byte-preserving body rewrite: slug, `stream_options` switch, drops      |
//! | `unified`   | `/v1/llm/chat` body (`content_blocks`), upstream error → `Upstream`     |
//! | `forward`   | send, relay errors / streams / unary bodies; multipart `model` swap     |
//! | `usage`     | unary id and usage in the chat, Responses and total-only shapes         |
//! | `stream`    | chat chunk relay, usage-only chunk withheld unless the client asked     |
//! | `responses` | Responses event relay, usage from `response.completed`                  |
//! | `images`    | image answers and streams, one unit per image                           |
//!
//! The client already speaks the upstream's protocol, so requests are forwarded as bytes with only
//! the model name and `stream_options` rewritten (`rewrite`; multipart bodies get only their
//! `model` field swapped), and answers are relayed as the upstream sent them: a unary body
//! untouched, a stream event by event, with usage extracted on the way (`usage`).
//!
//! | gateway endpoint         | upstream path        | body      | usage from (module)         |
//! |--------------------------|----------------------|-----------|-----------------------------|
//! | `/v1/chat/completions`   | `chat/completions`   | JSON      | `usage` (`stream`)          |
//! | `/v1/llm/chat`           | `chat/completions`   | JSON      | as chat (`unified`)         |
//! | `/v1/responses`          | `responses`          | JSON      | `usage` (`responses`)       |
//! | `/v1/embeddings`         | `embeddings`         | JSON      | `usage.prompt_tokens`       |
//! | `/v1/images/generations` | `images/generations` | JSON      | `data` + `usage` (`images`) |
//! | `/v1/images/edits`       | `images/edits`       | multipart | `data` + `usage`            |
//! | `/v1/images/variations`  | `images/variations`  | multipart | `data`                      |
//!
//! Streams: chat asks for usage (`stream_options.include_usage`) and hides the extra chunk from a
//! client that did not ask; the Responses API reports it in `response.completed`; image streams in
//! each `….completed` event. Images count one unit per image (`unit_kind` `images`).
//!
//! Any other endpoint is [`ProviderError::UnsupportedEndpoint`].
//!
//! - **URL:** `{base_url}/{path}` (the base URL includes the version, e.g. `/v1`); Azure OpenAI
//!   addresses deployments under the resource root instead (`azure`).
//! - **Auth:** `Authorization: Bearer <provider key>` (Azure: `api-key`). No client header is ever
//!   forwarded, so the client's virtual key never reaches the upstream; multipart bodies keep the
//!   client's `Content-Type` (it carries the boundary). The client's query string is not forwarded
//!   either: no OpenAI route takes one.
//! - **Errors:** a non-2xx upstream answer is relayed with its status, content type and (up to
//!   1 MiB of) body — except on `/v1/llm/chat`, a translated route, where it becomes
//!   [`ProviderError::Upstream`] with the upstream's message. Failing to connect is
//!   [`ProviderError::Unreachable`]; no response headers within the provider's timeout (default
//!   300 s) is [`ProviderError::Timeout`]. A unary body must also have arrived by then; while
//!   streaming, the same timeout instead bounds the silence between two events.

mod azure;
pub(crate) mod forward;
mod images;
pub(crate) mod responses;
pub(crate) mod rewrite;
mod route;
pub(crate) mod stream;
pub(crate) mod unified;
pub(crate) mod usage;

use async_trait::async_trait;
use odock_core::{
    BodyFormat, Provider, ProviderError, ProviderRequest, ProviderResponse, ProviderType,
};

use self::forward::{forward, json_body, multipart_body, Auth, Outgoing};
use self::images::ImageStream;
use self::responses::ResponsesAnswer;
use self::rewrite::StreamOptions;
use self::route::Operation;
use self::stream::ChatAnswer;
use crate::UpstreamClient;

pub use crate::http::DEFAULT_TIMEOUT;

/// Calls OpenAI-compatible upstreams. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct OpenAiCompatProvider {
    client: UpstreamClient,
}

impl OpenAiCompatProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Provider for OpenAiCompatProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let operation =
            Operation::for_endpoint(request.endpoint).ok_or(ProviderError::UnsupportedEndpoint)?;
        let model = &request.model;
        let azure = model.provider.provider_type == ProviderType::AzureOpenAi;
        let url = if azure {
            azure::url(model, operation)?.into()
        } else {
            format!(
                "{}/{}",
                model.provider.base_url.trim_end_matches('/'),
                operation.path()
            )
        };
        let mut outgoing = match operation.body_format() {
            BodyFormat::Json => {
                let stream_options = StreamOptions::include_usage_if(
                    request.stream && operation.asks_for_stream_usage(),
                );
                let body = json_body(&request, stream_options)?;
                Outgoing::json(url, body, request.stream)
            }
            BodyFormat::Multipart => {
                let (body, content_type) = multipart_body(&request)?;
                Outgoing {
                    content_type,
                    ..Outgoing::json(url, body, request.stream)
                }
            }
        };
        if azure {
            outgoing.auth = Auth::Header(azure::API_KEY);
        }

        match operation {
            Operation::Responses => {
                forward(&self.client, &request, outgoing, ResponsesAnswer).await
            }
            _ if operation.is_image() => {
                forward(&self.client, &request, outgoing, ImageStream::default()).await
            }
            _ => {
                // The usage-only chunk the gateway asked for is the client's only if it asked too.
                let answer = ChatAnswer {
                    keep_usage_chunk: request.client_wants_usage,
                };
                forward(&self.client, &request, outgoing, answer).await
            }
        }
    }
}
