//! [`SqlKeyStore`]: the database-backed [`KeyStore`] with an in-process cache in front.
//!
//! The request hot path resolves a virtual key, a model and a grant on every call; on a warm cache
//! none of them touches the database. Entries live for a positive TTL (default 60 s); "not found"
//! answers are remembered for a shorter negative TTL (default 5 s) so a client hammering with a bad
//! key or model name cannot turn every request into a query.
//!
//! Admin writes invalidate through [`CacheInvalidator`]: eviction is synchronous, and a lookup that
//! raced with an invalidation never stores its (possibly stale) answer — every cache insert and every
//! invalidation happen under one lock and a generation counter tells the loader that the world moved
//! while it was querying.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use odock_core::KeyStore;
//! use odock_store::{connect_in_memory, KeyStoreOptions, MasterKey, SqlKeyStore};
//!
//! let pool = connect_in_memory().await?;
//! let (master_key, _) = MasterKey::generate();
//! let store = SqlKeyStore::new(pool, Arc::new(master_key), KeyStoreOptions::default());
//! let principal = store.principal("sk_...").await;
//! # let _ = principal; Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use async_trait::async_trait;
use moka::sync::Cache;

use crate::fast_cache::FastCache;
use odock_core::rate_limit::{Policy, ScopedPolicies, ScopedPolicy};
use odock_core::{
    ApiKeyId, ApiKeyType, AuthError, CacheInvalidator, CacheKind, Capability, InvalidationCommand,
    KeyStore, ModelId, ModelPricing, ModelType, OrganisationId, Principal, ProviderId,
    ProviderKeyId, ProviderType, ResolveError, ResolvedModel, ResolvedProvider,
    ResolvedProviderKey, TeamId, UserId,
};
use parking_lot::Mutex;
use serde_json::Value;

use crate::crypto::MasterKey;
use crate::db::from_ms;
use crate::keys::hash_virtual_key;
use crate::mcp_resolution::McpCache;
use odock_core::{McpServerId, ResolvedMcpServer};

/// Cache sizing and lifetimes.
#[derive(Debug, Clone)]
pub struct KeyStoreOptions {
    /// How long a found principal, model or grant set is served from the cache.
    pub positive_ttl: Duration,
    /// How long "unknown key" / "model not found" answers are remembered.
    pub negative_ttl: Duration,
    /// Maximum entries per cache (principals, models, grant sets, and each negative cache).
    pub capacity: u64,
}

impl KeyStoreOptions {
    /// Default `positive_ttl`: an admin change the cache misses shows within a minute.
    pub const DEFAULT_POSITIVE_TTL: Duration = Duration::from_secs(60);
    /// Default `negative_ttl`: short, so a key just created works almost at once.
    pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);
    /// Default `capacity` per cache.
    pub const DEFAULT_CAPACITY: u64 = 10_000;
}

impl Default for KeyStoreOptions {
    fn default() -> Self {
        Self {
            positive_ttl: Self::DEFAULT_POSITIVE_TTL,
            negative_ttl: Self::DEFAULT_NEGATIVE_TTL,
            capacity: Self::DEFAULT_CAPACITY,
        }
    }
}

/// Cache hit and miss counts since start, for metrics. Negative-cache hits count as hits; a miss is
/// any lookup that went to the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from a cache.
    pub hits: u64,
    /// Lookups that went to the database.
    pub misses: u64,
}

type ModelKey = (OrganisationId, String);

/// A [`KeyStore`] over the SQL schema, cached. Cheap to share behind an `Arc`.
pub struct SqlKeyStore {
    pool: Db,
    master_key: Arc<MasterKey>,
    /// key hash → principal.
    principals: FastCache<String, Principal>,
    /// key hashes recently found unknown.
    unknown_keys: FastCache<String, ()>,
    models: FastCache<ModelKey, Arc<ResolvedModel>>,
    missing_models: FastCache<ModelKey, ()>,
    grants: FastCache<ApiKeyId, Arc<HashSet<ModelId>>>,
    /// (key, model) → the rate-limit policies of every scope.
    policies: FastCache<(ApiKeyId, ModelId), Arc<ScopedPolicies>>,
    /// MCP servers, MCP grants and MCP-server policies.
    mcp: McpCache,
    /// Serialises cache inserts with invalidations and holds the key id → hashes index.
    guard: Mutex<KeyIndex>,
    /// Bumped (under `guard`) by every invalidation; a loader that sees it move does not cache.
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    capacity: u64,
}

impl std::fmt::Debug for SqlKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlKeyStore")
            .field("principals", &self.principals.entry_count())
            .field("models", &self.models.entry_count())
            .field("grants", &self.grants.entry_count())
            .field("stats", &self.cache_stats())
            .finish_non_exhaustive()
    }
}

/// Which key hashes are cached for each key id, so `ApiKey(id)` can evict by id. Entries are only
/// removed by invalidation or by pruning hashes the principal cache no longer holds (never a live
/// one), so the index can over-approximate but never miss.
#[derive(Default)]
struct KeyIndex {
    hashes: HashMap<ApiKeyId, HashSet<String>>,
}

impl SqlKeyStore {
    /// A key store on `pool`, opening provider keys and MCP credentials with `master_key`.
    pub fn new(pool: Db, master_key: Arc<MasterKey>, options: KeyStoreOptions) -> Self {
        fn cache<K, V>(capacity: u64, ttl: Duration) -> FastCache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(foldhash::fast::RandomState::default())
        }
        let KeyStoreOptions {
            positive_ttl,
            negative_ttl,
            capacity,
        } = options;
        Self {
            pool,
            master_key,
            principals: cache(capacity, positive_ttl),
            unknown_keys: cache(capacity, negative_ttl),
            models: cache(capacity, positive_ttl),
            missing_models: cache(capacity, negative_ttl),
            grants: cache(capacity, positive_ttl),
            policies: cache(capacity, positive_ttl),
            mcp: McpCache::new(capacity, positive_ttl, negative_ttl),
            guard: Mutex::new(KeyIndex::default()),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            capacity,
        }
    }

    /// Hit and miss counters since start.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Organisation, team (TEAM keys), key and model policies; unparseable documents are logged and
    /// skipped (the admin API validates them on the way in).
    async fn load_policies(
        &self,
        principal: &Principal,
        model: &ModelId,
    ) -> Result<ScopedPolicies, sqlx::Error> {
        let owners: Option<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT o.policies, CASE WHEN k.type = 'TEAM' THEN t.policies END, k.policies \
             FROM api_keys k JOIN organisations o ON o.id = k.organisation_id \
             LEFT JOIN teams t ON t.id = k.team_id WHERE k.id = $1",
        )
        .bind(principal.api_key_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let model_policies: Option<Option<String>> =
            sqlx::query_scalar("SELECT policies FROM models WHERE id = $1")
                .bind(model.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let (organisation, team, key) = owners.unwrap_or_default();
        let team_id = principal
            .team_id
            .as_ref()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        let scopes = [
            (
                "organisation",
                principal.organisation_id.as_str().to_owned(),
                organisation,
            ),
            ("team", team_id, team),
            ("api_key", principal.api_key_id.as_str().to_owned(), key),
            ("model", model.as_str().to_owned(), model_policies.flatten()),
        ];
        Ok(scopes
            .into_iter()
            .filter_map(|(scope, id, text)| {
                let text = text?;
                match serde_json::from_str::<Policy>(&text) {
                    Ok(policy) if policy != Policy::default() => {
                        Some(ScopedPolicy { scope, id, policy })
                    }
                    Ok(_) => None,
                    Err(error) => {
                        tracing::warn!(scope, id, %error, "ignoring an unparseable policy");
                        None
                    }
                }
            })
            .collect())
    }

    fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a miss and returns the generation the load starts from.
    fn miss(&self) -> u64 {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.generation.load(Ordering::SeqCst)
    }

    /// Runs `insert` under the guard unless an invalidation happened since `generation`.
    fn insert_if_current(&self, generation: u64, insert: impl FnOnce(&mut KeyIndex)) {
        let mut index = self.guard.lock();
        if self.generation.load(Ordering::SeqCst) == generation {
            insert(&mut index);
        }
    }

    fn cache_principal(&self, generation: u64, hash: String, principal: &Principal) {
        self.insert_if_current(generation, |index| {
            let prune_above = self.capacity.max(1024).saturating_mul(2);
            if index.hashes.len() as u64 > prune_above {
                index.hashes.retain(|_, hashes| {
                    hashes.retain(|hash| self.principals.contains_key(hash));
                    !hashes.is_empty()
                });
            }
            index
                .hashes
                .entry(principal.api_key_id.clone())
                .or_default()
                .insert(hash.clone());
            self.principals.insert(hash, principal.clone());
        });
    }

    async fn load_principal(&self, hash: &str) -> Result<Option<Principal>, AuthError> {
        let row: Option<PrincipalRow> = sqlx::query_as(
            "SELECT k.id, k.organisation_id, k.type AS key_type, k.team_id, k.user_id,
                    k.expires_at, k.revoked
             FROM api_keys k
             JOIN organisations o ON o.id = k.organisation_id
             WHERE k.key_hash = $1 AND lower(o.status) = 'active'",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| {
            tracing::error!(%error, "virtual key lookup failed");
            AuthError::Unavailable
        })?;
        let Some(row) = row else { return Ok(None) };
        let key_type: ApiKeyType = row.key_type.parse().map_err(|error| {
            tracing::error!(api_key_id = %row.id, %error, "API key row has an invalid type");
            AuthError::Unavailable
        })?;
        Ok(Some(Principal {
            api_key_id: ApiKeyId::new(row.id),
            organisation_id: OrganisationId::new(row.organisation_id),
            key_type,
            team_id: row.team_id.map(TeamId::new),
            user_id: row.user_id.map(UserId::new),
            expires_at: row.expires_at.map(from_ms),
            revoked: row.revoked != 0,
        }))
    }

    async fn load_model(
        &self,
        organisation: &OrganisationId,
        name: &str,
    ) -> Result<Option<ResolvedModel>, ResolveError> {
        let unavailable = |error: sqlx::Error| {
            tracing::error!(%error, organisation_id = %organisation, "model lookup failed");
            ResolveError::LookupUnavailable
        };
        let row: Option<ModelRow> = sqlx::query_as(
            "SELECT m.id, m.organisation_id, m.name, m.slug, m.type AS model_type, m.capabilities,
                    m.pricing, m.config, m.enabled, m.provider_key_id,
                    p.id AS provider_id, p.name AS provider_name, p.type AS provider_type,
                    p.base_url, p.timeout_ms, p.enabled AS provider_enabled,
                    p.config AS provider_config
             FROM models m
             JOIN providers p ON p.id = m.provider_id
             WHERE m.organisation_id = $1 AND m.name = $2",
        )
        .bind(organisation.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        let Some(row) = row.filter(|row| row.enabled != 0) else {
            return Ok(None);
        };

        // A model naming its key uses it; otherwise every active key of the provider is its pool
        // (rotated per request by the dispatch), the oldest first.
        let key_rows: Vec<ProviderKeyRow> = match &row.provider_key_id {
            Some(key_id) => {
                sqlx::query_as("SELECT id, envelope, revoked FROM provider_api_keys WHERE id = $1")
                    .bind(key_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?
                    .into_iter()
                    .collect()
            }
            None => sqlx::query_as(
                "SELECT id, envelope, revoked FROM provider_api_keys
                 WHERE provider_id = $1 AND revoked = 0
                 ORDER BY created_at ASC, id ASC LIMIT 64",
            )
            .bind(&row.provider_id)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?,
        };
        let found = key_rows.len();
        let mut keys = Vec::with_capacity(found);
        for key in key_rows {
            match self.master_key.open(&key.envelope) {
                Ok(secret) => keys.push(ResolvedProviderKey {
                    id: ProviderKeyId::new(key.id),
                    secret,
                    revoked: key.revoked != 0,
                }),
                Err(error) => tracing::error!(
                    provider_key_id = %key.id,
                    model_id = %row.id,
                    %error,
                    "cannot decrypt provider API key"
                ),
            }
        }
        if found > 0 && keys.is_empty() {
            return Err(ResolveError::ProviderKeyNotConfigured);
        }
        let provider_key = keys.first().cloned();
        let key_pool: Arc<[ResolvedProviderKey]> =
            if row.provider_key_id.is_none() && keys.len() > 1 {
                keys.into()
            } else {
                Arc::default()
            };
        row.into_model(provider_key, key_pool).map(Some)
    }

    async fn load_grants(&self, key: &ApiKeyId) -> Result<HashSet<ModelId>, ResolveError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT model_id FROM api_key_model_access WHERE api_key_id = $1")
                .bind(key.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(|error| {
                    tracing::error!(%error, api_key_id = %key, "model grant lookup failed");
                    ResolveError::AccessUnavailable
                })?;
        Ok(rows.into_iter().map(|(id,)| ModelId::new(id)).collect())
    }

    fn clear_principals(&self, index: &mut KeyIndex) {
        index.hashes.clear();
        self.principals.invalidate_all();
        self.unknown_keys.invalidate_all();
    }

    fn clear_models(&self) {
        self.models.invalidate_all();
        self.missing_models.invalidate_all();
    }
}

#[async_trait]
impl KeyStore for SqlKeyStore {
    async fn principal(&self, presented_key: &str) -> Result<Principal, AuthError> {
        let hash = hash_virtual_key(presented_key);
        if let Some(principal) = self.principals.get(&hash) {
            self.hit();
            return Ok(principal);
        }
        if self.unknown_keys.contains_key(&hash) {
            self.hit();
            return Err(AuthError::Unknown);
        }
        let generation = self.miss();
        match self.load_principal(&hash).await? {
            Some(principal) => {
                self.cache_principal(generation, hash, &principal);
                Ok(principal)
            }
            None => {
                self.insert_if_current(generation, |_| self.unknown_keys.insert(hash, ()));
                Err(AuthError::Unknown)
            }
        }
    }

    async fn model(
        &self,
        organisation: &OrganisationId,
        name: &str,
    ) -> Result<Arc<ResolvedModel>, ResolveError> {
        let key: ModelKey = (organisation.clone(), name.to_owned());
        if let Some(model) = self.models.get(&key) {
            self.hit();
            return Ok(model);
        }
        if self.missing_models.contains_key(&key) {
            self.hit();
            return Err(ResolveError::ModelNotFound(name.to_owned()));
        }
        let generation = self.miss();
        match self.load_model(organisation, name).await? {
            Some(model) => {
                let model = Arc::new(model);
                self.insert_if_current(generation, |_| self.models.insert(key, model.clone()));
                Ok(model)
            }
            None => {
                self.insert_if_current(generation, |_| self.missing_models.insert(key, ()));
                Err(ResolveError::ModelNotFound(name.to_owned()))
            }
        }
    }

    async fn has_model_grant(&self, key: &ApiKeyId, model: &ModelId) -> Result<bool, ResolveError> {
        if let Some(grants) = self.grants.get(key) {
            self.hit();
            return Ok(grants.contains(model));
        }
        let generation = self.miss();
        let grants = Arc::new(self.load_grants(key).await?);
        let granted = grants.contains(model);
        self.insert_if_current(generation, |_| self.grants.insert(key.clone(), grants));
        Ok(granted)
    }

    async fn policies(
        &self,
        principal: &Principal,
        model: &ModelId,
    ) -> Result<Arc<ScopedPolicies>, ResolveError> {
        let key = (principal.api_key_id.clone(), model.clone());
        if let Some(policies) = self.policies.get(&key) {
            self.hit();
            return Ok(policies);
        }
        let generation = self.miss();
        let policies = Arc::new(
            self.load_policies(principal, model)
                .await
                .map_err(|error| {
                    tracing::error!(%error, "policy lookup failed");
                    ResolveError::LookupUnavailable
                })?,
        );
        self.insert_if_current(generation, |_| self.policies.insert(key, policies.clone()));
        Ok(policies)
    }

    async fn mcp_server(
        &self,
        organisation: &OrganisationId,
        reference: &str,
    ) -> Result<Option<Arc<ResolvedMcpServer>>, ResolveError> {
        self.mcp
            .server(&self.pool, &self.master_key, organisation, reference)
            .await
    }

    async fn has_mcp_grant(
        &self,
        key: &ApiKeyId,
        server: &McpServerId,
    ) -> Result<bool, ResolveError> {
        self.mcp.has_grant(&self.pool, key, server).await
    }

    async fn mcp_server_policies(
        &self,
        principal: &Principal,
        server: &McpServerId,
    ) -> Result<Arc<ScopedPolicies>, ResolveError> {
        // The owner scopes come from the model loader given no model (no model row matches '').
        let owners = async {
            self.load_policies(principal, &ModelId::new(""))
                .await
                .map_err(|error| {
                    tracing::error!(%error, "policy lookup failed");
                    ResolveError::LookupUnavailable
                })
        };
        self.mcp
            .policies(&self.pool, &principal.api_key_id, server, owners)
            .await
    }

    /// Model-list routes are rare: the names come from one query, each model from the cache.
    async fn granted_models(
        &self,
        principal: &Principal,
    ) -> Result<Vec<Arc<ResolvedModel>>, ResolveError> {
        let names: Vec<(String,)> = sqlx::query_as(
            "SELECT m.name FROM api_key_model_access a JOIN models m ON m.id = a.model_id \
             WHERE a.api_key_id = $1 AND m.organisation_id = $2 AND m.enabled = 1 ORDER BY m.name",
        )
        .bind(principal.api_key_id.as_str())
        .bind(principal.organisation_id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|error| {
            tracing::error!(%error, "granted model lookup failed");
            ResolveError::AccessUnavailable
        })?;
        let mut models = Vec::with_capacity(names.len());
        for (name,) in names {
            match self.model(&principal.organisation_id, &name).await {
                Ok(model) => models.push(model),
                // Unusable rows (e.g. a key sealed under another master key) are left out of lists.
                Err(ResolveError::ModelNotFound(_) | ResolveError::ProviderKeyNotConfigured) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(models)
    }
}

impl CacheInvalidator for SqlKeyStore {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.mcp.invalidate(command);
        let mut index = self.guard.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Policies are few and cheap to reload: any change to a scope that carries one clears them.
        if matches!(
            command.kind,
            CacheKind::ApiKey | CacheKind::Model | CacheKind::Organisation | CacheKind::Team
        ) {
            self.policies.invalidate_all();
        }
        match command.kind {
            CacheKind::ApiKey => {
                let id = ApiKeyId::new(command.id.as_str());
                for hash in index.hashes.remove(&id).unwrap_or_default() {
                    self.principals.invalidate(&hash);
                }
                self.grants.invalidate(&id);
                // A rotated or re-created key may have been remembered as unknown.
                self.unknown_keys.invalidate_all();
            }
            CacheKind::Grant => self.grants.invalidate(&ApiKeyId::new(command.id.as_str())),
            CacheKind::Model | CacheKind::Provider | CacheKind::ProviderKey => self.clear_models(),
            CacheKind::Organisation | CacheKind::Team => {
                self.clear_principals(&mut index);
                self.clear_models();
            }
            CacheKind::McpServer | CacheKind::Budget | CacheKind::Quota => {}
        }
    }
}

#[derive(sqlx::FromRow)]
struct PrincipalRow {
    id: String,
    organisation_id: String,
    key_type: String,
    team_id: Option<String>,
    user_id: Option<String>,
    expires_at: Option<i64>,
    revoked: i64,
}

#[derive(sqlx::FromRow)]
struct ProviderKeyRow {
    id: String,
    envelope: String,
    revoked: i64,
}

#[derive(sqlx::FromRow)]
struct ModelRow {
    id: String,
    organisation_id: String,
    name: String,
    slug: String,
    model_type: String,
    capabilities: String,
    pricing: Option<String>,
    config: Option<String>,
    enabled: i64,
    provider_key_id: Option<String>,
    provider_id: String,
    provider_name: String,
    provider_type: String,
    base_url: String,
    timeout_ms: Option<i64>,
    provider_enabled: i64,
    provider_config: Option<String>,
}

impl ModelRow {
    /// Maps the row; malformed stored data is logged (with the model id) and reported as the
    /// lookup being unavailable rather than guessed at.
    fn into_model(
        self,
        provider_key: Option<ResolvedProviderKey>,
        key_pool: Arc<[ResolvedProviderKey]>,
    ) -> Result<ResolvedModel, ResolveError> {
        let invalid = |what: &str, error: &dyn std::fmt::Display| {
            tracing::error!(model_id = %self.id, %error, "model row has invalid {what}");
            ResolveError::LookupUnavailable
        };
        let model_type: ModelType = self.model_type.parse().map_err(|e| invalid("type", &e))?;
        let provider_type: ProviderType = self
            .provider_type
            .parse()
            .map_err(|e| invalid("provider type", &e))?;
        let capability_names: Vec<String> =
            serde_json::from_str(&self.capabilities).map_err(|e| invalid("capabilities", &e))?;
        let capabilities = capability_names
            .iter()
            .filter_map(|name| match name.parse::<Capability>() {
                Ok(capability) => Some(capability),
                Err(error) => {
                    tracing::warn!(model_id = %self.id, %error, "ignoring unknown model capability");
                    None
                }
            })
            .collect();
        let pricing: ModelPricing = match self.pricing.as_deref() {
            None => ModelPricing::default(),
            Some(text) => serde_json::from_str::<Option<ModelPricing>>(text)
                .map_err(|e| invalid("pricing", &e))?
                .unwrap_or_default(),
        };
        let config = parse_json(self.config.as_deref()).map_err(|e| invalid("config", &e))?;
        let provider_config = parse_json(self.provider_config.as_deref())
            .map_err(|e| invalid("provider config", &e))?;
        let max_output_tokens = config.get("maxOutputTokens").and_then(Value::as_u64);
        Ok(ResolvedModel {
            id: ModelId::new(self.id.as_str()),
            organisation_id: OrganisationId::new(self.organisation_id.as_str()),
            name: self.name.clone(),
            slug: self.slug.clone(),
            model_type,
            capabilities,
            enabled: self.enabled != 0,
            provider: ResolvedProvider {
                id: ProviderId::new(self.provider_id.as_str()),
                name: self.provider_name.clone(),
                provider_type,
                base_url: self.base_url.trim_end_matches('/').to_owned(),
                timeout: self
                    .timeout_ms
                    .and_then(|ms| u64::try_from(ms).ok())
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis),
                enabled: self.provider_enabled != 0,
                config: provider_config,
            },
            provider_key,
            key_pool,
            pricing: Arc::new(pricing),
            max_output_tokens,
            config,
        })
    }
}

/// A nullable JSON column: absent → `Value::Null`.
fn parse_json(text: Option<&str>) -> Result<Value, serde_json::Error> {
    text.map_or(Ok(Value::Null), serde_json::from_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_virtual_key;

    struct Fixture {
        pool: Db,
        master_key: Arc<MasterKey>,
        store: SqlKeyStore,
    }

    async fn fixture() -> Fixture {
        let pool = crate::testing::database().await;
        let (master_key, _) = MasterKey::generate();
        let master_key = Arc::new(master_key);
        let store = SqlKeyStore::new(pool.clone(), master_key.clone(), KeyStoreOptions::default());
        sqlx::query(
            "INSERT INTO organisations (id, name, slug, created_at, updated_at)
             VALUES ('org1', 'Acme', 'acme', 0, 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        Fixture {
            pool,
            master_key,
            store,
        }
    }

    async fn insert_key(
        pool: &Db,
        id: &str,
        presented: &str,
        revoked: bool,
        expires_at: Option<i64>,
    ) {
        sqlx::query(
            "INSERT INTO api_keys (id, organisation_id, name, type, key_hash, preview, expires_at,
                                   revoked, created_at, updated_at)
             VALUES ($1, 'org1', $2, 'ORGANISATION', $3, 'sk_…', $4, $5, 0, 0)",
        )
        .bind(id)
        .bind(id)
        .bind(hash_virtual_key(presented))
        .bind(expires_at)
        .bind(i64::from(revoked))
        .execute(pool)
        .await
        .unwrap();
    }

    async fn exec(pool: &Db, sql: &str) {
        sqlx::query(sql).execute(pool).await.unwrap();
    }

    #[tokio::test]
    async fn principal_found_unknown_revoked_and_expired() {
        let f = fixture().await;
        let (live, revoked, expired) = (
            generate_virtual_key(),
            generate_virtual_key(),
            generate_virtual_key(),
        );
        insert_key(&f.pool, "k1", &live, false, None).await;
        insert_key(&f.pool, "k2", &revoked, true, None).await;
        insert_key(&f.pool, "k3", &expired, false, Some(1_000)).await;

        let principal = f.store.principal(&live).await.unwrap();
        assert_eq!(principal.api_key_id.as_str(), "k1");
        assert_eq!(principal.organisation_id.as_str(), "org1");
        assert_eq!(principal.key_type, ApiKeyType::Organisation);
        assert!(!principal.revoked);
        assert_eq!(principal.expires_at, None);

        assert!(f.store.principal(&revoked).await.unwrap().revoked);
        let expired = f.store.principal(&expired).await.unwrap();
        assert_eq!(expired.expires_at, Some(from_ms(1_000)));
        assert!(expired.is_expired(chrono::Utc::now()));

        assert_eq!(f.store.principal("sk_nope").await, Err(AuthError::Unknown));
        // The second unknown lookup is answered by the negative cache.
        let before = f.store.cache_stats();
        assert_eq!(f.store.principal("sk_nope").await, Err(AuthError::Unknown));
        assert_eq!(f.store.cache_stats().hits, before.hits + 1);
        assert_eq!(f.store.cache_stats().misses, before.misses);
    }

    #[tokio::test]
    async fn keys_of_inactive_organisations_are_unknown() {
        let f = fixture().await;
        let key = generate_virtual_key();
        insert_key(&f.pool, "k1", &key, false, None).await;
        exec(&f.pool, "UPDATE organisations SET status = 'suspended'").await;
        assert_eq!(f.store.principal(&key).await, Err(AuthError::Unknown));
        exec(&f.pool, "UPDATE organisations SET status = 'active'").await;
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::Organisation, "org1"));
        assert!(f.store.principal(&key).await.is_ok());
    }

    #[tokio::test]
    async fn warm_cache_serves_without_the_database() {
        let f = fixture().await;
        let key = generate_virtual_key();
        insert_key(&f.pool, "k1", &key, false, None).await;
        seed_model(&f, "gpt", true).await;
        exec(
            &f.pool,
            "INSERT INTO api_key_model_access VALUES ('k1', 'm1', 0)",
        )
        .await;
        let org = OrganisationId::new("org1");

        f.store.principal(&key).await.unwrap();
        f.store.model(&org, "gpt").await.unwrap();
        f.store
            .has_model_grant(&ApiKeyId::new("k1"), &ModelId::new("m1"))
            .await
            .unwrap();
        assert_eq!(f.store.cache_stats(), CacheStats { hits: 0, misses: 3 });

        f.pool.close().await;
        assert_eq!(
            f.store.principal(&key).await.unwrap().api_key_id.as_str(),
            "k1"
        );
        assert_eq!(f.store.model(&org, "gpt").await.unwrap().id.as_str(), "m1");
        assert!(f
            .store
            .has_model_grant(&ApiKeyId::new("k1"), &ModelId::new("m1"))
            .await
            .unwrap());
        assert_eq!(f.store.cache_stats(), CacheStats { hits: 3, misses: 3 });

        // A cold lookup now fails as "unavailable", not "unknown".
        assert_eq!(
            f.store.principal("sk_other").await,
            Err(AuthError::Unavailable)
        );
        assert_eq!(
            f.store.model(&org, "other").await.unwrap_err(),
            ResolveError::LookupUnavailable
        );
        assert_eq!(
            f.store
                .has_model_grant(&ApiKeyId::new("k2"), &ModelId::new("m1"))
                .await,
            Err(ResolveError::AccessUnavailable)
        );
    }

    #[tokio::test]
    async fn api_key_invalidation_makes_changes_visible() {
        let f = fixture().await;
        let key = generate_virtual_key();
        insert_key(&f.pool, "k1", &key, false, None).await;
        assert!(!f.store.principal(&key).await.unwrap().revoked);

        exec(&f.pool, "UPDATE api_keys SET revoked = 1 WHERE id = 'k1'").await;
        // Without invalidation the cached value stays.
        assert!(!f.store.principal(&key).await.unwrap().revoked);
        // Other kinds do not touch principals.
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::Model, "m1"));
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::ApiKey, "k-other"));
        assert!(!f.store.principal(&key).await.unwrap().revoked);

        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::ApiKey, "k1"));
        assert!(f.store.principal(&key).await.unwrap().revoked);
    }

    #[tokio::test]
    async fn rotation_with_invalidation_switches_keys_immediately() {
        let f = fixture().await;
        let (old, new) = (generate_virtual_key(), generate_virtual_key());
        insert_key(&f.pool, "k1", &old, false, None).await;
        assert!(f.store.principal(&old).await.is_ok());
        // The new key was tried before the rotation and is remembered as unknown.
        assert_eq!(f.store.principal(&new).await, Err(AuthError::Unknown));

        sqlx::query("UPDATE api_keys SET key_hash = $1, rotations = rotations + 1 WHERE id = 'k1'")
            .bind(hash_virtual_key(&new))
            .execute(&f.pool)
            .await
            .unwrap();
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::ApiKey, "k1"));

        assert_eq!(f.store.principal(&old).await, Err(AuthError::Unknown));
        assert_eq!(
            f.store.principal(&new).await.unwrap().api_key_id.as_str(),
            "k1"
        );
    }

    async fn seed_model(f: &Fixture, name: &str, enabled: bool) {
        sqlx::query(
            "INSERT INTO providers (id, organisation_id, name, type, base_url, timeout_ms,
                                    config, created_at, updated_at)
             VALUES ('p1', 'org1', 'OpenAI', 'OPENAI', 'https://api.openai.com/v1/', 30000,
                     '{\"org\":\"x\"}', 0, 0) ON CONFLICT (id) DO NOTHING",
        )
        .execute(&f.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO provider_api_keys (id, provider_id, organisation_id, name,
                                            envelope, preview, created_at, updated_at)
             VALUES ('pk1', 'p1', 'org1', 'main', $1, 'sk-…1234', 1, 1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(f.master_key.seal("sk-upstream-1234").unwrap())
        .execute(&f.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO models (id, organisation_id, name, slug, type, provider_id, capabilities,
                                 pricing, config, enabled, created_at, updated_at)
             VALUES ($1, 'org1', $2, 'gpt-4o', 'chat', 'p1', '[\"vision\",\"tool_use\"]',
                     '{\"input\":{\"text\":2000000000},\"output\":{\"text\":8000000000},\"cachedInputDiscountPercent\":50}',
                     '{\"maxOutputTokens\":1024}', $3, 0, 0)",
        )
        .bind(if name == "gpt" { "m1".to_owned() } else { format!("m-{name}") })
        .bind(name)
        .bind(i64::from(enabled))
        .execute(&f.pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn model_resolution_decrypts_the_key_and_maps_everything() {
        let f = fixture().await;
        seed_model(&f, "gpt", true).await;
        let org = OrganisationId::new("org1");
        let model = f.store.model(&org, "gpt").await.unwrap();

        assert_eq!(model.id.as_str(), "m1");
        assert_eq!(model.slug, "gpt-4o");
        assert_eq!(model.model_type, ModelType::Chat);
        assert_eq!(
            model.capabilities,
            vec![Capability::Vision, Capability::ToolUse]
        );
        assert_eq!(model.max_output_tokens, Some(1024));
        assert_eq!(model.pricing.input.text, 2_000_000_000);
        assert_eq!(model.pricing.output.text, 8_000_000_000);
        assert_eq!(model.pricing.cached_input_discount_percent, 50);
        assert_eq!(model.provider.provider_type, ProviderType::OpenAi);
        assert_eq!(model.provider.base_url, "https://api.openai.com/v1");
        assert_eq!(model.provider.timeout, Some(Duration::from_secs(30)));
        assert_eq!(model.provider.config["org"], "x");
        let key = model.provider_key.as_ref().unwrap();
        assert_eq!(key.id.as_str(), "pk1");
        assert_eq!(key.secret.expose(), "sk-upstream-1234");
        assert!(!key.revoked);

        // An explicit provider_key_id wins over the provider's oldest key, and a revoked key is
        // returned as revoked (the resolution layer refuses it).
        sqlx::query(
            "INSERT INTO provider_api_keys (id, provider_id, organisation_id, name, envelope,
                                            preview, revoked, created_at, updated_at)
             VALUES ('pk2', 'p1', 'org1', 'second', $1, 'sk-…9999', 1, 5, 5)",
        )
        .bind(f.master_key.seal("sk-upstream-9999").unwrap())
        .execute(&f.pool)
        .await
        .unwrap();
        exec(
            &f.pool,
            "UPDATE models SET provider_key_id = 'pk2', pricing = NULL WHERE id = 'm1'",
        )
        .await;
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::Model, "m1"));
        let model = f.store.model(&org, "gpt").await.unwrap();
        let key = model.provider_key.as_ref().unwrap();
        assert_eq!(
            (key.id.as_str(), key.secret.expose(), key.revoked),
            ("pk2", "sk-upstream-9999", true)
        );
        assert_eq!(*model.pricing, ModelPricing::default());

        // With no explicit key and every provider key revoked, there is no key.
        exec(&f.pool, "UPDATE models SET provider_key_id = NULL").await;
        exec(&f.pool, "UPDATE provider_api_keys SET revoked = 1").await;
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::ProviderKey, "pk1"));
        assert!(f
            .store
            .model(&org, "gpt")
            .await
            .unwrap()
            .provider_key
            .is_none());
    }

    #[tokio::test]
    async fn undecryptable_provider_key_is_not_configured() {
        let f = fixture().await;
        seed_model(&f, "gpt", true).await;
        let (other, _) = MasterKey::generate();
        sqlx::query("UPDATE provider_api_keys SET envelope = $1")
            .bind(other.seal("sk-upstream").unwrap())
            .execute(&f.pool)
            .await
            .unwrap();
        assert_eq!(
            f.store
                .model(&OrganisationId::new("org1"), "gpt")
                .await
                .unwrap_err(),
            ResolveError::ProviderKeyNotConfigured
        );
    }

    #[tokio::test]
    async fn disabled_and_missing_models_are_not_found_and_negatively_cached() {
        let f = fixture().await;
        seed_model(&f, "off", false).await;
        let org = OrganisationId::new("org1");
        assert_eq!(
            f.store.model(&org, "off").await.unwrap_err(),
            ResolveError::ModelNotFound("off".into())
        );
        assert_eq!(
            f.store.model(&org, "nope").await.unwrap_err(),
            ResolveError::ModelNotFound("nope".into())
        );
        assert_eq!(
            f.store
                .model(&OrganisationId::new("org2"), "off")
                .await
                .unwrap_err(),
            ResolveError::ModelNotFound("off".into())
        );

        exec(&f.pool, "UPDATE models SET enabled = 1").await;
        // Still remembered as missing until invalidated.
        assert!(f.store.model(&org, "off").await.is_err());
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::Model, "m-off"));
        assert!(f.store.model(&org, "off").await.unwrap().enabled);
    }

    #[tokio::test]
    async fn grants_are_cached_per_key_and_invalidated_by_grant_commands() {
        let f = fixture().await;
        let key = generate_virtual_key();
        insert_key(&f.pool, "k1", &key, false, None).await;
        seed_model(&f, "gpt", true).await;
        seed_model(&f, "other", true).await;
        exec(
            &f.pool,
            "INSERT INTO api_key_model_access VALUES ('k1', 'm1', 0)",
        )
        .await;
        let (k1, m1, m2) = (
            ApiKeyId::new("k1"),
            ModelId::new("m1"),
            ModelId::new("m-other"),
        );

        assert!(f.store.has_model_grant(&k1, &m1).await.unwrap());
        assert!(!f.store.has_model_grant(&k1, &m2).await.unwrap());
        assert!(!f
            .store
            .has_model_grant(&ApiKeyId::new("k2"), &m1)
            .await
            .unwrap());

        exec(
            &f.pool,
            "INSERT INTO api_key_model_access VALUES ('k1', 'm-other', 0)",
        )
        .await;
        assert!(!f.store.has_model_grant(&k1, &m2).await.unwrap(), "cached");
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::Grant, "k1"));
        assert!(f.store.has_model_grant(&k1, &m2).await.unwrap());

        exec(
            &f.pool,
            "DELETE FROM api_key_model_access WHERE model_id = 'm1'",
        )
        .await;
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::ApiKey, "k1"));
        assert!(!f.store.has_model_grant(&k1, &m1).await.unwrap());
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_not_cached() {
        let f = fixture().await;
        let key = generate_virtual_key();
        insert_key(&f.pool, "k1", &key, false, None).await;
        let hash = hash_virtual_key(&key);
        let generation = f.store.miss();
        let stale = f.store.load_principal(&hash).await.unwrap().unwrap();
        f.store
            .invalidate(&InvalidationCommand::new(CacheKind::ApiKey, "k1"));
        f.store.cache_principal(generation, hash.clone(), &stale);
        assert!(f.store.principals.get(&hash).is_none());
    }

    #[tokio::test]
    async fn key_index_is_pruned_without_losing_live_entries() {
        let pool = crate::testing::database().await;
        let (master_key, _) = MasterKey::generate();
        let options = KeyStoreOptions {
            capacity: 4,
            ..KeyStoreOptions::default()
        };
        let store = SqlKeyStore::new(pool, Arc::new(master_key), options);
        let principal = |id: &str| Principal {
            api_key_id: ApiKeyId::new(id),
            organisation_id: OrganisationId::new("org1"),
            key_type: ApiKeyType::Organisation,
            team_id: None,
            user_id: None,
            expires_at: None,
            revoked: false,
        };
        for i in 0..3_000 {
            store.cache_principal(0, format!("h{i}"), &principal(&format!("k{i}")));
            store.principals.invalidate(&format!("h{i}"));
        }
        store.cache_principal(0, "live".into(), &principal("k-live"));
        assert!(store.guard.lock().hashes.len() <= 2_100);
        assert!(store
            .guard
            .lock()
            .hashes
            .contains_key(&ApiKeyId::new("k-live")));
        store.invalidate(&InvalidationCommand::new(CacheKind::ApiKey, "k-live"));
        assert!(store.principals.get("live").is_none());
    }
}
