//! The provider for Anthropic's Messages API: `/v1/messages` natively, `/v1/llm/chat` translated.
//!
//! - **Native** ([`Endpoint::AnthropicMessages`]): the client already speaks the upstream's
//!   protocol, so its body is forwarded as bytes with only `model` rewritten to the slug, and the
//!   answer is relayed as sent: a unary body untouched, a stream event by event
//!   ([`stream::NativeRelay`]). A non-2xx answer is relayed with its status and body.
//! - **Unified** ([`Endpoint::UnifiedChat`]): the client sent an OpenAI chat-completions body; it
//!   is translated into a Messages request ([`convert`]) and the answer back into an OpenAI
//!   `chat.completion` (which the gateway then normalises) or `chat.completion.chunk`s
//!   ([`stream::ChunkTranslator`]). An upstream error answer becomes
//!   [`ProviderError::Upstream`] with the upstream's message; a request the Messages API cannot
//!   express is answered `400 invalid_request` without calling the upstream.
//!
//! Both report usage ([`usage`]): cache reads and writes count as input, reads as cached input.
//!
//! - **URL:** `{base_url}/v1/messages` (the base URL is the server root,
//!   e.g. `https://api.anthropic.com`).
//! - **Auth:** `x-api-key: <provider key>` and `anthropic-version` (the provider's
//!   `config.anthropicVersion`, else [`DEFAULT_ANTHROPIC_VERSION`]). No client header is ever
//!   forwarded, so the client's virtual key never reaches the upstream.
//! - **Timeouts:** no response headers within the provider's timeout (default 300 s) is
//!   [`ProviderError::Timeout`]; a unary body must also have arrived by then, while streaming the
//!   same timeout bounds the silence between two events (Anthropic pings idle streams).

pub mod convert;
pub mod stream;
pub mod usage;
pub mod wire;

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self as futures_stream, BoxStream, StreamExt};
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use odock_core::{
    Endpoint, ProviderBody, ProviderError, ProviderRequest, ProviderResponse, ResolvedModel,
    StreamChunk,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::http::{accept, credential, retry_after, send, Answered};
use crate::openai_compat::forward::not_a_json_object;
use crate::openai_compat::rewrite::rewrite_body;
use crate::sse;
use crate::UpstreamClient;

use self::stream::{ChunkTranslator, NativeRelay};

pub use crate::http::DEFAULT_TIMEOUT;

/// The `anthropic-version` sent when the provider's config names none.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The provider config member that overrides [`DEFAULT_ANTHROPIC_VERSION`].
const VERSION_CONFIG: &str = "anthropicVersion";

/// The upstream's own id for a request, sent back on every response.
const UPSTREAM_REQUEST_ID: &str = "request-id";

/// Calls Anthropic's Messages API. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    client: UpstreamClient,
}

impl AnthropicProvider {
    /// A provider that sends its requests through `client` (see [`crate::http_client`]).
    pub fn new(client: UpstreamClient) -> Self {
        Self { client }
    }
}

#[async_trait]
impl odock_core::Provider for AnthropicProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        match request.endpoint {
            Endpoint::AnthropicMessages => self.native(request).await,
            Endpoint::UnifiedChat => self.unified(request).await,
            _ => Err(ProviderError::UnsupportedEndpoint),
        }
    }
}

impl AnthropicProvider {
    async fn native(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let model = &request.model;
        let body = rewrite_body(&request.body, &model.slug, false).map_err(not_a_json_object)?;
        let answered = self.send(&request, body).await?;
        if !answered.status.is_success() {
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
            let mut relay = NativeRelay::new();
            let chunks = sse::events(response.bytes_stream(), deadline.timeout)
                .map(move |event| event.map(|event| relay.chunk(&event)))
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
        let (message_id, usage) = message_facts(&bytes);
        Ok(ProviderResponse {
            status,
            headers,
            body: ProviderBody::Full { bytes, usage },
            provider_request_id: message_id.or(request_id),
        })
    }

    async fn unified(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let model = &request.model;
        let translated = match convert::to_messages_request(
            &request.body,
            &model.slug,
            model.max_output_tokens,
            request.stream,
        ) {
            Ok(translated) => translated,
            Err(error) => return Err(ProviderError::InvalidRequest(error.0)),
        };
        let body = serde_json::to_vec(&translated)
            .map_err(|e| ProviderError::InvalidResponse(format!("cannot encode request: {e}")))?;
        let answered = self.send(&request, Bytes::from(body)).await?;
        let is_event_stream = answered.is_event_stream();
        let Answered {
            response,
            deadline,
            status,
            headers,
            request_id,
        } = answered;

        if !status.is_success() {
            let wait = retry_after(response.headers());
            let bytes = deadline.error_body(response).await?;
            return Err(ProviderError::Upstream {
                status: status.as_u16(),
                message: convert::error_message(status.as_u16(), &bytes),
                retry_after: wait,
            });
        }

        if request.stream && is_event_stream {
            let translator =
                ChunkTranslator::new(&model.name, unix_now(), request.client_wants_usage);
            let events = sse::events(response.bytes_stream(), deadline.timeout);
            return Ok(ProviderResponse {
                status,
                headers,
                body: ProviderBody::Stream(translated_stream(events, translator)),
                provider_request_id: request_id,
            });
        }

        let bytes = deadline.body(response).await?;
        let message: wire::MessagesResponse = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::InvalidResponse(format!("the answer is not a Messages response: {e}"))
        })?;
        let completion = convert::to_chat_completion(&message, &model.name, unix_now());
        let usage = usage::reported_usage(message.usage.clone());
        let message_id = Some(message.id).filter(|id| !id.is_empty());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(ProviderResponse {
            status,
            headers,
            body: ProviderBody::Full {
                bytes: Bytes::from(completion.to_string()),
                usage,
            },
            provider_request_id: message_id.or(request_id),
        })
    }

    /// Sends `body` to `{base_url}/v1/messages` and waits for the response headers.
    async fn send(
        &self,
        request: &ProviderRequest,
        body: Bytes,
    ) -> Result<Answered, ProviderError> {
        let model = &request.model;
        let url = format!(
            "{}/v1/messages",
            model.provider.base_url.trim_end_matches('/')
        );
        let mut upstream = self
            .client
            .post_for(&model.provider, &url)?
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static(accept(request.stream)))
            .header("anthropic-version", anthropic_version(model))
            .body(body);
        if let Some(key) = &model.provider_key {
            upstream = upstream.header("x-api-key", credential(key.secret.expose())?);
        }
        send(&self.client, request, upstream, UPSTREAM_REQUEST_ID).await
    }
}

/// The translated chunks, then an error if the upstream stopped before `message_stop`.
fn translated_stream(
    events: BoxStream<'static, Result<sse::Event, ProviderError>>,
    translator: ChunkTranslator,
) -> BoxStream<'static, Result<StreamChunk, ProviderError>> {
    futures_stream::unfold(Some((events, translator)), |state| async move {
        let (mut events, mut translator) = state?;
        match events.next().await {
            Some(Ok(event)) => match translator.translate(&event) {
                Ok(chunk) => Some((Ok(chunk), Some((events, translator)))),
                Err(error) => Some((Err(error), None)),
            },
            Some(Err(error)) => Some((Err(error), None)),
            None => translator.finish().map(|error| (Err(error), None)),
        }
    })
    .boxed()
}

/// The facts the gateway takes from a unary message; every other field is skipped unparsed.
#[derive(Deserialize)]
struct MessageProbe<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
}

/// The `id` and usage of a unary message body. A body that is not JSON yields neither (it is
/// still relayed).
fn message_facts(body: &[u8]) -> (Option<String>, Option<odock_core::ReportedUsage>) {
    let Ok(probe) = serde_json::from_slice::<MessageProbe<'_>>(body) else {
        return (None, None);
    };
    let usage = probe
        .usage
        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .and_then(usage::reported_usage);
    (probe.id.filter(|id| !id.is_empty()), usage)
}

/// The provider's `config.anthropicVersion` when it is a usable header value, else the default.
fn anthropic_version(model: &ResolvedModel) -> HeaderValue {
    model
        .provider
        .config
        .get(VERSION_CONFIG)
        .and_then(Value::as_str)
        .and_then(|version| HeaderValue::from_str(version.trim()).ok())
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION))
}

/// Seconds since the Unix epoch, for the `created` member of translated answers.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = include_str!("fixtures/message.json");

    #[test]
    fn unary_facts_come_from_the_message() {
        let (id, usage) = message_facts(MESSAGE.as_bytes());
        assert_eq!(id.as_deref(), Some("msg_01Aq9w938a90dw8qRz5cBzLg"));
        let usage = usage.unwrap();
        assert_eq!(
            (
                usage.tokens.input,
                usage.tokens.cached_input,
                usage.tokens.output
            ),
            (2640, 2048, 89)
        );
        let fixture: Value = serde_json::from_str(MESSAGE).unwrap();
        assert_eq!(usage.raw, fixture["usage"]);
        assert_eq!(message_facts(b"<html>"), (None, None));
    }
}
