//! MCP grants: which API keys may call which MCP servers (`api_key_mcp_access`), managed from either
//! side (`/apikeys/{id}/mcp-access`, `/mcp-servers/{id}/api-key-access`), on the one grant logic
//! ([`GrantTable`]). Granting is idempotent. A model grant never implies an MCP grant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::grants::GrantTable;
use super::AdminError;
use odock_store::db::{from_ms, Db, DbRow};

/// One grant, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpGrant {
    pub api_key_id: String,
    pub api_key_name: String,
    pub mcp_server_id: String,
    pub mcp_server_name: String,
    pub mcp_server_slug: String,
    pub created_at: DateTime<Utc>,
}

/// `POST .../apikeys/{id}/mcp-access`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantMcpServers {
    pub mcp_server_ids: Vec<String>,
}

/// `POST .../mcp-servers/{id}/api-key-access` takes [`super::grants::GrantApiKeys`].
pub use super::grants::GrantApiKeys;

const MCP_GRANTS: GrantTable<McpGrant> = GrantTable {
    table: "api_key_mcp_access",
    target_column: "mcp_server_id",
    targets: "mcp_servers",
    target_what: "MCP server",
    target_field: "mcpServerIds",
    what: "MCP grant",
    select: "SELECT g.api_key_id, k.name AS api_key_name, g.mcp_server_id, \
             t.name AS mcp_server_name, t.slug AS mcp_server_slug, g.created_at \
             FROM api_key_mcp_access g \
             JOIN api_keys k ON k.id = g.api_key_id \
             JOIN mcp_servers t ON t.id = g.mcp_server_id",
    decode,
};

fn decode(row: &DbRow) -> Result<McpGrant, sqlx::Error> {
    Ok(McpGrant {
        api_key_id: row.try_get("api_key_id")?,
        api_key_name: row.try_get("api_key_name")?,
        mcp_server_id: row.try_get("mcp_server_id")?,
        mcp_server_name: row.try_get("mcp_server_name")?,
        mcp_server_slug: row.try_get("mcp_server_slug")?,
        created_at: from_ms(row.try_get("created_at")?),
    })
}

/// The MCP servers the key may call, by server name.
pub async fn list_for_api_key(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
) -> Result<Vec<McpGrant>, AdminError> {
    MCP_GRANTS
        .for_api_key(pool, organisation_id, api_key_id)
        .await
}

/// Grants the key every server in `server_ids` (all must be in the organisation); returns the key's
/// complete MCP grant list.
pub async fn grant_servers(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
    server_ids: &[String],
) -> Result<Vec<McpGrant>, AdminError> {
    MCP_GRANTS
        .grant_targets(pool, organisation_id, api_key_id, server_ids)
        .await
}

/// Removes one grant; 404 when the key, the server or the grant does not exist.
pub async fn revoke_server(
    pool: &Db,
    organisation_id: &str,
    api_key_id: &str,
    server_id: &str,
) -> Result<(), AdminError> {
    MCP_GRANTS
        .revoke(pool, organisation_id, api_key_id, server_id)
        .await
}

/// The keys that may call the server, by key name.
pub async fn list_for_server(
    pool: &Db,
    organisation_id: &str,
    server_id: &str,
) -> Result<Vec<McpGrant>, AdminError> {
    MCP_GRANTS
        .for_target(pool, organisation_id, server_id)
        .await
}

/// Grants every key in `api_key_ids` (all must be in the organisation) the server; returns the
/// server's complete grant list.
pub async fn grant_api_keys(
    pool: &Db,
    organisation_id: &str,
    server_id: &str,
    api_key_ids: &[String],
) -> Result<Vec<McpGrant>, AdminError> {
    MCP_GRANTS
        .grant_api_keys(pool, organisation_id, server_id, api_key_ids)
        .await
}

#[cfg(test)]
mod tests {
    use odock_core::ApiKeyType;
    use serde_json::json;

    use super::*;
    use crate::services::test_support::{org, pool};
    use crate::services::{api_keys, mcp_servers};
    use odock_store::MasterKey;

    #[tokio::test]
    async fn grants_from_both_sides() {
        let pool = pool().await;
        let a = org(&pool, "A").await;
        let b = org(&pool, "B").await;
        let (master_key, _) = MasterKey::generate();
        let server = |slug: &'static str, org: String| {
            let pool = pool.clone();
            let master_key = master_key.clone();
            async move {
                mcp_servers::create(
                    &pool,
                    &master_key,
                    &org,
                    mcp_servers::tests::new(slug, json!({})),
                )
                .await
                .unwrap()
            }
        };
        let tools = server("tools", a.clone()).await;
        let search = server("search", a.clone()).await;
        let elsewhere = server("tools", b.clone()).await;
        let key = api_keys::create(&pool, &a, api_keys::tests::new(ApiKeyType::Organisation))
            .await
            .unwrap()
            .api_key;
        let other_key = api_keys::create(&pool, &b, api_keys::tests::new(ApiKeyType::Organisation))
            .await
            .unwrap()
            .api_key;

        let ids = vec![tools.id.clone(), tools.id.clone()];
        let grants = grant_servers(&pool, &a, &key.id, &ids).await.unwrap();
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].mcp_server_slug, "tools");
        assert_eq!(
            grant_servers(&pool, &a, &key.id, &ids).await.unwrap().len(),
            1
        );

        let refused = grant_servers(&pool, &a, &key.id, std::slice::from_ref(&elsewhere.id)).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "mcpServerIds")
        );
        let refused =
            grant_api_keys(&pool, &a, &search.id, std::slice::from_ref(&other_key.id)).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: Some(f), .. }) if f == "apiKeyIds")
        );
        assert_eq!(
            grant_api_keys(&pool, &a, &search.id, std::slice::from_ref(&key.id))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(list_for_api_key(&pool, &a, &key.id).await.unwrap().len(), 2);
        revoke_server(&pool, &a, &key.id, &tools.id).await.unwrap();
        assert!(matches!(
            revoke_server(&pool, &a, &key.id, &tools.id).await,
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            list_for_server(&pool, &b, &search.id).await,
            Err(AdminError::NotFound(_))
        ));
        let left = list_for_api_key(&pool, &a, &key.id).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].mcp_server_slug, "search");
    }
}
