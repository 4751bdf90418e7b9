//! The provider for Google's Gemini API (`GOOGLE` providers): the native `generateContent` /
//! `streamGenerateContent` routes, and `/v1/llm/chat` translated from and to OpenAI chat
//! completions.
//!
//! - **URL:** `{base_url}/{apiVersion}/models/{slug}:generateContent`, or for streams
//!   `…:streamGenerateContent?alt=sse`. The base URL is the server root
//!   (`https://generativelanguage.googleapis.com`); `apiVersion` comes from the provider's
//!   `config.apiVersion` (default `v1beta`), unless the base URL already ends in a version segment
//!   (`…/v1beta`), which is then used as is. A slug may be written `models/…`; a `tunedModels/…`
//!   slug addresses a tuned model. The model name is percent-encoded as one path segment, so a
//!   slug can never add segments, a query or a fragment to the URL.
//! - **Auth:** `x-goog-api-key: <provider key>`, marked sensitive. No client header and no client
//!   query parameter is forwarded (the gateway sets `alt=sse` itself), so the client's virtual key
//!   never reaches the upstream whichever carrier it used.
//! - **Native routes:** the body names no model (the path does) and is forwarded as the client's
//!   exact bytes; the answer is relayed as sent (a stream event by event, `stream`), with usage
//!   read from `usageMetadata` (`usage`). A non-2xx answer is relayed with its status and (up to
//!   1 MiB of) body.
//! - **`/v1/llm/chat`:** the OpenAI request is translated (`convert`), the answer translated back
//!   into a `chat.completion` (which the gateway then normalises) or `chat.completion.chunk`
//!   events. An upstream failure is [`ProviderError::Upstream`] with Gemini's message; a request
//!   that cannot be expressed for Gemini is answered 400 `invalid_request` without calling it.
//! - **Time:** no response headers within the provider's timeout (default 300 s) is
//!   [`ProviderError::Timeout`]; a unary body must also have arrived by then, while a stream may
//!   run as long as no gap between two events exceeds that timeout.

pub mod convert;
pub(crate) mod stream;
pub(crate) mod usage;
pub mod wire;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::{
    accept, credential, is_event_stream, path_segment, relayed_headers, retry_after, send_until,
    Deadline,
};
use crate::sse;
use crate::UpstreamClient;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use odock_core::{
    Endpoint, Provider, ProviderBody, ProviderError, ProviderRequest, ProviderResponse,
    ResolvedModel, ResolvedProvider,
};
use wire::{ErrorEnvelope, GenerateContentResponse};

pub use crate::http::DEFAULT_TIMEOUT;

/// The API version used when the provider's config names none.
pub const DEFAULT_API_VERSION: &str = "v1beta";

/// The upstream credential header.
const API_KEY_HEADER: &str = "x-goog-api-key";

/// The most characters of a non-JSON upstream error body quoted in an error message.
const ERROR_MESSAGE_LIMIT: usize = 512;

/// Calls Gemini upstreams. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct GeminiProvider {
    client: UpstreamClient,
}

impl GeminiProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }

    /// Sends `body` to the model's `generateContent` (or streaming) method. Returns the response
    /// once its headers arrived, with the deadline and timeout that still apply.
    async fn send(
        &self,
        model: &ResolvedModel,
        body: Bytes,
        stream: bool,
        traceparent: Option<HeaderValue>,
    ) -> Result<(reqwest::Response, Deadline), ProviderError> {
        let mut upstream = self
            .client
            .post_for(
                &model.provider,
                &upstream_url(&model.provider, &model.slug, stream),
            )?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static(accept(stream)))
            .body(body);
        if let Some(key) = &model.provider_key {
            upstream = upstream.header(API_KEY_HEADER, credential(key.secret.expose())?);
        }
        let upstream = crate::http::with_traceparent(upstream, traceparent.as_ref());
        let deadline = Deadline::start(&self.client, model);
        let response = send_until(&model.provider, deadline.at, deadline.timeout, upstream).await?;
        tracing::debug!(
            provider = %model.provider.name,
            status = response.status().as_u16(),
            "upstream answered"
        );
        Ok((response, deadline))
    }

    /// `generateContent` / `streamGenerateContent`: the client's bytes in, the upstream's out.
    async fn native(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let stream = request.endpoint == Endpoint::GeminiStreamGenerateContent;
        let (response, deadline) = self
            .send(
                &request.model,
                request.body,
                stream,
                request.traceparent.clone(),
            )
            .await?;
        let status = response.status();
        let headers = relayed_headers(response.headers());

        if !status.is_success() {
            let bytes = deadline.error_body(response).await?;
            return Ok(ProviderResponse {
                status,
                headers,
                body: ProviderBody::Full { bytes, usage: None },
                provider_request_id: None,
            });
        }

        if stream && is_event_stream(response.headers()) {
            let chunks = sse::events(response.bytes_stream(), deadline.timeout)
                .map(|event| event.map(|event| stream::native_chunk(&event)))
                .boxed();
            return Ok(ProviderResponse {
                status,
                headers,
                body: ProviderBody::Stream(chunks),
                provider_request_id: None,
            });
        }

        // A unary answer (or a stream the upstream sent as one JSON array): relayed as sent.
        let bytes = deadline.body(response).await?;
        let (response_id, usage) = usage::response_facts(&bytes);
        Ok(ProviderResponse {
            status,
            headers,
            body: ProviderBody::Full { bytes, usage },
            provider_request_id: response_id,
        })
    }

    /// `/v1/llm/chat`: OpenAI chat completions in and out, Gemini in between.
    async fn unified(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let translated = match convert::to_generate_content(&request.body) {
            Ok(translated) => translated,
            Err(convert::InvalidRequest(message)) => {
                return Err(ProviderError::InvalidRequest(message))
            }
        };
        let body = serde_json::to_vec(&translated).map_err(|e| {
            ProviderError::InvalidResponse(format!("could not encode the Gemini request: {e}"))
        })?;
        let model = &request.model;
        let (response, deadline) = self
            .send(
                model,
                body.into(),
                request.stream,
                request.traceparent.clone(),
            )
            .await?;
        let status = response.status();

        if !status.is_success() {
            let wait = retry_after(response.headers());
            let bytes = deadline.error_body(response).await?;
            return Err(upstream_error(status.as_u16(), &bytes, wait));
        }

        let fallback_id = format!("chatcmpl-{}", request.request_id);
        if request.stream {
            if !is_event_stream(response.headers()) {
                return Err(ProviderError::InvalidResponse(
                    "Gemini did not answer the stream request with an event stream".to_owned(),
                ));
            }
            let translator = stream::ChunkTranslator::new(
                fallback_id,
                model.name.clone(),
                unix_now(),
                request.client_wants_usage,
            );
            let chunks = stream::translated(
                sse::events(response.bytes_stream(), deadline.timeout),
                translator,
            );
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return Ok(ProviderResponse {
                status: StatusCode::OK,
                headers,
                body: ProviderBody::Stream(chunks),
                provider_request_id: None,
            });
        }

        let bytes = deadline.body(response).await?;
        let answer: GenerateContentResponse = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::InvalidResponse(format!(
                "Gemini answer is not a GenerateContentResponse: {e}"
            ))
        })?;
        let completion =
            convert::to_chat_completion(&answer, &model.name, &fallback_id, unix_now());
        let usage = answer
            .usage_metadata
            .clone()
            .and_then(usage::usage_from_value);
        Ok(ProviderResponse {
            status: StatusCode::OK,
            headers: json_headers(),
            body: ProviderBody::Full {
                bytes: Bytes::from(completion.to_string()),
                usage,
            },
            provider_request_id: answer.response_id,
        })
    }
}

#[async_trait]
impl Provider for GeminiProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        match request.endpoint {
            Endpoint::GeminiGenerateContent | Endpoint::GeminiStreamGenerateContent => {
                self.native(request).await
            }
            Endpoint::UnifiedChat => self.unified(request).await,
            _ => Err(ProviderError::UnsupportedEndpoint),
        }
    }
}

/// `{base}/{version}/models/{slug}:{method}` (see the module docs).
pub fn upstream_url(provider: &ResolvedProvider, slug: &str, stream: bool) -> String {
    let base = provider.base_url.trim_end_matches('/');
    let versioned = match base.rsplit_once('/') {
        Some((_, last)) if is_api_version(last) => base.to_owned(),
        _ => format!("{base}/{}", api_version(provider)),
    };
    let slug = slug.trim_start_matches('/');
    let resource = match ["models/", "tunedModels/"]
        .into_iter()
        .find_map(|collection| Some((collection, slug.strip_prefix(collection)?)))
    {
        Some((collection, name)) => format!("{collection}{}", path_segment(name)),
        None => format!("models/{}", path_segment(slug)),
    };
    if stream {
        format!("{versioned}/{resource}:streamGenerateContent?alt=sse")
    } else {
        format!("{versioned}/{resource}:generateContent")
    }
}

/// `config.apiVersion` when it is a version segment, else [`DEFAULT_API_VERSION`].
fn api_version(provider: &ResolvedProvider) -> &str {
    match provider.config.get("apiVersion").and_then(|v| v.as_str()) {
        Some(version) if is_api_version(version) => version,
        Some(version) => {
            tracing::warn!(
                provider = %provider.name,
                api_version = version,
                "ignoring an apiVersion that is not a version segment like v1beta"
            );
            DEFAULT_API_VERSION
        }
        None => DEFAULT_API_VERSION,
    }
}

/// `v` + digits + optional letters and digits: `v1`, `v1beta`, `v1alpha`, `v1beta1`.
fn is_api_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    rest.starts_with(|c: char| c.is_ascii_digit())
        && rest.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A Gemini error answer as [`ProviderError::Upstream`], with Google's message when the body is
/// the usual `{"error": {"message"}}` envelope, else (the start of) the body itself, and the
/// upstream's `Retry-After`.
pub(crate) fn upstream_error(
    status: u16,
    body: &[u8],
    retry_after: Option<std::time::Duration>,
) -> ProviderError {
    let message = serde_json::from_slice::<ErrorEnvelope>(body)
        .ok()
        .and_then(|envelope| envelope.error.message)
        .filter(|message| !message.trim().is_empty())
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                format!("Gemini answered HTTP {status}")
            } else {
                text.chars().take(ERROR_MESSAGE_LIMIT).collect()
            }
        });
    ProviderError::Upstream {
        status,
        message,
        retry_after,
    }
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use odock_core::{ProviderId, ProviderType};
    use serde_json::json;

    fn provider(base_url: &str, config: serde_json::Value) -> ResolvedProvider {
        ResolvedProvider {
            id: ProviderId::new("prv_1"),
            name: "gemini".into(),
            provider_type: ProviderType::Google,
            base_url: base_url.into(),
            timeout: None,
            enabled: true,
            config,
        }
    }

    #[test]
    fn urls_name_the_version_model_and_method() {
        let root = provider("https://generativelanguage.googleapis.com/", json!({}));
        assert_eq!(
            upstream_url(&root, "gemini-2.5-flash", false),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            upstream_url(&root, "models/gemini-2.5-flash", true),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            upstream_url(&root, "tunedModels/my-model-1", false),
            "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-model-1:generateContent"
        );
        let v1 = provider("https://gl.example", json!({"apiVersion": "v1"}));
        assert_eq!(
            upstream_url(&v1, "g", false),
            "https://gl.example/v1/models/g:generateContent"
        );
        let bad = provider("https://gl.example", json!({"apiVersion": "../admin"}));
        assert_eq!(
            upstream_url(&bad, "g", false),
            "https://gl.example/v1beta/models/g:generateContent"
        );
        let versioned = provider(
            "https://gl.example/proxy/v1alpha",
            json!({"apiVersion": "v1"}),
        );
        assert_eq!(
            upstream_url(&versioned, "g", false),
            "https://gl.example/proxy/v1alpha/models/g:generateContent"
        );
    }

    #[test]
    fn upstream_errors_carry_googles_message() {
        let body = br#"{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}"#;
        assert_eq!(
            upstream_error(400, body, None),
            ProviderError::Upstream {
                status: 400,
                message: "API key not valid. Please pass a valid API key.".into(),
                retry_after: None,
            }
        );
        assert_eq!(
            upstream_error(502, b"<html>Bad Gateway</html>", None),
            ProviderError::Upstream {
                status: 502,
                message: "<html>Bad Gateway</html>".into(),
                retry_after: None,
            }
        );
        let wait = Some(std::time::Duration::from_secs(9));
        assert_eq!(
            upstream_error(429, b"", wait),
            ProviderError::Upstream {
                status: 429,
                message: "Gemini answered HTTP 429".into(),
                retry_after: wait,
            }
        );
    }
}
