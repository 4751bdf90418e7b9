//! # odock-providers
//!
//! Odock's upstream LLM providers: implementations of [`odock_core::Provider`] that call an
//! upstream over HTTP, relay its answer and report the usage it billed.
//!
//! One module per upstream family:
//!
//! - [`openai_compat`] serves OpenAI, Azure OpenAI and Custom upstreams on every OpenAI route and
//!   `/v1/llm/chat`, and holds the OpenAI-compatible forwarding every same-protocol family shares:
//!   the byte-preserving body rewrite (model slug, `stream_options` per family, dropped members),
//!   the request/answer loop, unary usage in the chat, Responses and total-only shapes, stream
//!   relays (usage-only chunk stripping, `response.completed` usage, image events), the upstream
//!   error of `/v1/llm/chat`, and the multipart `model` swap.
//! - [`vllm`], [`mistral`] and [`huggingface`] serve those families' own routes (`/v1/vllm/*`,
//!   `/v1/mistral/*`, `/v1/huggingface/*`) and `/v1/llm/chat` through that shared forwarding,
//!   choosing only URLs, `stream_options` handling (Mistral never receives it) and how special
//!   answers are billed: Hugging Face tasks in units counted from the request, Mistral OCR per
//!   processed page.
//! - [`anthropic`] and [`gemini`] forward their native routes (`/v1/messages`,
//!   `generateContent`) as bytes and translate `/v1/llm/chat` to and from their own protocols.
//! - [`sse`] is the one Server-Sent-Events adapter all providers share.
//! - [`http`] holds the HTTP plumbing they share: sending within the provider's timeout, the
//!   sensitive credential header, error mapping, bounded reads, relayed headers.
//! - [`client`] is the one [`UpstreamClient`] they send through: the egress policy (no private
//!   upstream unless allowed, checked after DNS resolution), URL checks, the unary body cap.
//!
//! The gateway builds one [`UpstreamClient`] (here the safe default, [`http_client`]) and hands it
//! to [`default_registry`], which maps provider types to providers:
//!
//! ```
//! use std::sync::Arc;
//! use odock_core::{GatewayBuilder, InMemoryKeyStore, InMemoryUsageSink, ProviderType};
//!
//! let providers = odock_providers::default_registry(odock_providers::http_client());
//! assert!(providers.get(ProviderType::OpenAi).is_some());
//! assert!(providers.get(ProviderType::Anthropic).is_some());
//! assert!(providers.get(ProviderType::Google).is_some());
//! assert!(providers.get(ProviderType::AzureOpenAi).is_some());
//! assert!(providers.get(ProviderType::Custom).is_some());
//! assert!(providers.get(ProviderType::Vllm).is_some());
//! assert!(providers.get(ProviderType::Mistral).is_some());
//! assert!(providers.get(ProviderType::HuggingFace).is_some());
//!
//! let _gateway = GatewayBuilder::new(
//!     Arc::new(InMemoryKeyStore::new()),
//!     providers,
//!     Arc::new(InMemoryUsageSink::new()),
//! );
//! ```

#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use odock_core::{Provider, ProviderRegistry, ProviderType};

pub mod anthropic;
pub mod client;
#[cfg(test)]
mod fuzz;
pub mod gemini;
pub mod http;
pub mod huggingface;
pub mod mistral;
pub mod openai_compat;
pub mod sse;
pub mod vllm;

pub use client::UpstreamClient;
pub use huggingface::HuggingFaceProvider;
pub use mistral::MistralProvider;
pub use openai_compat::OpenAiCompatProvider;
pub use vllm::VllmProvider;

/// Sent as `User-Agent` on every upstream request.
pub const USER_AGENT: &str = concat!("odock/", env!("CARGO_PKG_VERSION"));

/// How long establishing a TCP (and TLS) connection to an upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection is kept for reuse.
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle pooled connections kept per upstream host.
pub(crate) const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// The registry of every provider this crate implements, all sharing `client`: OpenAI, Azure
/// OpenAI and Custom (one shared [`OpenAiCompatProvider`]), Anthropic, Google (Gemini), vLLM,
/// Mistral and Hugging Face.
pub fn default_registry(client: UpstreamClient) -> ProviderRegistry {
    let openai_compat: Arc<dyn Provider> = Arc::new(OpenAiCompatProvider::new(client.clone()));
    ProviderRegistry::new()
        .with(ProviderType::OpenAi, openai_compat.clone())
        .with(
            ProviderType::Anthropic,
            Arc::new(anthropic::AnthropicProvider::new(client.clone())),
        )
        .with(ProviderType::AzureOpenAi, openai_compat.clone())
        .with(ProviderType::Custom, openai_compat)
        .with(
            ProviderType::Google,
            Arc::new(gemini::GeminiProvider::new(client.clone())),
        )
        .with(
            ProviderType::Vllm,
            Arc::new(VllmProvider::new(client.clone())),
        )
        .with(
            ProviderType::Mistral,
            Arc::new(MistralProvider::new(client.clone())),
        )
        .with(
            ProviderType::HuggingFace,
            Arc::new(HuggingFaceProvider::new(client)),
        )
}

/// The HTTP client shared by every provider, with the safe default egress policy (no loopback,
/// private or link-local upstream; see [`client`]). Use [`UpstreamClient::new`] with an
/// [`EgressPolicy`](odock_core::egress::EgressPolicy) to allow a vLLM on the LAN or a model on
/// localhost.
///
/// It has a connect timeout but no overall request timeout: a streamed answer may legitimately run
/// for minutes, so providers bound the wait for headers and the gaps between events themselves,
/// with the provider's configured timeout. Redirects are not followed: an upstream's answer is
/// relayed, never chased with the provider's credential.
pub fn http_client() -> UpstreamClient {
    UpstreamClient::default()
}
