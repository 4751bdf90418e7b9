//! # odock-store
//!
//! Storage for Odock: the SQLite schema and migrations, secret envelopes, virtual-key hashing, the
//! cached [`SqlKeyStore`](key_store::SqlKeyStore), the batched usage writer and the admin repositories.

pub mod crypto;
pub mod db;
pub mod keys;

pub use crypto::{CryptoError, MasterKey};
pub use db::{connect, connect_in_memory, DbError, DbOptions};
