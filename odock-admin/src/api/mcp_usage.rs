//! `GET /api/organisations/{organisationId}/mcp-usage-records` and the cross-organisation
//! `GET /api/admin/mcp-usage-records`: the MCP side of usage records (server, tool, bytes, MCP
//! price), newest first, with the usage-record filters plus `mcpServerId` and `tool`. Paging and
//! visibility are the usage records' (`super::records`); the query parameters are documented in
//! [`super::routes::MCP_USAGE_FILTERS`].

use crate::services::{Page, PageRequest};
use axum::extract::{Extension, Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use odock_core::McpUsageRecord;
use odock_store::mcp_usage::McpUsageFilter;
use serde::Deserialize;

use super::authz::AdminPrincipal;
use super::error::ApiError;
use super::extract::AdminQuery;
use super::records;
use super::AdminState;

/// The query string of both lists (`organisationId` only on the cross-organisation one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpUsageParams {
    /// Records created at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Records created before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Only this API key's records.
    pub api_key_id: Option<String>,
    /// Only this team's records.
    pub team_id: Option<String>,
    /// Only this user's records.
    pub user_id: Option<String>,
    /// Only this MCP server's records.
    pub mcp_server_id: Option<String>,
    /// Only calls of this tool.
    pub tool: Option<String>,
    /// Only records with this HTTP status.
    pub status: Option<u16>,
    /// Only the record of this request id.
    pub request_id: Option<String>,
    /// Only this organisation's records (cross-organisation list only).
    pub organisation_id: Option<String>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<u32>,
    /// The previous page's `nextCursor`.
    pub cursor: Option<String>,
}

impl McpUsageParams {
    fn filter(self, organisation_id: Option<String>) -> (McpUsageFilter, PageRequest) {
        let page = PageRequest::new(self.cursor, self.limit);
        let filter = McpUsageFilter {
            organisation_id,
            api_key_id: self.api_key_id,
            team_id: self.team_id,
            user_id: self.user_id,
            mcp_server_id: self.mcp_server_id,
            tool: self.tool,
            request_id: self.request_id,
            status: self.status,
            from: self.from,
            to: self.to,
        };
        (filter, page)
    }
}

/// The records the caller may see, narrowed like the usage records (see
/// `super::records::visible`).
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<McpUsageParams>,
) -> Result<Json<Page<McpUsageRecord>>, ApiError> {
    let query = || Ok(params.filter(Some(org.clone())));
    records::visible(&state, &principal, &org, query).await
}

/// `GET /api/admin/mcp-usage-records`: list MCP usage records of every organisation, newest first.
/// Access: SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(mut params): AdminQuery<McpUsageParams>,
) -> Result<Json<Page<McpUsageRecord>>, ApiError> {
    let org = params.organisation_id.take();
    let (filter, page) = params.filter(org);
    records::page(&state, filter, page).await
}
