//! # odock
//!
//! One dependency for embedding Odock, the AI governance gateway: re-exports the core layers and
//! traits ([`core`]), and — behind default features — the upstream providers ([`providers`]), the
//! SQL stores ([`store`]), the management plane ([`admin`]), the Redis shared state for several replicas ([`redis`]) and the reference
//! server ([`server`]).
//!
//! See `examples/embed_axum.rs` for mounting the governance stack in your own axum app.

#[cfg(feature = "admin")]
pub use odock_admin as admin;
pub use odock_core as core;
pub use odock_mcp as mcp;
#[cfg(feature = "providers")]
pub use odock_providers as providers;
#[cfg(feature = "redis")]
pub use odock_redis as redis;
#[cfg(feature = "server")]
pub use odock_server as server;
#[cfg(feature = "store")]
pub use odock_store as store;
