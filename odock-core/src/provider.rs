//! `Provider`: one upstream family. The gateway hands it the client's request body (already
//! governed) and the resolved model; it calls the upstream and reports usage.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use http::{HeaderMap, StatusCode};

use crate::domain::ProviderType;
use crate::endpoint::Endpoint;
use crate::error::ProviderError;
use crate::ids::RequestId;
use crate::model::ResolvedModel;
use crate::usage::ReportedUsage;

/// What the gateway asks a provider to do.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// The route being served (decides the upstream path and translation).
    pub endpoint: Endpoint,
    /// The resolved model, with its provider, credential and slug.
    pub model: Arc<ResolvedModel>,
    /// The client's body, exactly as received.
    pub body: Bytes,
    /// The client's `Content-Type` (carries the multipart boundary).
    pub content_type: Option<http::HeaderValue>,
    /// The request's query string, if any (e.g. Gemini's `alt=sse`); never includes Odock's `key`.
    pub query: Option<String>,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// The client asked for usage in its stream (`stream_options.include_usage` or top-level
    /// `include_usage`); when false the provider strips the usage-only chunk it requested for billing.
    pub client_wants_usage: bool,
    /// The gateway's request id, for logs and for ids a translation has to make up.
    pub request_id: RequestId,
    /// The W3C `traceparent` the upstream request carries: the upstream span's when tracing is
    /// on, else the client's own (passed through), else none.
    pub traceparent: Option<http::HeaderValue>,
}

/// One piece of a streamed response.
#[derive(Debug, Clone, Default)]
pub struct StreamChunk {
    /// Bytes to send to the client (may be empty when the chunk only carried usage).
    pub bytes: Bytes,
    /// Usage, when this chunk carried the upstream's report.
    pub usage: Option<ReportedUsage>,
    /// UTF-8 bytes of generated text in this chunk, so an aborted stream can still be billed.
    pub output_text_bytes: u64,
}

/// A response body as the provider produced it.
pub enum ProviderBody {
    /// A unary answer, buffered.
    Full {
        /// The whole body.
        bytes: Bytes,
        /// The usage it reported, when it did.
        usage: Option<ReportedUsage>,
    },
    /// A streamed answer, chunk by chunk.
    Stream(BoxStream<'static, Result<StreamChunk, ProviderError>>),
}

impl fmt::Debug for ProviderBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderBody::Full { bytes, usage } => f
                .debug_struct("Full")
                .field("len", &bytes.len())
                .field("usage", usage)
                .finish(),
            ProviderBody::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// The upstream's answer. Upstream HTTP errors on same-protocol routes are answers too: they are
/// relayed with their status and body.
#[derive(Debug)]
pub struct ProviderResponse {
    /// The status to answer with (the upstream's, on relayed routes).
    pub status: StatusCode,
    /// Headers to pass to the client (content type, …); never upstream auth or hop-by-hop headers.
    pub headers: HeaderMap,
    /// The body, unary or streamed.
    pub body: ProviderBody,
    /// The upstream's own request or response id.
    pub provider_request_id: Option<String>,
}

/// One upstream family's implementation: calls the upstream and reports usage.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Calls the upstream. Streaming is decided by `request.stream`.
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError>;
}

/// The providers a gateway can call, by provider type.
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    providers: HashMap<ProviderType, Arc<dyn Provider>>,
}

impl fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.providers.keys()).finish()
    }
}

impl ProviderRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` for `provider_type`, replacing any earlier one.
    pub fn register(
        &mut self,
        provider_type: ProviderType,
        provider: Arc<dyn Provider>,
    ) -> &mut Self {
        self.providers.insert(provider_type, provider);
        self
    }

    /// The registry with `provider` registered for `provider_type`.
    pub fn with(mut self, provider_type: ProviderType, provider: Arc<dyn Provider>) -> Self {
        self.register(provider_type, provider);
        self
    }

    /// The provider for `provider_type`, if one is registered.
    pub fn get(&self, provider_type: ProviderType) -> Option<&Arc<dyn Provider>> {
        self.providers.get(&provider_type)
    }
}
