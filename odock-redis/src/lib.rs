//! # odock-redis
//!
//! Shared runtime state for several `odock-server` replicas on one database, so they behave as one
//! gateway. Not storage: the database (`odock-store`) stays the system of record; Redis holds what
//! must be shared at request speed.
//!
//! - [`RedisAdmission`] — rate limits, quotas and budgets admitted in **one** Lua script per
//!   request (and settled in one), across every replica; durable totals flushed to the database by
//!   [`RedisLedgerFlusher`]; windows rebuilt from the database when Redis lost them.
//! - [`RedisInvalidator`] — applies cache invalidations locally and publishes them on
//!   `{prefix}cache-invalidation`; its subscriber applies what other replicas publish.
//! - [`RedisMcpSessionDirectory`] — which replica owns an MCP session.
//! - [`RedisRoundRobinCursors`] — the `round_robin` routing counters, shared.
//! - [`OutagePolicy`], [`RedisHealth`] — what happens while Redis is unreachable.
//!
//! Every key and the channel live under one prefix (`ODOCK_REDIS_PREFIX`, default `odock:`), so
//! several deployments (or test runs) can share one Redis.

#![deny(missing_docs)]

mod admission;
mod connection;
mod flusher;
mod invalidation;
mod outage;
mod round_robin;
mod sessions;

#[cfg(test)]
mod tests;

pub use admission::{RedisAdmission, RedisAdmissionOptions};
pub use connection::{RedisConnection, RedisHealth, RedisSettings, RedisStoreError};
pub use flusher::RedisLedgerFlusher;
pub use invalidation::{InvalidationSubscriber, RedisInvalidator};
pub use outage::OutagePolicy;
pub use round_robin::RedisRoundRobinCursors;
pub use sessions::RedisMcpSessionDirectory;
