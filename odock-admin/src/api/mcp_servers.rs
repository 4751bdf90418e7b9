//! `/api/organisations/{organisationId}/mcp-servers` (CRUD) and the cross-organisation
//! `/api/admin/mcp-servers`; MCP grants from both sides (`/apikeys/{id}/mcp-access`,
//! `/mcp-servers/{id}/api-key-access`) are [`super::grants`]' handlers over `McpGrants`. Auth
//! configs and stdio environments are sealed by the repository; answers carry previews only. Every
//! write invalidates `McpServer` (or `Grant` for each key a grant touched), so the gateway applies
//! it to the next request.

use crate::services::mcp_servers::{self, McpServer, McpServerPatch, NewMcpServer};
use crate::services::Page;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use http::StatusCode;
use odock_core::CacheKind;

use super::authz::AdminPrincipal;
use super::error::ApiError;
use super::extract::{AdminJson, AdminListParams, AdminQuery, ListParams};
use super::host_policy::HostPolicy;
use super::AdminState;

/// Creates a server. A stdio command outside `ODOCK_MCP_STDIO_ALLOW` is the SUPER_ADMIN's alone
/// (403 `stdio_not_allowed`); a literal upstream address outside the egress policy is 400.
pub async fn create(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path(org): Path<String>,
    AdminJson(input): AdminJson<NewMcpServer>,
) -> Result<(StatusCode, Json<McpServer>), ApiError> {
    state.host.check_new_mcp_server(&principal, &input)?;
    let author = HostPolicy::author(&principal);
    let server =
        mcp_servers::create_by(&state.pool, &state.master_key, &org, input, author).await?;
    state.invalidate(CacheKind::McpServer, &server.id);
    Ok((StatusCode::CREATED, Json(server)))
}

/// `GET /api/organisations/{organisationId}/mcp-servers`: list the organisation's MCP servers.
/// Access: any user of the organisation.
pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<McpServer>>, ApiError> {
    Ok(Json(
        mcp_servers::list(&state.pool, Some(&org), &params.page()).await?,
    ))
}

/// `GET /api/admin/mcp-servers`: list MCP servers of every organisation. Access: SUPER_ADMIN only.
pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<McpServer>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(
        mcp_servers::list(&state.pool, org, &params.page()).await?,
    ))
}

/// `GET /api/organisations/{organisationId}/mcp-servers/{id}`: read an MCP server (secrets as
/// previews only). Access: any user of the organisation.
pub async fn get(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<McpServer>, ApiError> {
    Ok(Json(mcp_servers::get(&state.pool, &org, &id).await?))
}

/// Updates a server, with the checks of [`create`] applied to what the patch changes (and to the
/// command a STDIO server would run after it).
pub async fn update(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Path((org, id)): Path<(String, String)>,
    AdminJson(patch): AdminJson<McpServerPatch>,
) -> Result<Json<McpServer>, ApiError> {
    let current = mcp_servers::get(&state.pool, &org, &id).await?;
    state.host.check_mcp_patch(&principal, &current, &patch)?;
    let author = HostPolicy::author(&principal);
    let server =
        mcp_servers::update_by(&state.pool, &state.master_key, &org, &id, patch, author).await?;
    state.invalidate(CacheKind::McpServer, &id);
    Ok(Json(server))
}

/// `DELETE /api/organisations/{organisationId}/mcp-servers/{id}`: delete an MCP server and its
/// grants. Access: ORG_ADMIN.
pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    mcp_servers::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::McpServer, &id);
    Ok(StatusCode::NO_CONTENT)
}
