//! Production mode on Redis: budget and quota ledgers, rate-limit counters and cache invalidation
//! shared by every replica, so several `odock-server` processes behave as one gateway.
//!
//! - [`RedisBudgetLedger`] / [`RedisQuotaLedger`] — each admission one Lua script over every
//!   matching window; durable totals flushed to the database in batches; windows rebuilt from the
//!   database when Redis lost them.
//! - [`RedisRateLimiter`] — GCRA / sliding-window / lease counters, one script per admission.
//! - [`RedisInvalidator`] — applies cache invalidations locally and publishes them on
//!   `{prefix}cache-invalidation`; its subscriber applies what other replicas publish.
//! - [`OutagePolicy`], [`RedisHealth`] — what happens while Redis is unreachable.
//!
//! Every key and the channel live under one prefix (`ODOCK_REDIS_PREFIX`, default `odock:`), so
//! several deployments (or test runs) can share one Redis.

mod connection;
mod invalidation;
mod ledger;
mod outage;
mod rate_limit;
mod sessions;

#[cfg(test)]
mod tests;

pub use connection::{RedisConnection, RedisSettings, RedisStoreError};
pub use invalidation::{InvalidationSubscriber, RedisInvalidator};
pub use ledger::{RedisBudgetLedger, RedisLedgerFlusher, RedisQuotaLedger};
pub use outage::{OutagePolicy, RedisHealth};
pub use rate_limit::RedisRateLimiter;
pub use sessions::RedisMcpSessionDirectory;
