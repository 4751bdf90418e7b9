//! Forwarding a governed request to an upstream that already speaks the client's protocol, and
//! relaying its answer. vLLM is the purest case (every `/v1/vllm/*` route is a raw pass-through);
//! the Mistral and Hugging Face providers forward the same way and use this module too.
//!
//! What a family decides is *what* to send (URL, body, content type) and *how to read* a
//! successful answer ([`ReadAnswer`]: usage from a unary body, one client chunk per stream event).
//! Everything else is common and lives here:
//!
//! - **Auth:** `Authorization: Bearer <provider key>`; no client header is ever forwarded, so the
//!   client's virtual key never reaches the upstream.
//! - **Errors:** a non-2xx answer is relayed with its status, content type and (up to 1 MiB of)
//!   body, except on `/v1/llm/chat`, where it becomes [`ProviderError::Upstream`] so the gateway
//!   answers in its own error shape. No response headers within the provider's timeout (default
//!   300 s) is [`ProviderError::Timeout`]; while streaming, the same timeout bounds the silence
//!   between two events.
//! - **Headers back:** only the content type (see [`crate::http::relayed_headers`]), so binary media
//!   reaches the client with its own type.

use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::HeaderValue;
use odock_core::{
    Endpoint, ProviderBody, ProviderError, ProviderRequest, ProviderResponse, ReportedUsage,
    Secret, StreamChunk,
};
use serde_json::Value;
use tokio::time::Instant;

use crate::http::{
    header_string, is_event_stream, read_bounded, relayed_headers, until, ERROR_BODY_LIMIT,
};
use crate::openai_compat::DEFAULT_TIMEOUT;
use crate::sse::{self, Event};

/// `Content-Type` of every JSON request body.
pub(crate) const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The longest upstream error text carried into a [`ProviderError::Upstream`] message.
const ERROR_MESSAGE_LIMIT: usize = 512;

/// One upstream request, as the family built it.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub url: String,
    pub body: Bytes,
    pub content_type: HeaderValue,
    /// The `Accept` header: JSON, an event stream, or anything (binary media).
    pub accept: &'static str,
    /// The response header carrying the upstream's own request id.
    pub request_id_header: &'static str,
}

impl Outgoing {
    /// A JSON request; `Accept` follows `stream`.
    pub fn json(url: String, body: Bytes, stream: bool) -> Self {
        Self {
            url,
            body,
            content_type: APPLICATION_JSON,
            accept: if stream {
                "text/event-stream"
            } else {
                "application/json"
            },
            request_id_header: "x-request-id",
        }
    }
}

/// How a family reads a successful (2xx) answer.
pub(crate) trait ReadAnswer: Send + 'static {
    /// The response id and usage of a complete body (relayed unchanged either way).
    fn unary(&self, body: &Bytes) -> (Option<String>, Option<ReportedUsage>);

    /// What the client receives for one upstream event, and what the gateway learns from it.
    fn event(&self, event: &Event) -> StreamChunk;
}

/// Sends `outgoing` for `request` and relays the answer, read by `answer`.
pub(crate) async fn forward<A: ReadAnswer>(
    client: &reqwest::Client,
    request: &ProviderRequest,
    outgoing: Outgoing,
    answer: A,
) -> Result<ProviderResponse, ProviderError> {
    let model = &request.model;
    let timeout = model.provider.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut upstream = client
        .post(outgoing.url)
        .header(CONTENT_TYPE, outgoing.content_type)
        .header(ACCEPT, HeaderValue::from_static(outgoing.accept))
        .body(outgoing.body);
    if let Some(key) = &model.provider_key {
        upstream = upstream.header(AUTHORIZATION, bearer(&key.secret)?);
    }

    let deadline = Instant::now() + timeout;
    let response = until(deadline, timeout, upstream.send()).await?;
    let status = response.status();
    let headers = relayed_headers(response.headers());
    let upstream_request_id = header_string(response.headers(), outgoing.request_id_header);
    tracing::debug!(
        provider = %model.provider.name,
        request_id = %request.request_id,
        status = status.as_u16(),
        upstream_request_id = upstream_request_id.as_deref().unwrap_or(""),
        "upstream answered"
    );

    if !status.is_success() {
        let bytes = until(deadline, timeout, read_bounded(response, ERROR_BODY_LIMIT)).await?;
        if request.endpoint == Endpoint::UnifiedChat {
            return Err(ProviderError::Upstream {
                status: status.as_u16(),
                message: error_message(&bytes),
            });
        }
        return Ok(ProviderResponse {
            status,
            headers,
            body: ProviderBody::Full { bytes, usage: None },
            provider_request_id: upstream_request_id,
        });
    }

    if request.stream && is_event_stream(response.headers()) {
        let chunks = sse::events(response.bytes_stream(), timeout)
            .map(move |event| event.map(|event| answer.event(&event)))
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
    let (response_id, usage) = answer.unary(&bytes);
    Ok(ProviderResponse {
        status,
        headers,
        body: ProviderBody::Full { bytes, usage },
        provider_request_id: response_id.or(upstream_request_id),
    })
}

/// `{base_url}` without a trailing slash or a trailing `/v1`: vLLM and Hugging Face base URLs are
/// server roots, but `…/v1` is what OpenAI SDKs are configured with, so it is tolerated too.
pub(crate) fn server_root(base_url: &str) -> &str {
    let base = base_url.trim_end_matches('/');
    base.strip_suffix("/v1").unwrap_or(base)
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

/// The human-readable part of an upstream error body: OpenAI's `error.message`, Mistral's and
/// vLLM's `message`, Hugging Face's `error` string, FastAPI's `detail`; else the body's text.
pub(crate) fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        v.pointer("/error/message")
            .and_then(text)
            .or_else(|| v.get("message").and_then(text))
            .or_else(|| v.get("error").and_then(text))
            .or_else(|| {
                v.get("detail")
                    .map(|d| text(d).unwrap_or_else(|| d.to_string()))
            })
    });
    let message = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if message.is_empty() {
        return "no error details".to_owned();
    }
    truncate(message, ERROR_MESSAGE_LIMIT)
}

fn truncate(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
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

    #[test]
    fn error_messages_are_found_in_every_upstream_shape() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad model","type":"x"}}"#),
            "bad model"
        );
        assert_eq!(
            error_message(br#"{"object":"error","message":"too long","code":400}"#),
            "too long"
        );
        assert_eq!(
            error_message(br#"{"error":"Model is loading"}"#),
            "Model is loading"
        );
        assert_eq!(
            error_message(br#"{"detail":[{"msg":"field required"}]}"#),
            r#"[{"msg":"field required"}]"#
        );
        assert_eq!(error_message(b"  upstream down \n"), "upstream down");
        assert_eq!(error_message(b""), "no error details");
        let long = "é".repeat(400);
        let message = error_message(long.as_bytes());
        assert!(message.len() <= ERROR_MESSAGE_LIMIT + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }
}
