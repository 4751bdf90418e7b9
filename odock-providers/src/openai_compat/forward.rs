//! Forwarding a governed request to an upstream that already speaks the client's protocol, and
//! relaying its answer: the one request/answer loop of every OpenAI-compatible family (OpenAI,
//! Azure OpenAI, Custom, vLLM, Mistral, Hugging Face).
//!
//! What a family decides is *what* to send ([`Outgoing`]: URL, body, content type, how the key is
//! presented) and *how to read* a successful answer ([`ReadAnswer`]: id and usage from a unary
//! body, one client chunk per stream event — `stream::ChatAnswer`, `responses::ResponsesAnswer`,
//! `images::ImageStream`, or the family's own). Everything else is common and lives here:
//!
//! - **Auth:** the provider key as `Authorization: Bearer <key>` or in a family's own header
//!   (Azure's `api-key`); no client header is ever forwarded, so the client's virtual key never
//!   reaches the upstream.
//! - **Errors:** a non-2xx answer is relayed with its status, content type and (up to 1 MiB of)
//!   body, except on `/v1/llm/chat`, where it becomes [`ProviderError::Upstream`]
//!   (`unified::upstream_error`) so the gateway answers in its own error shape. No response
//!   headers within the provider's timeout (default 300 s) is [`ProviderError::Timeout`]; a unary
//!   body must also have arrived by then; while streaming, the same timeout bounds the silence
//!   between two events.
//! - **Headers back:** only the content type (see [`crate::http::relayed_headers`]), so binary media
//!   reaches the client with its own type.
//! - **Multipart bodies** (image edits and variations, audio) get only their `model` field
//!   swapped ([`multipart_body`]) and keep the client's `Content-Type`, which carries the boundary.

use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue};
use odock_core::layers::resolve::multipart;
use odock_core::{
    Endpoint, ProviderBody, ProviderError, ProviderRequest, ProviderResponse, ReportedUsage,
    StreamChunk,
};

use super::rewrite::{Rewrite, StreamOptions};
use super::unified::{self, upstream_error};
use crate::http::{accept, credential, retry_after, send, Answered};
use crate::sse::{self, Event};
use crate::UpstreamClient;

/// `Content-Type` of every JSON request body.
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The response header carrying an OpenAI-compatible upstream's own request id.
const X_REQUEST_ID: &str = "x-request-id";

/// The multipart field naming the model.
const MODEL_FIELD: &str = "model";

/// How the provider key is presented to the upstream.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `<name>: <key>` (Azure's `api-key`).
    Header(HeaderName),
}

/// One upstream request, as the family built it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub url: String,
    pub body: Bytes,
    pub content_type: HeaderValue,
    /// The `Accept` header: JSON, an event stream, or anything (binary media).
    pub accept: &'static str,
    pub auth: Auth,
    /// The response header carrying the upstream's own request id.
    pub request_id_header: &'static str,
}

impl Outgoing {
    /// A JSON request with a bearer key; `Accept` follows `stream`.
    pub fn json(url: String, body: Bytes, stream: bool) -> Self {
        Self {
            url,
            body,
            content_type: APPLICATION_JSON,
            accept: accept(stream),
            auth: Auth::Bearer,
            request_id_header: X_REQUEST_ID,
        }
    }
}

/// How a family reads a successful (2xx) answer.
pub(crate) trait ReadAnswer: Send + 'static {
    /// The response id and usage of a complete body (relayed unchanged either way).
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>);

    /// What the client receives for one upstream event, and what the gateway learns from it.
    fn event(&mut self, event: &Event) -> StreamChunk;
}

/// Sends `outgoing` for `request` and relays the answer, read by `answer`.
pub(crate) async fn forward<A: ReadAnswer>(
    client: &UpstreamClient,
    request: &ProviderRequest,
    outgoing: Outgoing,
    mut answer: A,
) -> Result<ProviderResponse, ProviderError> {
    let model = &request.model;
    let mut upstream = client
        .post_for(&model.provider, &outgoing.url)?
        .header(CONTENT_TYPE, outgoing.content_type)
        .header(ACCEPT, HeaderValue::from_static(outgoing.accept))
        .body(outgoing.body);
    if let Some(key) = &model.provider_key {
        upstream = match outgoing.auth {
            Auth::Bearer => upstream.header(
                AUTHORIZATION,
                credential(format!("Bearer {}", key.secret.expose()))?,
            ),
            Auth::Header(name) => upstream.header(name, credential(key.secret.expose())?),
        };
    }

    let answered = send(client, request, upstream, outgoing.request_id_header).await?;
    if !answered.status.is_success() {
        if request.endpoint == Endpoint::UnifiedChat {
            let wait = retry_after(answered.response.headers());
            let bytes = answered.deadline.error_body(answered.response).await?;
            return Err(upstream_error(answered.status, &bytes, wait));
        }
        return answered.relay_error().await;
    }

    let is_event_stream = answered.is_event_stream();
    let Answered {
        response,
        deadline,
        status,
        headers,
        request_id,
    } = answered;
    if request.stream && is_event_stream {
        let chunks = sse::events(response.bytes_stream(), deadline.timeout)
            .map(move |event| event.map(|event| answer.event(&event)))
            .boxed();
        return Ok(ProviderResponse {
            status,
            headers,
            body: ProviderBody::Stream(chunks),
            provider_request_id: request_id,
        });
    }

    // A unary answer (or an upstream that ignored `stream: true`): relayed as sent.
    let bytes = deadline.body(response).await?;
    let (response_id, usage) = answer.unary(&bytes);
    Ok(ProviderResponse {
        status,
        headers,
        body: ProviderBody::Full { bytes, usage },
        provider_request_id: response_id.or(request_id),
    })
}

/// The client's multipart body with its `model` field set to the slug, and the client's
/// `Content-Type` (it carries the boundary).
pub(crate) fn multipart_body(
    request: &ProviderRequest,
) -> Result<(Bytes, HeaderValue), ProviderError> {
    // The gateway decoded the model from this very body; failing here means a bug.
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
    let body =
        multipart::replace_text_field(&request.body, &boundary, MODEL_FIELD, &request.model.slug)
            .ok_or_else(|| invalid("has no model field"))?;
    Ok((body, content_type))
}

/// The JSON body to send for `request`, `stream_options` handled as the family wants it: on
/// `/v1/llm/chat` the unified request folded into OpenAI chat (`unified::request_body`), else the
/// client's body with its slug swapped (`rewrite`).
pub(crate) fn json_body(
    request: &ProviderRequest,
    stream_options: StreamOptions,
) -> Result<Bytes, ProviderError> {
    let slug = &request.model.slug;
    if request.endpoint == Endpoint::UnifiedChat {
        unified::request_body(&request.body, slug, stream_options)
    } else {
        Rewrite {
            slug,
            stream_options,
            ..Rewrite::default()
        }
        .apply(&request.body)
    }
    .map_err(not_a_json_object)
}

/// A request body the gateway could not rewrite. It decoded the body before it got here, so
/// this means a bug upstream of the provider.
pub(crate) fn not_a_json_object(error: serde_json::Error) -> ProviderError {
    ProviderError::InvalidResponse(format!("request body is not a JSON object: {error}"))
}

/// `{base_url}` without a trailing slash or a trailing `/v1`: vLLM and Hugging Face base URLs are
/// server roots, but `…/v1` is what OpenAI SDKs are configured with, so it is tolerated too.
pub(crate) fn server_root(base_url: &str) -> &str {
    let base = base_url.trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_roots_tolerate_slashes_and_a_version_segment() {
        assert_eq!(server_root("http://h:8000"), "http://h:8000");
        assert_eq!(server_root("http://h:8000/"), "http://h:8000");
        assert_eq!(server_root("http://h:8000/v1"), "http://h:8000");
        assert_eq!(server_root("http://h:8000/v1/"), "http://h:8000");
        assert_eq!(server_root("http://h/proxy/v10"), "http://h/proxy/v10");
    }
}
