//! MCP resolution for [`SqlKeyStore`](crate::SqlKeyStore): an organisation's MCP server by slug or
//! id (with decrypted upstream credentials), a key's MCP grants, and the MCP-server policy scope —
//! cached like keys and models (positive and negative TTLs, synchronous invalidation, and a
//! generation counter so a load racing an invalidation is never cached).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::fast_cache::FastCache;
use odock_core::rate_limit::{Policy, ScopedPolicies, ScopedPolicy};
use odock_core::{
    ApiKeyId, CacheKind, InvalidationCommand, McpAuthType, McpPricing, McpServerId,
    McpTransportKind, OrganisationId, ResolveError, ResolvedMcpServer, Secret, TeamId, ToolRules,
};
use parking_lot::Mutex;
use serde_json::Value;
use sqlx::Row;

use crate::crypto::MasterKey;
use crate::db::{Db, DbRow};
use crate::mcp_config::{stdio_fingerprint, upstream_auth, JsonObject};

type ServerKey = (OrganisationId, String);

/// The MCP caches of one key store.
pub(crate) struct McpCache {
    servers: FastCache<ServerKey, Arc<ResolvedMcpServer>>,
    missing: FastCache<ServerKey, ()>,
    grants: FastCache<ApiKeyId, Arc<HashSet<McpServerId>>>,
    /// (key, server) → every scope's policies.
    policies: FastCache<(ApiKeyId, McpServerId), Arc<ScopedPolicies>>,
    /// Serialises inserts with invalidations.
    guard: Mutex<()>,
    generation: AtomicU64,
}

impl McpCache {
    pub(crate) fn new(capacity: u64, positive_ttl: Duration, negative_ttl: Duration) -> Self {
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
        Self {
            servers: cache(capacity, positive_ttl),
            missing: cache(capacity, negative_ttl),
            grants: cache(capacity, positive_ttl),
            policies: cache(capacity, positive_ttl),
            guard: Mutex::new(()),
            generation: AtomicU64::new(0),
        }
    }

    fn insert_if_current(&self, generation: u64, insert: impl FnOnce()) {
        let _guard = self.guard.lock();
        if self.generation.load(Ordering::SeqCst) == generation {
            insert();
        }
    }

    /// The enabled server named `reference` (slug first, then id) in the organisation.
    pub(crate) async fn server(
        &self,
        pool: &Db,
        master_key: &MasterKey,
        organisation: &OrganisationId,
        reference: &str,
    ) -> Result<Option<Arc<ResolvedMcpServer>>, ResolveError> {
        let key: ServerKey = (organisation.clone(), reference.to_owned());
        if let Some(server) = self.servers.get(&key) {
            return Ok(Some(server));
        }
        if self.missing.contains_key(&key) {
            return Ok(None);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        match load_server(pool, master_key, organisation, reference).await? {
            Some(server) => {
                let server = Arc::new(server);
                self.insert_if_current(generation, || self.servers.insert(key, server.clone()));
                Ok(Some(server))
            }
            None => {
                self.insert_if_current(generation, || self.missing.insert(key, ()));
                Ok(None)
            }
        }
    }

    pub(crate) async fn has_grant(
        &self,
        pool: &Db,
        api_key: &ApiKeyId,
        server: &McpServerId,
    ) -> Result<bool, ResolveError> {
        if let Some(grants) = self.grants.get(api_key) {
            return Ok(grants.contains(server));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let rows =
            sqlx::query("SELECT mcp_server_id FROM api_key_mcp_access WHERE api_key_id = $1")
                .bind(api_key.as_str())
                .fetch_all(pool)
                .await
                .map_err(|error| {
                    tracing::error!(%error, api_key_id = %api_key, "MCP grant lookup failed");
                    ResolveError::AccessUnavailable
                })?;
        let grants: HashSet<McpServerId> = rows
            .iter()
            .filter_map(|row| row.try_get::<String, _>(0).ok())
            .map(McpServerId::new)
            .collect();
        let granted = grants.contains(server);
        let grants = Arc::new(grants);
        self.insert_if_current(generation, || self.grants.insert(api_key.clone(), grants));
        Ok(granted)
    }

    /// `owners` (organisation, team, key — the key store's own loader) plus the server's policy.
    pub(crate) async fn policies<F>(
        &self,
        pool: &Db,
        api_key: &ApiKeyId,
        server: &McpServerId,
        owners: F,
    ) -> Result<Arc<ScopedPolicies>, ResolveError>
    where
        F: std::future::Future<Output = Result<ScopedPolicies, ResolveError>>,
    {
        let key = (api_key.clone(), server.clone());
        if let Some(policies) = self.policies.get(&key) {
            return Ok(policies);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let mut policies = owners.await?;
        let text: Option<Option<String>> =
            sqlx::query_scalar("SELECT policies FROM mcp_servers WHERE id = $1")
                .bind(server.as_str())
                .fetch_optional(pool)
                .await
                .map_err(|error| {
                    tracing::error!(%error, "MCP server policy lookup failed");
                    ResolveError::LookupUnavailable
                })?;
        if let Some(text) = text.flatten() {
            match serde_json::from_str::<Policy>(&text) {
                Ok(policy) if policy != Policy::default() => policies.push(ScopedPolicy {
                    scope: "mcp_server",
                    id: server.as_str().to_owned(),
                    policy,
                }),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(mcp_server_id = %server, %error, "ignoring an unparseable policy")
                }
            }
        }
        let policies = Arc::new(policies);
        self.insert_if_current(generation, || self.policies.insert(key, policies.clone()));
        Ok(policies)
    }

    pub(crate) fn invalidate(&self, command: &InvalidationCommand) {
        let _guard = self.guard.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        match command.kind {
            CacheKind::McpServer | CacheKind::Organisation | CacheKind::Team => {
                self.servers.invalidate_all();
                self.missing.invalidate_all();
                self.policies.invalidate_all();
            }
            CacheKind::ApiKey | CacheKind::Grant => {
                let key = ApiKeyId::new(command.id.as_str());
                self.grants.invalidate(&key);
                if command.kind == CacheKind::ApiKey {
                    self.policies.invalidate_all();
                }
            }
            CacheKind::Model
            | CacheKind::Provider
            | CacheKind::ProviderKey
            | CacheKind::Budget
            | CacheKind::Quota => {}
        }
    }
}

const SERVER_COLUMNS: &str = "id, organisation_id, name, slug, transport, endpoint_url, \
    stdio_command, stdio_args, stdio_env, stdio_env_preview, stdio_approval, auth_type, auth_config, \
    enabled, team_id, api_key_id, allowed_tools, blocked_tools, semantic_filter, pricing, updated_at";

async fn load_server(
    pool: &Db,
    master_key: &MasterKey,
    organisation: &OrganisationId,
    reference: &str,
) -> Result<Option<ResolvedMcpServer>, ResolveError> {
    let sql = format!(
        "SELECT {SERVER_COLUMNS} FROM mcp_servers WHERE organisation_id = $1 \
         AND (slug = $2 OR id = $3) ORDER BY CASE WHEN slug = $4 THEN 0 ELSE 1 END LIMIT 1"
    );
    let row = sqlx::query(&sql)
        .bind(organisation.as_str())
        .bind(reference)
        .bind(reference)
        .bind(reference)
        .fetch_optional(pool)
        .await
        .map_err(|error| {
            tracing::error!(%error, organisation_id = %organisation, "MCP server lookup failed");
            ResolveError::LookupUnavailable
        })?;
    let Some(row) = row else { return Ok(None) };
    let server = decode_server(&row, master_key).map_err(|error| {
        tracing::error!(%error, organisation_id = %organisation, "MCP server row is unreadable");
        ResolveError::LookupUnavailable
    })?;
    Ok(server)
}

fn json_column<T: serde::de::DeserializeOwned + Default>(
    row: &DbRow,
    column: &str,
) -> Result<T, sqlx::Error> {
    match row.try_get::<Option<String>, _>(column)? {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(e.into())),
    }
}

/// `None` for a disabled server.
fn decode_server(
    row: &DbRow,
    master_key: &MasterKey,
) -> Result<Option<ResolvedMcpServer>, sqlx::Error> {
    if row.try_get::<i64, _>("enabled")? == 0 {
        return Ok(None);
    }
    let decode_err = |e: odock_core::domain::UnknownVariant| sqlx::Error::Decode(e.into());
    let id: String = row.try_get("id")?;
    let transport: McpTransportKind = row
        .try_get::<String, _>("transport")?
        .parse()
        .map_err(decode_err)?;
    let auth_type: McpAuthType = row
        .try_get::<String, _>("auth_type")?
        .parse()
        .map_err(decode_err)?;
    let filter: JsonObject = json_column(row, "semantic_filter")?;
    let blocked_keywords = filter
        .get("blockedKeywords")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();

    // Secrets are opened here, in memory only; failures become an auth error at call time (the
    // reason never contains a secret).
    let open = |column: &str| -> Result<Option<String>, String> {
        let envelope: Option<String> = row.try_get(column).map_err(|e| e.to_string())?;
        envelope
            .map(|envelope| {
                master_key
                    .open(&envelope)
                    .map(|secret| secret.expose().to_owned())
                    .map_err(|e| format!("the stored {column} cannot be opened: {e}"))
            })
            .transpose()
    };
    let auth = open("auth_config").and_then(|text| {
        let config: JsonObject = match text {
            None => JsonObject::new(),
            Some(text) => serde_json::from_str(&text).map_err(|e| e.to_string())?,
        };
        upstream_auth(auth_type, &config)
    });
    let env = open("stdio_env").and_then(|text| match text {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str::<BTreeMap<String, String>>(&text)
            .map(|env| env.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
            .map_err(|e| e.to_string()),
    });
    let (auth, stdio_env) = match (auth, env) {
        (Ok(auth), Ok(env)) => (Ok(auth), env),
        (Err(reason), _) | (_, Err(reason)) => {
            tracing::error!(mcp_server_id = %id, reason, "MCP server credentials are unusable");
            (Err(reason), BTreeMap::new())
        }
    };
    let stdio_command: Option<String> = row.try_get("stdio_command")?;
    let stdio_args: Vec<String> = json_column(row, "stdio_args")?;
    // Approved only while the launch is still the one a SUPER_ADMIN wrote (the environment's
    // names are known even when its values could not be opened).
    let approval: Option<String> = row.try_get("stdio_approval")?;
    let env_names: Vec<String> = row
        .try_get::<Option<String>, _>("stdio_env_preview")?
        .and_then(|text| serde_json::from_str::<BTreeMap<String, String>>(&text).ok())
        .map(|preview| preview.into_keys().collect())
        .unwrap_or_default();
    let stdio_approved = approval.is_some_and(|approval| {
        approval
            == stdio_fingerprint(
                stdio_command.as_deref(),
                &stdio_args,
                env_names.iter().map(String::as_str),
            )
    });
    Ok(Some(ResolvedMcpServer {
        id: McpServerId::new(id),
        organisation_id: OrganisationId::new(row.try_get::<String, _>("organisation_id")?),
        name: row.try_get("name")?,
        slug: row.try_get("slug")?,
        transport,
        endpoint_url: row.try_get("endpoint_url")?,
        stdio_command,
        stdio_args,
        stdio_env,
        stdio_approved,
        auth,
        team_id: row
            .try_get::<Option<String>, _>("team_id")?
            .map(TeamId::new),
        api_key_id: row
            .try_get::<Option<String>, _>("api_key_id")?
            .map(ApiKeyId::new),
        tool_rules: ToolRules {
            allowed_tools: json_column(row, "allowed_tools")?,
            blocked_tools: json_column(row, "blocked_tools")?,
            blocked_keywords,
        },
        pricing: json_column::<McpPricing>(row, "pricing")?,
        config_version: row.try_get("updated_at")?,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_fixtures::{self as fixtures, org, pool};
    use odock_core::McpUpstreamAuth;

    fn cache() -> McpCache {
        McpCache::new(100, Duration::from_secs(60), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn servers_resolve_by_slug_or_id_with_opened_credentials() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let (master_key, _) = MasterKey::generate();
        let created = fixtures::mcp_server(
            &pool,
            &master_key,
            &a,
            "tools",
            json!({"authType": "BASIC", "authConfig": {"username": "bob", "password": "pw-123"},
                   "stdioEnv": {"TOKEN": "env-secret"}, "allowedTools": ["echo"],
                   "semanticFilter": {"blockedKeywords": ["secret"]},
                   "pricing": {"callNanosUsd": 5}}),
            false,
        )
        .await;
        let org_id = OrganisationId::new(a.as_str());
        let cache = cache();
        let by_slug = cache
            .server(&pool, &master_key, &org_id, "tools")
            .await
            .unwrap()
            .unwrap();
        let by_id = cache
            .server(&pool, &master_key, &org_id, &created)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_slug.id, by_id.id);
        assert_eq!(
            by_slug.auth,
            Ok(McpUpstreamAuth::Basic {
                username: "bob".into(),
                password: Secret::new("pw-123")
            })
        );
        assert_eq!(by_slug.stdio_env["TOKEN"].expose(), "env-secret");
        assert_eq!(by_slug.tool_rules.allowed_tools, ["echo"]);
        assert_eq!(by_slug.tool_rules.blocked_keywords, ["secret"]);
        assert_eq!(by_slug.pricing.call_nanos_usd, 5);
        assert!(cache
            .server(&pool, &master_key, &OrganisationId::new("other"), "tools")
            .await
            .unwrap()
            .is_none());

        // Disabled: not found once the cache hears of the change.
        let set_enabled = |enabled: &'static str| {
            let pool = pool.clone();
            let created = created.clone();
            async move {
                fixtures::execute(
                    &pool,
                    &format!("UPDATE mcp_servers SET enabled = {enabled} WHERE id = $1"),
                    &[&created],
                )
                .await
            }
        };
        set_enabled("0").await;
        assert!(cache
            .server(&pool, &master_key, &org_id, "tools")
            .await
            .unwrap()
            .is_some());
        cache.invalidate(&InvalidationCommand::new(
            CacheKind::McpServer,
            created.as_str(),
        ));
        assert!(cache
            .server(&pool, &master_key, &org_id, "tools")
            .await
            .unwrap()
            .is_none());

        // Under another master key the credentials are unusable, not guessed.
        let (other, _) = MasterKey::generate();
        set_enabled("1").await;
        let fresh = McpCache::new(10, Duration::from_secs(60), Duration::from_secs(5));
        let server = fresh
            .server(&pool, &other, &org_id, "tools")
            .await
            .unwrap()
            .unwrap();
        assert!(server.auth.is_err());
    }

    #[tokio::test]
    async fn a_stdio_approval_counts_only_while_the_launch_matches_its_fingerprint() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let org_id = OrganisationId::new(a.as_str());
        let (master_key, _) = MasterKey::generate();
        let stdio = json!({"transport": "STDIO", "endpointUrl": null,
                           "stdioCommand": "/usr/bin/server", "stdioArgs": ["--port", "1"],
                           "stdioEnv": {"TOKEN": "t"}});
        let approved = |slug: &'static str| {
            let pool = pool.clone();
            let master_key = &master_key;
            let org_id = org_id.clone();
            async move {
                cache()
                    .server(&pool, master_key, &org_id, slug)
                    .await
                    .unwrap()
                    .unwrap()
                    .stdio_approved
            }
        };
        fixtures::mcp_server(&pool, &master_key, &a, "tenant", stdio.clone(), false).await;
        assert!(!approved("tenant").await);
        let operator = fixtures::mcp_server(&pool, &master_key, &a, "operator", stdio, true).await;
        assert!(approved("operator").await);

        // A launch changed behind the approval's back (arguments, command, environment names)
        // no longer matches it.
        for (column, value) in [
            ("stdio_args", r#"["-c","id"]"#),
            ("stdio_command", "/bin/sh"),
            ("stdio_env_preview", r#"{"LD_PRELOAD":"…"}"#),
        ] {
            let before: Option<String> =
                sqlx::query_scalar(&format!("SELECT {column} FROM mcp_servers WHERE id = $1"))
                    .bind(&operator)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            let update = format!("UPDATE mcp_servers SET {column} = $1 WHERE id = $2");
            fixtures::execute(&pool, &update, &[value, &operator]).await;
            assert!(!approved("operator").await, "{column}");
            fixtures::execute(&pool, &update, &[before.as_deref().unwrap(), &operator]).await;
            assert!(approved("operator").await, "{column}");
        }
    }

    #[tokio::test]
    async fn grants_are_cached_and_invalidated_per_key() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let (master_key, _) = MasterKey::generate();
        let server = fixtures::mcp_server(&pool, &master_key, &a, "tools", json!({}), false).await;
        let key = fixtures::api_key(&pool, &a).await;
        let cache = cache();
        let (key_id, server_id) = (
            ApiKeyId::new(key.as_str()),
            McpServerId::new(server.as_str()),
        );
        assert!(!cache.has_grant(&pool, &key_id, &server_id).await.unwrap());
        fixtures::grant_mcp(&pool, &key, &server).await;
        assert!(
            !cache.has_grant(&pool, &key_id, &server_id).await.unwrap(),
            "cached"
        );
        cache.invalidate(&InvalidationCommand::new(CacheKind::Grant, key.as_str()));
        assert!(cache.has_grant(&pool, &key_id, &server_id).await.unwrap());
    }
}
