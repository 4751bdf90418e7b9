//! # odock-providers
//!
//! Odock's upstream LLM providers: implementations of [`odock_core::Provider`] that call an
//! upstream over HTTP, relay its answer and report the usage it billed.
//!
//! - [`openai_compat`] serves every OpenAI-compatible upstream (OpenAI, Custom). Requests are
//!   forwarded as bytes: only the model name and `stream_options` are rewritten, everything else the
//!   client sent reaches the upstream untouched.
//! - [`sse`] is the one Server-Sent-Events adapter all providers share.
//! - [`http`] holds the HTTP plumbing they share: error mapping, bounded reads, relayed headers.
//!
//! The gateway builds one [`reqwest::Client`] with [`http_client`] and hands it to
//! [`default_registry`], which maps provider types to providers:
//!
//! ```
//! use std::sync::Arc;
//! use odock_core::{GatewayBuilder, InMemoryKeyStore, InMemoryUsageSink, ProviderType};
//!
//! let providers = odock_providers::default_registry(odock_providers::http_client());
//! assert!(providers.get(ProviderType::OpenAi).is_some());
//! assert!(providers.get(ProviderType::Custom).is_some());
//!
//! let _gateway = GatewayBuilder::new(
//!     Arc::new(InMemoryKeyStore::new()),
//!     providers,
//!     Arc::new(InMemoryUsageSink::new()),
//! );
//! ```

use std::sync::Arc;
use std::time::Duration;

use odock_core::{Provider, ProviderRegistry, ProviderType};

pub mod http;
pub mod openai_compat;
pub mod sse;

pub use openai_compat::OpenAiCompatProvider;

/// Sent as `User-Agent` on every upstream request.
pub const USER_AGENT: &str = concat!("odock/", env!("CARGO_PKG_VERSION"));

/// How long establishing a TCP (and TLS) connection to an upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle pooled connection is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle pooled connections kept per upstream host.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// The registry of every provider this crate implements, all sharing `client`.
///
/// OpenAI and Custom upstreams both speak the OpenAI wire format and share one
/// [`OpenAiCompatProvider`].
pub fn default_registry(client: reqwest::Client) -> ProviderRegistry {
    let openai_compat: Arc<dyn Provider> = Arc::new(OpenAiCompatProvider::new(client));
    ProviderRegistry::new()
        .with(ProviderType::OpenAi, openai_compat.clone())
        .with(ProviderType::Custom, openai_compat)
}

/// The HTTP client shared by every provider.
///
/// It has a connect timeout but no overall request timeout: a streamed answer may legitimately run
/// for minutes, so providers bound the wait for headers and the gaps between events themselves,
/// with the provider's configured timeout. Redirects are not followed: an upstream's answer is
/// relayed, never chased with the provider's credential.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|error| {
            // Only fails when the TLS backend cannot initialise; a default client is the best we can do.
            tracing::error!(%error, "could not build the upstream HTTP client; using defaults");
            reqwest::Client::new()
        })
}
