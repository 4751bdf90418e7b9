//! [`SqlRoutingPolicySource`]: the keys' routing documents (`api_keys.routing`) behind the
//! organisation's `routingEnabled` switch, cached per key.
//!
//! A warm lookup is one cache hit (keys without a policy or in an organisation with routing off
//! are cached too, as "no policy"). Admin writes evict through [`CacheInvalidator`]: the key's
//! entry when the key changes (its routing document is written with `CacheKind::ApiKey`), every
//! entry when an organisation (the switch) or a model (candidate names) changes. As in
//! [`SqlKeyStore`](crate::SqlKeyStore), a load that raced with an invalidation is not cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use moka::sync::Cache;
use odock_core::routing::{RoutingDocument, RoutingPolicy, RoutingPolicySource};
use odock_core::{
    ApiKeyId, CacheInvalidator, CacheKind, InvalidationCommand, ModelType, Principal, ResolveError,
};
use parking_lot::Mutex;

use crate::db::Db;
use crate::fast_cache::FastCache;
use crate::key_store::KeyStoreOptions;

/// A key's policies, by model type (empty: no routing).
type KeyRouting = Arc<Vec<Arc<RoutingPolicy>>>;

/// [`RoutingPolicySource`] on the database: keys' routing documents, cached per key.
pub struct SqlRoutingPolicySource {
    pool: Db,
    cache: FastCache<ApiKeyId, KeyRouting>,
    guard: Mutex<()>,
    generation: AtomicU64,
}

impl std::fmt::Debug for SqlRoutingPolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlRoutingPolicySource")
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl SqlRoutingPolicySource {
    /// A source on `pool`, cached with the key store's capacity and positive TTL.
    pub fn new(pool: Db, options: &KeyStoreOptions) -> Self {
        Self {
            pool,
            cache: Cache::builder()
                .max_capacity(options.capacity)
                .time_to_live(options.positive_ttl)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            guard: Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    async fn load(&self, key: &ApiKeyId) -> Result<Vec<Arc<RoutingPolicy>>, sqlx::Error> {
        let row: Option<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT k.organisation_id, k.routing, o.routing_enabled FROM api_keys k \
             JOIN organisations o ON o.id = k.organisation_id WHERE k.id = $1",
        )
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some((organisation, Some(text), enabled)) = row else {
            return Ok(Vec::new());
        };
        if enabled == 0 {
            return Ok(Vec::new());
        }
        let document: RoutingDocument = match serde_json::from_str(&text) {
            Ok(document) => document,
            Err(error) => {
                tracing::warn!(api_key_id = %key, %error, "ignoring an unparseable routing document");
                return Ok(Vec::new());
            }
        };
        if document.policies.is_empty() {
            return Ok(Vec::new());
        }
        let names: HashMap<String, String> =
            sqlx::query_as("SELECT id, name FROM models WHERE organisation_id = $1")
                .bind(&organisation)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        Ok(document
            .policies
            .into_iter()
            .map(|mut policy| {
                // A candidate whose model is gone is dropped (the admin API refuses new ones).
                policy.candidates.retain_mut(|candidate| {
                    match names.get(candidate.model_id.as_str()) {
                        Some(name) => {
                            candidate.model_name.clone_from(name);
                            true
                        }
                        None => false,
                    }
                });
                Arc::new(policy)
            })
            .filter(|policy| !policy.candidates.is_empty())
            .collect())
    }
}

#[async_trait]
impl RoutingPolicySource for SqlRoutingPolicySource {
    async fn policy(
        &self,
        principal: &Principal,
        model_type: ModelType,
    ) -> Result<Option<Arc<RoutingPolicy>>, ResolveError> {
        let key = &principal.api_key_id;
        let policies = match self.cache.get(key) {
            Some(policies) => policies,
            None => {
                let generation = self.generation.load(Ordering::SeqCst);
                let policies: KeyRouting = Arc::new(self.load(key).await.map_err(|error| {
                    tracing::error!(%error, api_key_id = %key, "routing policy lookup failed");
                    ResolveError::LookupUnavailable
                })?);
                let _guard = self.guard.lock();
                if self.generation.load(Ordering::SeqCst) == generation {
                    self.cache.insert(key.clone(), policies.clone());
                }
                policies
            }
        };
        Ok(find(&policies, model_type))
    }

    fn cached_policy(
        &self,
        principal: &Principal,
        model_type: ModelType,
    ) -> Option<Option<Arc<RoutingPolicy>>> {
        let policies = self.cache.get(&principal.api_key_id)?;
        Some(find(&policies, model_type))
    }
}

fn find(policies: &[Arc<RoutingPolicy>], model_type: ModelType) -> Option<Arc<RoutingPolicy>> {
    policies
        .iter()
        .find(|policy| policy.model_type == model_type)
        .cloned()
}

impl CacheInvalidator for SqlRoutingPolicySource {
    fn invalidate(&self, command: &InvalidationCommand) {
        let _guard = self.guard.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        match command.kind {
            CacheKind::ApiKey => self.cache.invalidate(&ApiKeyId::new(command.id.as_str())),
            CacheKind::Organisation | CacheKind::Model | CacheKind::Team => {
                self.cache.invalidate_all()
            }
            CacheKind::Provider
            | CacheKind::ProviderKey
            | CacheKind::McpServer
            | CacheKind::Grant
            | CacheKind::Budget
            | CacheKind::Quota => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures as fx;

    #[tokio::test]
    async fn policies_follow_the_switch_and_the_document_and_are_served_from_cache() {
        let pool = fx::pool().await;
        let org = fx::org(&pool, "Acme").await;
        let key = fx::api_key(&pool, &org).await;
        fx::execute(
            &pool,
            "INSERT INTO providers (id, organisation_id, name, type, base_url, created_at, updated_at) \
             VALUES ('p1', $1, 'OpenAI', 'OPENAI', 'http://x', 0, 0)",
            &[&org],
        )
        .await;
        fx::execute(
            &pool,
            "INSERT INTO models (id, organisation_id, name, slug, type, provider_id, created_at, updated_at) \
             VALUES ('m1', $1, 'gpt-4o', 'gpt-4o', 'chat', 'p1', 0, 0)",
            &[&org],
        )
        .await;
        let document = r#"{"policies":[{"modelType":"chat","strategy":"failover",
            "candidates":[{"modelId":"m1"},{"modelId":"gone"}]}]}"#;
        fx::execute(
            &pool,
            "UPDATE api_keys SET routing = $1 WHERE id = $2",
            &[document, &key],
        )
        .await;
        let source = SqlRoutingPolicySource::new(pool.clone(), &KeyStoreOptions::default());
        let principal = Principal::organisation_key(org.as_str(), key.as_str());

        assert!(
            source
                .policy(&principal, ModelType::Chat)
                .await
                .unwrap()
                .is_none(),
            "routing is off until the organisation enables it"
        );
        fx::execute(
            &pool,
            "UPDATE organisations SET routing_enabled = 1 WHERE id = $1",
            &[&org],
        )
        .await;
        assert!(
            source
                .policy(&principal, ModelType::Chat)
                .await
                .unwrap()
                .is_none(),
            "served from the cache until invalidated"
        );
        source.invalidate(&InvalidationCommand::new(
            CacheKind::Organisation,
            org.as_str(),
        ));
        let policy = source
            .policy(&principal, ModelType::Chat)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(policy.candidates.len(), 1, "the deleted model is dropped");
        assert_eq!(policy.candidates[0].model_name, "gpt-4o");
        assert!(source
            .policy(&principal, ModelType::Embeddings)
            .await
            .unwrap()
            .is_none());

        fx::execute(
            &pool,
            "UPDATE api_keys SET routing = NULL WHERE id = $1",
            &[&key],
        )
        .await;
        source.invalidate(&InvalidationCommand::new(CacheKind::ApiKey, key.as_str()));
        assert!(source
            .policy(&principal, ModelType::Chat)
            .await
            .unwrap()
            .is_none());
    }
}
