//! [`RoutingPolicySource`]: where the routing layer finds a key's policy for a model type.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use super::policy::{RoutingDocument, RoutingPolicy};
use crate::domain::ModelType;
use crate::error::ResolveError;
use crate::ids::{ApiKeyId, OrganisationId};
use crate::principal::Principal;

/// A key's routing policies as the request path sees them. Implementations cache: on a warm cache
/// a lookup is one in-memory hit, never a database round trip.
#[async_trait]
pub trait RoutingPolicySource: Send + Sync + 'static {
    /// The policy in force for `principal`'s requests for models of `model_type`: `None` when the
    /// organisation has routing switched off (`routingEnabled`) or the key has no policy for the
    /// type. Each candidate carries its model name (`RoutingCandidate::model_name`).
    async fn policy(
        &self,
        principal: &Principal,
        model_type: ModelType,
    ) -> Result<Option<Arc<RoutingPolicy>>, ResolveError>;

    /// [`policy`](Self::policy) when it can be answered without waiting (a cache hit): `None`
    /// means "ask `policy`". The routing layer's fast path: a request without a policy then costs
    /// one lookup and no allocation.
    fn cached_policy(
        &self,
        principal: &Principal,
        model_type: ModelType,
    ) -> Option<Option<Arc<RoutingPolicy>>> {
        let _ = (principal, model_type);
        None
    }
}

/// Policies held in memory, for embedding without a database and for tests.
#[derive(Debug, Default, Clone)]
pub struct InMemoryRoutingPolicySource {
    inner: Arc<RwLock<InMemoryRouting>>,
}

#[derive(Debug, Default)]
struct InMemoryRouting {
    enabled: HashSet<OrganisationId>,
    keys: HashMap<ApiKeyId, Vec<Arc<RoutingPolicy>>>,
}

impl InMemoryRoutingPolicySource {
    /// A source with no policies.
    pub fn new() -> Self {
        Self::default()
    }

    /// The organisation's `routingEnabled` switch (off until set).
    pub fn set_enabled(&self, organisation: impl Into<OrganisationId>, enabled: bool) {
        let organisation = organisation.into();
        let mut state = self.inner.write();
        if enabled {
            state.enabled.insert(organisation);
        } else {
            state.enabled.remove(&organisation);
        }
    }

    /// Replaces the key's whole document. Candidates must carry their model names.
    pub fn set_document(&self, key: impl Into<ApiKeyId>, document: RoutingDocument) {
        let policies = document.policies.into_iter().map(Arc::new).collect();
        self.inner.write().keys.insert(key.into(), policies);
    }
}

#[async_trait]
impl RoutingPolicySource for InMemoryRoutingPolicySource {
    async fn policy(
        &self,
        principal: &Principal,
        model_type: ModelType,
    ) -> Result<Option<Arc<RoutingPolicy>>, ResolveError> {
        Ok(self.lookup(principal, model_type))
    }

    fn cached_policy(
        &self,
        principal: &Principal,
        model_type: ModelType,
    ) -> Option<Option<Arc<RoutingPolicy>>> {
        Some(self.lookup(principal, model_type))
    }
}

impl InMemoryRoutingPolicySource {
    fn lookup(&self, principal: &Principal, model_type: ModelType) -> Option<Arc<RoutingPolicy>> {
        let state = self.inner.read();
        if !state.enabled.contains(&principal.organisation_id) {
            return None;
        }
        state
            .keys
            .get(&principal.api_key_id)
            .and_then(|policies| policies.iter().find(|p| p.model_type == model_type))
            .cloned()
    }
}
