//! `KeyStore`: resolves virtual keys, models and grants. Implementations cache, so the request hot
//! path does no database round trip on a warm cache.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::error::{AuthError, ResolveError};
use crate::ids::{ApiKeyId, ModelId, OrganisationId};
use crate::model::ResolvedModel;
use crate::principal::Principal;
use crate::rate_limit::{Policy, ScopedPolicies, ScopedPolicy};

#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// The principal for a presented virtual key, revoked and expired keys included (the auth layer
    /// decides); `Err(AuthError::Unknown)` when no key matches.
    async fn principal(&self, presented_key: &str) -> Result<Principal, AuthError>;

    /// The model called `name` in the organisation. Disabled models are not found.
    async fn model(
        &self,
        organisation: &OrganisationId,
        name: &str,
    ) -> Result<Arc<ResolvedModel>, ResolveError>;

    /// Whether the key holds an explicit grant for the model.
    async fn has_model_grant(&self, key: &ApiKeyId, model: &ModelId) -> Result<bool, ResolveError>;

    /// Every enabled model of the principal's organisation that the key is granted (model-list
    /// routes), in name order.
    async fn granted_models(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Arc<ResolvedModel>>, ResolveError>;

    /// The rate-limit policies in force for the principal on `model`: organisation, team (TEAM
    /// keys only), API key and model scopes, each only when it has a policy.
    async fn policies(
        &self,
        principal: &Principal,
        model: &ModelId,
    ) -> Result<Arc<ScopedPolicies>, ResolveError>;
}

/// A `KeyStore` over plain maps, for embedding without a database and for tests. Keys are held as
/// given; a real deployment uses a hashed store such as `odock_store::SqlKeyStore`.
#[derive(Debug, Default, Clone)]
pub struct InMemoryKeyStore {
    inner: Arc<RwLock<InMemoryState>>,
}

#[derive(Debug, Default)]
struct InMemoryState {
    keys: HashMap<String, Principal>,
    models: HashMap<(OrganisationId, String), Arc<ResolvedModel>>,
    grants: HashMap<ApiKeyId, Vec<ModelId>>,
    policies: HashMap<(&'static str, String), Policy>,
}

impl InMemoryKeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert_key(&self, presented_key: impl Into<String>, principal: Principal) {
        self.inner
            .write()
            .keys
            .insert(presented_key.into(), principal);
    }

    pub fn insert_model(&self, model: ResolvedModel) {
        let key = (model.organisation_id.clone(), model.name.clone());
        self.inner.write().models.insert(key, Arc::new(model));
    }

    pub fn grant(&self, key: ApiKeyId, model: ModelId) {
        self.inner
            .write()
            .grants
            .entry(key)
            .or_default()
            .push(model);
    }

    /// Sets the policy of one scope (`organisation`, `team`, `api_key`, `model`).
    pub fn set_policy(&self, scope: &'static str, id: impl Into<String>, policy: Policy) {
        self.inner
            .write()
            .policies
            .insert((scope, id.into()), policy);
    }

    /// Marks a key revoked (or not).
    pub fn set_revoked(&self, presented_key: &str, revoked: bool) {
        if let Some(principal) = self.inner.write().keys.get_mut(presented_key) {
            principal.revoked = revoked;
        }
    }
}

#[async_trait]
impl KeyStore for InMemoryKeyStore {
    async fn principal(&self, presented_key: &str) -> Result<Principal, AuthError> {
        self.inner
            .read()
            .keys
            .get(presented_key)
            .cloned()
            .ok_or(AuthError::Unknown)
    }

    async fn model(
        &self,
        organisation: &OrganisationId,
        name: &str,
    ) -> Result<Arc<ResolvedModel>, ResolveError> {
        self.inner
            .read()
            .models
            .get(&(organisation.clone(), name.to_owned()))
            .filter(|model| model.enabled)
            .cloned()
            .ok_or_else(|| ResolveError::ModelNotFound(name.to_owned()))
    }

    async fn has_model_grant(&self, key: &ApiKeyId, model: &ModelId) -> Result<bool, ResolveError> {
        Ok(self
            .inner
            .read()
            .grants
            .get(key)
            .is_some_and(|models| models.contains(model)))
    }

    async fn granted_models(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Arc<ResolvedModel>>, ResolveError> {
        let state = self.inner.read();
        let granted = state.grants.get(&principal.api_key_id);
        let mut models: Vec<_> = state
            .models
            .values()
            .filter(|m| m.enabled && m.organisation_id == principal.organisation_id)
            .filter(|m| granted.is_some_and(|g| g.contains(&m.id)))
            .cloned()
            .collect();
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    async fn policies(
        &self,
        principal: &Principal,
        model: &ModelId,
    ) -> Result<Arc<ScopedPolicies>, ResolveError> {
        let state = self.inner.read();
        let team = principal
            .team_id
            .as_ref()
            .filter(|_| principal.key_type == crate::domain::ApiKeyType::Team);
        let scopes = [
            ("organisation", Some(principal.organisation_id.as_str())),
            ("team", team.map(|t| t.as_str())),
            ("api_key", Some(principal.api_key_id.as_str())),
            ("model", Some(model.as_str())),
        ];
        Ok(Arc::new(
            scopes
                .into_iter()
                .filter_map(|(scope, id)| {
                    let id = id?;
                    let policy = state.policies.get(&(scope, id.to_owned()))?.clone();
                    Some(ScopedPolicy {
                        scope,
                        id: id.to_owned(),
                        policy,
                    })
                })
                .collect(),
        ))
    }
}
