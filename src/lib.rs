//! # odock
//!
//! One dependency for embedding Odock, the AI governance gateway: re-exports the core layers and
//! traits ([`core`]) — the default, with in-memory key store, ledgers and usage sink — and, behind
//! opt-in features, the MCP transports (`mcp`), the upstream providers (`providers`), the SQL stores
//! (`store`), the management plane (`admin`), the Redis shared state for several replicas (`redis`)
//! and the reference server (`server`, which brings all of them). With `axum`, the route tables
//! the server mounts are available as axum routers: `core::axum_routes::llm_router` and, with
//! `mcp` too, `mcp::axum_routes::mcp_router`.
//!
//! See `examples/embed_axum.rs` for mounting the governance stack in your own axum app, and
//! `examples/governed_handler.rs` for putting it in front of a handler of your own.

#![deny(missing_docs)]

/// The management plane: admin API, console, reports and invoices (feature `admin`).
#[cfg(feature = "admin")]
pub use odock_admin as admin;
/// The governance layers, core traits and in-memory stores (always on).
pub use odock_core as core;
/// MCP transports and the MCP innermost call (feature `mcp`).
#[cfg(feature = "mcp")]
pub use odock_mcp as mcp;
/// The upstream LLM providers (feature `providers`).
#[cfg(feature = "providers")]
pub use odock_providers as providers;
/// Shared state for several replicas over Redis (feature `redis`).
#[cfg(feature = "redis")]
pub use odock_redis as redis;
/// The reference server, `odock-server` (feature `server`).
#[cfg(feature = "server")]
pub use odock_server as server;
/// SQL stores: keys, ledgers, usage (feature `store`).
#[cfg(feature = "store")]
pub use odock_store as store;
