//! MCP grants: which API keys may call which MCP servers (`api_key_mcp_access`), managed from either
//! side (`/apikeys/{id}/mcp-access`, `/mcp-servers/{id}/api-key-access`), on the one grant logic
//! (`GrantTable`). Granting is idempotent. A model grant never implies an MCP grant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::grants::{GrantKind, GrantTable};
use odock_store::db::{from_ms, DbRow};

/// One grant, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpGrant {
    /// The API key that may call the MCP server.
    pub api_key_id: String,
    /// The API key's name.
    pub api_key_name: String,
    /// The MCP server the key may call.
    pub mcp_server_id: String,
    /// The MCP server's name.
    pub mcp_server_name: String,
    /// The MCP server's slug.
    pub mcp_server_slug: String,
    /// When the grant was made.
    pub created_at: DateTime<Utc>,
}

/// `POST .../apikeys/{id}/mcp-access`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrantMcpServers {
    /// MCP servers to grant the key (ids of this organisation, at most 1000; duplicates ignored).
    pub mcp_server_ids: Vec<String>,
}

/// `POST .../mcp-servers/{id}/api-key-access` takes [`super::grants::GrantApiKeys`].
pub use super::grants::GrantApiKeys;

/// MCP grants (`api_key_mcp_access`).
pub(crate) struct McpGrants;

impl GrantKind for McpGrants {
    type Grant = McpGrant;
    type Targets = GrantMcpServers;
    const TABLE: GrantTable<McpGrant> = MCP_GRANTS;
    fn target_ids(targets: &GrantMcpServers) -> &[String] {
        &targets.mcp_server_ids
    }
}

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::services::grants::tests::from_both_sides;
    use crate::services::mcp_servers;
    use crate::services::test_support::{org, pool};
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
                .id
            }
        };
        let tools = server("tools", a.clone()).await;
        let search = server("search", a.clone()).await;
        let elsewhere = server("tools", b.clone()).await;
        from_both_sides::<McpGrants>(
            &pool,
            (&a, &b),
            [&tools, &search],
            &elsewhere,
            ["tools", "search"],
            |grant| grant.mcp_server_slug.as_str(),
        )
        .await;
    }
}
