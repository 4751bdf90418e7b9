//! Smart routing: per-key policies that let one request try several models (failover, priority,
//! round robin, weighted), circuit breakers that skip failing upstreams, and the attempt loop.
//!
//! - [`RoutingPolicySource`] finds a key's [`RoutingPolicy`] for a model type (in memory:
//!   [`InMemoryRoutingPolicySource`]; SQL, cached: `odock_store::SqlRoutingPolicySource`).
//! - [`RoutingLayer`] (between resolution and admission) turns it into a [`RoutePlan`] and raises
//!   the estimate to the most expensive candidate: one admission per request, whatever answers.
//! - The provider dispatch ([`crate::dispatch::ProviderService`]) makes the attempts: the next
//!   one only when the failure matches a trigger, never after an Odock refusal, never once a
//!   stream's first byte went to the client. The usage record names the model that answered,
//!   is priced at its rates and lists every attempt in `routing`.
//! - [`CircuitBreakers`] (per provider and per provider key, per replica) let routed requests
//!   skip an upstream that keeps failing.
//! - [`KeyPools`] rotate a model's provider keys when it names none and its provider has several,
//!   and take a key answered 401/403 (evicted) or 429 (cooling down) out of rotation.
//!
//! ```
//! use std::sync::Arc;
//! use odock_core::routing::{
//!     CircuitBreakers, InMemoryRoutingPolicySource, RoutingCandidate, RoutingDocument,
//!     RoutingPolicy, Strategy,
//! };
//! use odock_core::ModelType;
//!
//! let policies = InMemoryRoutingPolicySource::new();
//! policies.set_enabled("org-1", true);
//! policies.set_document("key-1", RoutingDocument {
//!     policies: vec![RoutingPolicy::new(ModelType::Chat, Strategy::Failover, vec![
//!         RoutingCandidate::new("model-a", "gpt-4o"),
//!         RoutingCandidate::new("model-b", "claude"),
//!     ])],
//! });
//! let routing = odock_core::routing::Routing::new(
//!     Arc::new(policies),
//!     Arc::new(CircuitBreakers::default()),
//! );
//! # let _ = routing;
//! ```

mod attempts;
mod breaker;
mod cursor;
mod layer;
mod policy;
mod pool;
mod source;
#[cfg(test)]
mod tests;

pub(crate) use attempts::routed_call;
pub use breaker::{
    BreakerKey, BreakerStatus, CircuitBreakers, CircuitSettings, CircuitState, OnOpen,
    CIRCUIT_FAILURE_THRESHOLD, CIRCUIT_OPEN_MS,
};
pub use cursor::{InMemoryRoundRobinCursors, RoundRobinCursors};
pub use layer::{ModelLimits, ResponseFuture, RoutePlan, Routing, RoutingLayer, RoutingService};
pub use policy::{
    RoutingCandidate, RoutingDocument, RoutingPolicy, Strategy, Trigger, DEFAULT_TRIGGERS,
    MAX_RETRIES, MAX_RETRY_DELAY_MS,
};
pub use pool::{retry_after, KeyOut, KeyPools, KeyState, DEFAULT_COOL_DOWN, EVICTED_FOR};
pub use source::{InMemoryRoutingPolicySource, RoutingPolicySource};
