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

#[cfg(feature = "admin")]
pub use odock_admin as admin;
pub use odock_core as core;
#[cfg(feature = "mcp")]
pub use odock_mcp as mcp;
#[cfg(feature = "providers")]
pub use odock_providers as providers;
#[cfg(feature = "redis")]
pub use odock_redis as redis;
#[cfg(feature = "server")]
pub use odock_server as server;
#[cfg(feature = "store")]
pub use odock_store as store;
