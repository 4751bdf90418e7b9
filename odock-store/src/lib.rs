//! # odock-store
//!
//! Persistence for Odock: the SQLite and PostgreSQL schemas and migrations, secret envelopes,
//! virtual-key hashing, the cached [`SqlKeyStore`], the batched usage writer,
//! the durable side of budgets and quotas ([`SqlRuleSource`], window totals) and usage retention.
//! The management plane (admin services over these tables, sign-in, reports, the admin API) lives
//! in `odock-admin`; shared runtime state for several replicas lives in `odock-redis`.

#![deny(missing_docs)]

pub mod crypto;
pub mod db;
mod fast_cache;
pub mod key_store;
pub mod keys;
pub mod ledger;
pub mod mcp_config;
mod mcp_resolution;
pub mod mcp_usage;
mod record_page;
pub mod retention;
pub mod routing_policies;
#[cfg(test)]
mod test_fixtures;
pub mod testing;
pub mod usage_records;
pub mod usage_rollups;
pub mod usage_spill;
pub mod usage_writer;

pub use crypto::{CryptoError, MasterKey};
pub use db::{connect, connect_in_memory, DbError, DbOptions};
pub use key_store::{CacheStats, KeyStoreOptions, SqlKeyStore};
pub use ledger::SqlRuleSource;
pub use routing_policies::SqlRoutingPolicySource;
pub use usage_writer::{SqlUsageSink, UsageWriterOptions};
