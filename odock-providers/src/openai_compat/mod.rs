//! The provider for OpenAI-compatible upstreams (OpenAI, Azure OpenAI, Custom): every OpenAI route,
//! unary and streamed, plus `/v1/llm/chat` for models of these families.
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
mod images;
mod responses;
pub(crate) mod rewrite;
mod route;
pub(crate) mod stream;
mod unified;
pub(crate) mod usage;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use odock_core::layers::resolve::multipart;
use odock_core::{
    BodyFormat, Endpoint, Provider, ProviderBody, ProviderError, ProviderRequest, ProviderResponse,
    ProviderType, ReportedUsage, Secret, StreamChunk,
};
use tokio::time::Instant;

use self::images::ImageStream;
use self::route::Operation;
use crate::http::{
    header_string, is_event_stream, read_bounded, relayed_headers, until, ERROR_BODY_LIMIT,
};
use crate::sse;

/// How long an upstream may take when its provider configures no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The upstream's own id for a request, sent back on every OpenAI response.
const UPSTREAM_REQUEST_ID: &str = "x-request-id";

/// The multipart field naming the model.
const MODEL_FIELD: &str = "model";

/// Calls OpenAI-compatible upstreams. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct OpenAiCompatProvider {
    client: reqwest::Client,
}

impl OpenAiCompatProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Provider for OpenAiCompatProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let operation =
            Operation::for_endpoint(request.endpoint).ok_or(ProviderError::UnsupportedEndpoint)?;
        let translated = request.endpoint == Endpoint::UnifiedChat;
        let model = &request.model;
        let timeout = model.provider.timeout.unwrap_or(DEFAULT_TIMEOUT);
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
        let (body, content_type) = upstream_body(&request, operation)?;

        let accept = if request.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut upstream = self
            .client
            .post(url)
            .header(CONTENT_TYPE, content_type)
            .header(ACCEPT, HeaderValue::from_static(accept))
            .body(body);
        if let Some(key) = &model.provider_key {
            upstream = if azure {
                upstream.header(azure::API_KEY, azure::api_key(&key.secret)?)
            } else {
                upstream.header(AUTHORIZATION, bearer(&key.secret)?)
            };
        }

        let deadline = Instant::now() + timeout;
        let response = until(deadline, timeout, upstream.send()).await?;
        let status = response.status();
        let headers = relayed_headers(response.headers());
        let upstream_request_id = header_string(response.headers(), UPSTREAM_REQUEST_ID);
        tracing::debug!(
            provider = %model.provider.name,
            request_id = %request.request_id,
            status = status.as_u16(),
            upstream_request_id = upstream_request_id.as_deref().unwrap_or(""),
            "upstream answered"
        );

        if !status.is_success() {
            let bytes = until(deadline, timeout, read_bounded(response, ERROR_BODY_LIMIT)).await?;
            if translated {
                return Err(unified::upstream_error(status, &bytes));
            }
            return Ok(ProviderResponse {
                status,
                headers,
                body: ProviderBody::Full { bytes, usage: None },
                provider_request_id: upstream_request_id,
            });
        }

        if request.stream && is_event_stream(response.headers()) {
            let events = sse::events(response.bytes_stream(), timeout);
            return Ok(ProviderResponse {
                status,
                headers,
                body: ProviderBody::Stream(relay(events, operation, request.client_wants_usage)),
                provider_request_id: upstream_request_id,
            });
        }

        // A unary answer (or an upstream that ignored `stream: true`): relayed as sent.
        let bytes = until(deadline, timeout, response.bytes()).await?;
        let (response_id, usage) = unary_facts(operation, &bytes);
        Ok(ProviderResponse {
            status,
            headers,
            body: ProviderBody::Full { bytes, usage },
            provider_request_id: response_id.or(upstream_request_id),
        })
    }
}

/// The body to send upstream and its content type.
fn upstream_body(
    request: &ProviderRequest,
    operation: Operation,
) -> Result<(Bytes, HeaderValue), ProviderError> {
    let slug = &request.model.slug;
    match operation.body_format() {
        BodyFormat::Json => {
            let stream_usage = request.stream && operation.asks_for_stream_usage();
            let body = if request.endpoint == Endpoint::UnifiedChat {
                unified::request_body(&request.body, slug, stream_usage)
            } else {
                rewrite::rewrite_body(&request.body, slug, stream_usage)
            }
            .map_err(|e| {
                // The gateway decoded this body already, so this means a bug upstream of us.
                ProviderError::InvalidResponse(format!("request body is not a JSON object: {e}"))
            })?;
            Ok((body, HeaderValue::from_static("application/json")))
        }
        BodyFormat::Multipart => {
            // The gateway decoded the model from this very body; failing here means a bug.
            let not_multipart = || {
                ProviderError::InvalidResponse(
                    "request body is not multipart/form-data with a model field".to_owned(),
                )
            };
            let content_type = request.content_type.clone().ok_or_else(not_multipart)?;
            let boundary = content_type
                .to_str()
                .ok()
                .and_then(multipart::boundary)
                .ok_or_else(not_multipart)?;
            let body = multipart::replace_text_field(&request.body, &boundary, MODEL_FIELD, slug)
                .ok_or_else(not_multipart)?;
            Ok((body, content_type))
        }
    }
}

/// The client's stream: each upstream event relayed, with what it teaches about usage.
fn relay(
    events: BoxStream<'static, Result<sse::Event, ProviderError>>,
    operation: Operation,
    client_wants_usage: bool,
) -> BoxStream<'static, Result<StreamChunk, ProviderError>> {
    match operation {
        Operation::Responses => events
            .map(|event| event.map(|event| responses::chunk_from_event(&event)))
            .boxed(),
        _ if operation.is_image() => {
            let mut images = ImageStream::default();
            events
                .map(move |event| event.map(|event| images.chunk_from_event(&event)))
                .boxed()
        }
        _ => events
            .map(move |event| {
                event.map(|event| stream::chunk_from_event(&event, client_wants_usage))
            })
            .boxed(),
    }
}

/// The upstream's response id and the usage of a unary answer.
fn unary_facts(operation: Operation, body: &[u8]) -> (Option<String>, Option<ReportedUsage>) {
    match operation {
        Operation::ChatCompletions | Operation::Embeddings => usage::completion_facts(body),
        Operation::Responses => usage::response_facts(body),
        Operation::ImageGenerations | Operation::ImageEdits | Operation::ImageVariations => {
            (None, usage::image_facts(body))
        }
    }
}

/// `Bearer <secret>`, marked sensitive so it is never logged by the HTTP stack.
fn bearer(secret: &Secret) -> Result<HeaderValue, ProviderError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", secret.expose())).map_err(|_| {
        // Never echo the value: it is the credential.
        ProviderError::Unreachable(
            "the provider API key is not a valid HTTP header value".to_owned(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}
