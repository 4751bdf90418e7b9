//! `GET /api/organisations/{organisationId}/mcp-usage-records` and the cross-organisation
//! `GET /api/admin/mcp-usage-records`: the MCP side of usage records (server, tool, bytes, MCP
//! price), newest first, with the usage-record filters plus `mcpServerId` and `tool`.

use crate::services::{organisations, Page, PageRequest};
use axum::extract::{Extension, Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use odock_core::McpUsageRecord;
use odock_store::mcp_usage::{self, McpUsageFilter};
use odock_store::usage_records::is_invalid_cursor;
use serde::Deserialize;

use super::authz::{merged_page, AdminPrincipal, RecordScope, RecordSlice, Visibility};
use super::error::ApiError;
use super::extract::AdminQuery;
use super::operation::{param, QueryParam};
use super::AdminState;

/// The query parameters of the organisation's list (the cross-organisation one adds
/// `organisationId`).
pub const MCP_USAGE_FILTERS: &[QueryParam] = &[
    param(
        "from",
        "date-time",
        "Records created at or after this instant (RFC 3339).",
    ),
    param(
        "to",
        "date-time",
        "Records created before this instant (RFC 3339).",
    ),
    param("apiKeyId", "string", "Only this API key's records."),
    param("teamId", "string", "Only this team's records."),
    param("userId", "string", "Only this user's records."),
    param("mcpServerId", "string", "Only this MCP server's records."),
    param("tool", "string", "Only calls of this tool."),
    param("status", "integer", "Only records with this HTTP status."),
    param("requestId", "string", "Only the record of this request id."),
    param("limit", "integer", "Page size, default 50, at most 1000."),
    param("cursor", "string", "The previous page's nextCursor."),
];

pub const ADMIN_MCP_USAGE_FILTERS: &[QueryParam] = &[
    param(
        "from",
        "date-time",
        "Records created at or after this instant (RFC 3339).",
    ),
    param(
        "to",
        "date-time",
        "Records created before this instant (RFC 3339).",
    ),
    param("apiKeyId", "string", "Only this API key's records."),
    param("teamId", "string", "Only this team's records."),
    param("userId", "string", "Only this user's records."),
    param("mcpServerId", "string", "Only this MCP server's records."),
    param("tool", "string", "Only calls of this tool."),
    param("status", "integer", "Only records with this HTTP status."),
    param("requestId", "string", "Only the record of this request id."),
    param("limit", "integer", "Page size, default 50, at most 1000."),
    param("cursor", "string", "The previous page's nextCursor."),
    param(
        "organisationId",
        "string",
        "Only this organisation's records.",
    ),
];

/// The query string of both lists (`organisationId` only on the cross-organisation one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpUsageParams {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub api_key_id: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub mcp_server_id: Option<String>,
    pub tool: Option<String>,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub organisation_id: Option<String>,
    pub limit: Option<u32>,
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

async fn list_page(
    state: &AdminState,
    filter: McpUsageFilter,
    page: PageRequest,
) -> Result<Json<Page<McpUsageRecord>>, ApiError> {
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(ApiError::invalid(Some("from"), "from must not be after to"));
        }
    }
    let (data, next_cursor) =
        mcp_usage::list(&state.pool, &filter, page.cursor.as_deref(), page.limit)
            .await
            .map_err(|error| {
                if is_invalid_cursor(&error) {
                    ApiError::invalid(Some("cursor"), "cursor is not one this list returned")
                } else {
                    ApiError::from(error)
                }
            })?;
    Ok(Json(Page { data, next_cursor }))
}

/// The records the caller may see, narrowed like the usage records (see
/// [`super::authz::Visibility::record_scope`]).
pub async fn list(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<McpUsageParams>,
) -> Result<Json<Page<McpUsageRecord>>, ApiError> {
    organisations::ensure_exists(&state.pool, &org).await?;
    let visibility = Visibility::of(&state, &principal).await?;
    let (filter, page) = params.filter(Some(org));
    let slices = match visibility.record_scope(filter.team_id.as_deref(), filter.user_id.as_deref())
    {
        None => return list_page(&state, filter, page).await,
        Some(RecordScope::Nothing) => return Ok(Json(Page::all(Vec::new()))),
        Some(RecordScope::Slices(slices)) => slices,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(ApiError::invalid(Some("from"), "from must not be after to"));
        }
    }
    let pool = &state.pool;
    let (data, next_cursor) = merged_page(
        &slices,
        page.cursor.as_deref(),
        page.limit,
        true,
        |slice: &RecordSlice, cursor, limit| {
            let filter = McpUsageFilter {
                team_id: slice.team.clone(),
                user_id: slice.user.clone(),
                ..filter.clone()
            };
            let cursor = cursor.map(str::to_owned);
            async move { mcp_usage::list(pool, &filter, cursor.as_deref(), limit).await }
        },
        |record: &McpUsageRecord| (record.created_at.timestamp_millis(), record.id.as_str()),
    )
    .await
    .map_err(|error| {
        if is_invalid_cursor(&error) {
            ApiError::invalid(Some("cursor"), "cursor is not one this list returned")
        } else {
            ApiError::from(error)
        }
    })?;
    Ok(Json(Page { data, next_cursor }))
}

pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(mut params): AdminQuery<McpUsageParams>,
) -> Result<Json<Page<McpUsageRecord>>, ApiError> {
    let org = params.organisation_id.take();
    let (filter, page) = params.filter(org);
    list_page(&state, filter, page).await
}
