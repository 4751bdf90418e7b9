//! `KeyStore`: resolves virtual keys, models and grants. Implementations cache, so the request hot
//! path does no database round trip on a warm cache.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::error::{AuthError, ResolveError};
use crate::ids::{ApiKeyId, McpServerId, ModelId, OrganisationId};
use crate::mcp_server::ResolvedMcpServer;
use crate::model::ResolvedModel;
use crate::principal::Principal;
use crate::rate_limit::{Policy, ScopedPolicies, ScopedPolicy};

/// Where the gateway looks up virtual keys, models, grants, MCP servers and policies.
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

    /// The MCP server of the organisation named by `reference` — its slug, else its id. `None`
    /// when there is none or it is disabled. Stores without MCP support know no servers.
    async fn mcp_server(
        &self,
        organisation: &OrganisationId,
        reference: &str,
    ) -> Result<Option<Arc<ResolvedMcpServer>>, ResolveError> {
        let _ = (organisation, reference);
        Ok(None)
    }

    /// Whether the key holds an explicit grant for the MCP server (a model grant never implies one).
    async fn has_mcp_grant(
        &self,
        key: &ApiKeyId,
        server: &McpServerId,
    ) -> Result<bool, ResolveError> {
        let _ = (key, server);
        Ok(false)
    }

    /// The rate-limit policies in force for the principal on an MCP server: organisation, team
    /// (TEAM keys only), API key and MCP server (`mcp_server`) scopes, each only when it has one.
    async fn mcp_server_policies(
        &self,
        principal: &Principal,
        server: &McpServerId,
    ) -> Result<Arc<ScopedPolicies>, ResolveError> {
        let _ = (principal, server);
        Ok(Arc::new(ScopedPolicies::new()))
    }
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
    mcp_servers: HashMap<OrganisationId, Vec<Arc<ResolvedMcpServer>>>,
    mcp_grants: HashMap<ApiKeyId, Vec<McpServerId>>,
    /// Servers present but switched off (not found by lookups).
    disabled_mcp_servers: Vec<McpServerId>,
}

impl InMemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a virtual key: requests presenting `presented_key` act as `principal`.
    pub fn insert_key(&self, presented_key: impl Into<String>, principal: Principal) {
        self.inner
            .write()
            .keys
            .insert(presented_key.into(), principal);
    }

    /// Adds (or replaces) a model, found by its organisation and name.
    pub fn insert_model(&self, model: ResolvedModel) {
        let key = (model.organisation_id.clone(), model.name.clone());
        self.inner.write().models.insert(key, Arc::new(model));
    }

    /// Lets `key` use `model`.
    pub fn grant(&self, key: ApiKeyId, model: ModelId) {
        self.inner
            .write()
            .grants
            .entry(key)
            .or_default()
            .push(model);
    }

    /// Adds (or replaces) an MCP server; `enabled = false` keeps it but makes it unfindable.
    pub fn insert_mcp_server(&self, server: ResolvedMcpServer, enabled: bool) {
        let mut state = self.inner.write();
        let servers = state
            .mcp_servers
            .entry(server.organisation_id.clone())
            .or_default();
        servers.retain(|s| s.id != server.id);
        let id = server.id.clone();
        servers.push(Arc::new(server));
        state.disabled_mcp_servers.retain(|s| *s != id);
        if !enabled {
            state.disabled_mcp_servers.push(id);
        }
    }

    /// Lets `key` use the MCP server `server`.
    pub fn grant_mcp(&self, key: ApiKeyId, server: McpServerId) {
        self.inner
            .write()
            .mcp_grants
            .entry(key)
            .or_default()
            .push(server);
    }

    /// Sets the policy of one scope (`organisation`, `team`, `api_key`, `model`, `mcp_server`).
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
        Ok(Arc::new(
            self.scoped_policies(principal, ("model", model.as_str())),
        ))
    }

    async fn mcp_server(
        &self,
        organisation: &OrganisationId,
        reference: &str,
    ) -> Result<Option<Arc<ResolvedMcpServer>>, ResolveError> {
        let state = self.inner.read();
        let servers = state.mcp_servers.get(organisation);
        let found = servers
            .and_then(|all| {
                all.iter()
                    .find(|s| s.slug == reference)
                    .or_else(|| all.iter().find(|s| s.id.as_str() == reference))
            })
            .filter(|s| !state.disabled_mcp_servers.contains(&s.id))
            .cloned();
        Ok(found)
    }

    async fn has_mcp_grant(
        &self,
        key: &ApiKeyId,
        server: &McpServerId,
    ) -> Result<bool, ResolveError> {
        Ok(self
            .inner
            .read()
            .mcp_grants
            .get(key)
            .is_some_and(|servers| servers.contains(server)))
    }

    async fn mcp_server_policies(
        &self,
        principal: &Principal,
        server: &McpServerId,
    ) -> Result<Arc<ScopedPolicies>, ResolveError> {
        Ok(Arc::new(self.scoped_policies(
            principal,
            ("mcp_server", server.as_str()),
        )))
    }
}

impl InMemoryKeyStore {
    /// Organisation, team (TEAM keys), key and `target` scopes, each only when it has a policy.
    fn scoped_policies(
        &self,
        principal: &Principal,
        target: (&'static str, &str),
    ) -> ScopedPolicies {
        let state = self.inner.read();
        let team = principal
            .team_id
            .as_ref()
            .filter(|_| principal.key_type == crate::domain::ApiKeyType::Team);
        let scopes = [
            ("organisation", Some(principal.organisation_id.as_str())),
            ("team", team.map(|t| t.as_str())),
            ("api_key", Some(principal.api_key_id.as_str())),
            (target.0, Some(target.1)),
        ];
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
            .collect()
    }
}
