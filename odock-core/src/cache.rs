//! Cache invalidation commands: admin writes (on any replica) and
//! `POST /v1/internal/cache/invalidate` produce them; every cache that may hold the object evicts it.

use serde::{Deserialize, Serialize};

/// What kind of object changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// A virtual key (id = the key id).
    ApiKey,
    /// A model (id = the model id).
    Model,
    /// A provider (id = the provider id).
    Provider,
    /// A provider credential (id = the provider key id).
    ProviderKey,
    /// An MCP server (id = the server id).
    McpServer,
    /// An organisation (id = its id); its switches and policies.
    Organisation,
    /// A team (id = its id); its policies.
    Team,
    /// A key's model or MCP grants (id = the API key id).
    Grant,
    /// A budget was created, changed or deleted (id = its organisation id).
    Budget,
    /// A quota was created, changed or deleted (id = its organisation id).
    Quota,
}

/// "Object `id` of `kind` changed; forget what you cached about it."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidationCommand {
    /// What kind of object changed.
    pub kind: CacheKind,
    /// The object's id (for grants, budgets and quotas: see [`CacheKind`]).
    pub id: String,
}

impl InvalidationCommand {
    /// The command for object `id` of `kind`.
    pub fn new(kind: CacheKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }
}

/// Something that caches runtime state and can evict it. Eviction is synchronous: once
/// `invalidate` returns, no later lookup on this replica sees the old value.
pub trait CacheInvalidator: Send + Sync + 'static {
    /// Evicts what this cache holds about the command's object.
    fn invalidate(&self, command: &InvalidationCommand);
}

/// Fans one command out to several caches.
#[derive(Default)]
pub struct InvalidatorSet(Vec<std::sync::Arc<dyn CacheInvalidator>>);

impl std::fmt::Debug for InvalidatorSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InvalidatorSet({})", self.0.len())
    }
}

impl InvalidatorSet {
    /// A set fanning out to `invalidators`, in order.
    pub fn new(invalidators: Vec<std::sync::Arc<dyn CacheInvalidator>>) -> Self {
        Self(invalidators)
    }
}

impl CacheInvalidator for InvalidatorSet {
    fn invalidate(&self, command: &InvalidationCommand) {
        for invalidator in &self.0 {
            invalidator.invalidate(command);
        }
    }
}
