//! The caches on the request path: moka caches with a fast (non-cryptographic, randomly seeded)
//! hasher, shared by the key store and the MCP server resolution.

pub(crate) type FastCache<K, V> = moka::sync::Cache<K, V, foldhash::fast::RandomState>;
