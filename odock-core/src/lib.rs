//! # odock-core
//!
//! The heart of Odock, an AI governance gateway: domain types, the core traits ([`KeyStore`],
//! [`Provider`], [`UsageSink`], [`Admission`], [`McpTransport`]), the budget and quota engine
//! ([`InMemoryLedger`]), the error model
//! ([`GatewayError`]), the billing calculator ([`pricing::bill`]) and the tower layers that govern
//! every request, assembled in one documented order by [`GatewayBuilder`].
//!
//! It knows nothing of databases or HTTP clients: stores and providers plug in through the traits.
//!
//! ```
//! use std::sync::Arc;
//! use odock_core::{Endpoint, GatewayBuilder, InMemoryKeyStore, InMemoryUsageSink, ProviderRegistry};
//!
//! let gateway = GatewayBuilder::new(
//!     Arc::new(InMemoryKeyStore::new()),
//!     ProviderRegistry::new(),
//!     Arc::new(InMemoryUsageSink::new()),
//! );
//! // A tower service for `POST /v1/chat/completions`, ready to mount in any axum/hyper app.
//! let _chat = gateway.llm::<http_body_util::Full<bytes::Bytes>>(Endpoint::ChatCompletions);
//! ```

#![deny(missing_docs)]

pub mod admission;
#[cfg(feature = "axum")]
pub mod axum_routes;
pub mod body;
pub mod cache;
pub mod clock;
pub mod dispatch;
pub mod domain;
pub mod egress;
pub mod endpoint;
pub mod error;
pub mod gateway;
pub mod http_headers;
pub mod ids;
pub mod key_store;
pub mod layers;
pub mod ledger;
pub mod lifecycle;
pub mod mcp;
pub mod mcp_server;
pub mod mcp_sessions;
pub mod model;
pub mod pricing;
pub mod principal;
pub mod provider;
pub mod rate_limit;
pub mod routing;
pub mod secret;
pub mod sse;
pub mod telemetry;
/// Test doubles (a local provider answering in the OpenAI wire format); behind the `testing`
/// feature so they never ship in an embedder's build by accident.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tokens;
pub mod unified;
pub mod usage;
pub mod windows;

#[cfg(test)]
mod axum_routes_tests;
#[cfg(test)]
mod gateway_mcp_tests;
#[cfg(test)]
mod gateway_tests;

pub use admission::{Admission, AdmissionRequest, Admitted, LocalAdmission, Settlement, Ticket};
pub use body::{full, BoxError, GatewayBody};
pub use cache::{CacheInvalidator, CacheKind, InvalidationCommand, InvalidatorSet};
pub use clock::{Clock, ManualClock, SystemClock};
pub use domain::*;
pub use endpoint::{
    BodyFormat, Endpoint, ErrorStyle, HuggingFaceRoute, MistralRoute, ModelSource, VllmRoute,
};
pub use error::{
    AuthError, BudgetError, GatewayError, HttpError, McpError, ProviderError, QuotaError,
    RateLimitError, RequestError, ResolveError,
};
pub use gateway::{Front, GatewayBuilder, GatewayService, StackService};
pub use ids::*;
pub use key_store::{InMemoryKeyStore, KeyStore};
pub use ledger::{
    crossed_thresholds, thresholds_of, Actuals, BudgetAlerts, Estimate, InMemoryLedger,
    LedgerError, LedgerHold, LedgerKind, LedgerRule, LiveWindows, LogBudgetAlerts, RuleCache,
    RuleKind, RuleOwner, RuleSet, RuleSource, StaticRuleSource, StoredWindow, StoredWindowsOnly,
    ThresholdCrossing, WindowCharge, WindowTotals, QUOTA_THRESHOLDS,
};
pub use lifecycle::Background;
pub use mcp::{McpMessage, McpReply, McpTransport};
pub use mcp_server::{McpUpstreamAuth, ResolvedMcpServer, ToolRules};
pub use mcp_sessions::{InMemoryMcpSessionDirectory, McpSessionDirectory, SessionDirectoryError};
pub use model::{ResolvedModel, ResolvedProvider, ResolvedProviderKey};
pub use pricing::{usd_to_nanos, Bill, BillingMode, McpBill, McpPricing, ModelPricing, TokenRates};
pub use principal::Principal;
pub use provider::{
    Provider, ProviderBody, ProviderRegistry, ProviderRequest, ProviderResponse, StreamChunk,
};
pub use secret::Secret;
pub use telemetry::{RequestTrace, Tracing};
pub use usage::{
    InMemoryUsageSink, McpUsageRecord, ReportedUsage, RequestOutcome, TokenUsage, UsageMetadata,
    UsageRecord, UsageSink, UsageSinkError,
};
