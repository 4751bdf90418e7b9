//! The provider for OpenAI-compatible upstreams (OpenAI, Custom): chat completions, unary and
//! streamed.
//!
//! The client already speaks the upstream's protocol, so requests are forwarded as bytes with only
//! the model name and `stream_options` rewritten (`rewrite`), and answers are relayed as the
//! upstream sent them: a unary body untouched, a stream event by event (`stream`), with usage
//! extracted on the way (`usage`).
//!
//! - **URL:** `{base_url}/chat/completions` (the base URL includes the version, e.g. `/v1`).
//! - **Auth:** `Authorization: Bearer <provider key>`. No client header is ever forwarded, so the
//!   client's virtual key never reaches the upstream.
//! - **Errors:** a non-2xx upstream answer is relayed with its status, content type and (up to
//!   1 MiB of) body. Failing to connect is [`ProviderError::Unreachable`]; no response headers
//!   within the provider's timeout (default 300 s) is [`ProviderError::Timeout`]. A unary body
//!   must also have arrived by then; while streaming, the same timeout instead bounds the silence
//!   between two events.

pub(crate) mod rewrite;
pub(crate) mod stream;
pub(crate) mod usage;

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use odock_core::{
    Endpoint, Provider, ProviderBody, ProviderError, ProviderRequest, ProviderResponse, Secret,
};
use tokio::time::Instant;

use crate::http::{
    header_string, is_event_stream, read_bounded, relayed_headers, until, ERROR_BODY_LIMIT,
};
use crate::sse;

/// How long an upstream may take when its provider configures no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The upstream's own id for a request, sent back on every OpenAI response.
const UPSTREAM_REQUEST_ID: &str = "x-request-id";

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
        let path = match request.endpoint {
            Endpoint::ChatCompletions => "chat/completions",
            _ => return Err(ProviderError::UnsupportedEndpoint),
        };
        let model = &request.model;
        let timeout = model.provider.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let url = format!("{}/{path}", model.provider.base_url.trim_end_matches('/'));
        let body =
            rewrite::rewrite_body(&request.body, &model.slug, request.stream).map_err(|e| {
                // The gateway decodes the body before it gets here, so this means a bug upstream of us.
                ProviderError::InvalidResponse(format!("request body is not a JSON object: {e}"))
            })?;

        let accept = if request.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut upstream = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static(accept))
            .body(body);
        if let Some(key) = &model.provider_key {
            upstream = upstream.header(AUTHORIZATION, bearer(&key.secret)?);
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
            return Ok(ProviderResponse {
                status,
                headers,
                body: ProviderBody::Full { bytes, usage: None },
                provider_request_id: upstream_request_id,
            });
        }

        if request.stream && is_event_stream(response.headers()) {
            let client_wants_usage = request.client_wants_usage;
            let chunks = sse::events(response.bytes_stream(), timeout)
                .map(move |event| {
                    event.map(|event| stream::chunk_from_event(&event, client_wants_usage))
                })
                .boxed();
            return Ok(ProviderResponse {
                status,
                headers,
                body: ProviderBody::Stream(chunks),
                provider_request_id: upstream_request_id,
            });
        }

        // A unary answer (or an upstream that ignored `stream: true`): relayed as sent.
        let bytes = until(deadline, timeout, response.bytes()).await?;
        let (response_id, usage) = usage::completion_facts(&bytes);
        Ok(ProviderResponse {
            status,
            headers,
            body: ProviderBody::Full { bytes, usage },
            provider_request_id: response_id.or(upstream_request_id),
        })
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
