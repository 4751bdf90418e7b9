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
use serde_json::{json, Map, Value};

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

pub async fn list(
    State(state): State<AdminState>,
    Path(org): Path<String>,
    AdminQuery(params): AdminQuery<ListParams>,
) -> Result<Json<Page<McpServer>>, ApiError> {
    Ok(Json(
        mcp_servers::list(&state.pool, Some(&org), &params.page()).await?,
    ))
}

pub async fn list_all(
    State(state): State<AdminState>,
    AdminQuery(params): AdminQuery<AdminListParams>,
) -> Result<Json<Page<McpServer>>, ApiError> {
    let org = params.organisation_id.as_deref();
    Ok(Json(
        mcp_servers::list(&state.pool, org, &params.page()).await?,
    ))
}

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

pub async fn delete(
    State(state): State<AdminState>,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    mcp_servers::delete(&state.pool, &org, &id).await?;
    state.invalidate(CacheKind::McpServer, &id);
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI schemas of this module's and [`super::mcp_usage`]'s objects, added to the document
/// by [`super::openapi::schemas`].
pub fn openapi_schemas(schemas: &mut Map<String, Value>) {
    let string = json!({ "type": "string" });
    let opt_string = json!({ "type": ["string", "null"] });
    let int = json!({ "type": "integer" });
    let boolean = json!({ "type": "boolean" });
    let time = json!({ "type": "string", "format": "date-time" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let map = json!({ "type": "object" });
    let string_map = json!({ "type": "object", "additionalProperties": { "type": "string" } });
    let transport = json!({ "type": "string", "enum": ["STREAMABLE_HTTP", "SSE", "STDIO"] });
    let auth_type = json!({ "type": "string", "enum": ["NONE", "BEARER", "BASIC", "OAUTH2"] });
    let pricing = json!({ "$ref": "#/components/schemas/McpPricing" });
    let object = |required: &[&str], properties: Value| {
        json!({ "type": "object", "required": required, "properties": properties,
                "additionalProperties": false })
    };
    let mut add = |name: &str, schema: Value| {
        schemas.insert(name.to_owned(), schema);
    };
    add(
        "McpPricing",
        object(
            &[],
            json!({
                "callNanosUsd": { "type": "integer", "minimum": 0, "description": "Nanos USD per tools/call." },
                "inputNanosUsdPerMillionBytes": { "type": "integer", "minimum": 0 },
                "outputNanosUsdPerMillionBytes": { "type": "integer", "minimum": 0 },
            }),
        ),
    );
    let writable = json!({
        "name": string, "slug": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$" },
        "transport": transport, "description": opt_string, "endpointUrl": opt_string,
        "stdioCommand": opt_string, "stdioArgs": strings,
        "stdioEnv": { "type": ["object", "null"], "additionalProperties": { "type": "string" },
                      "description": "Sealed at rest; never returned (see stdioEnvPreview)." },
        "authType": auth_type,
        "authConfig": { "type": ["object", "null"],
                        "description": "BEARER {token}; BASIC {username,password}; OAUTH2 {tokenUrl,clientId,clientSecret,scope?,audience?}. Sealed at rest; never returned (see authConfigPreview)." },
        "allowedTools": strings, "blockedTools": strings,
        "semanticFilter": { "type": "object", "properties": { "blockedKeywords": strings } },
        "pricing": pricing, "policies": map, "teamId": opt_string, "apiKeyId": opt_string,
        "enabled": boolean, "publicInternet": boolean, "oauthRequired": boolean, "metadata": map,
    });
    add(
        "NewMcpServer",
        object(&["name", "slug", "transport"], writable.clone()),
    );
    add("McpServerPatch", object(&[], writable));
    let readable = json!({
        "id": string, "organisationId": string, "name": string, "slug": string, "description": opt_string,
        "transport": transport, "endpointUrl": opt_string, "stdioCommand": opt_string, "stdioArgs": strings,
        "stdioEnvPreview": string_map, "authType": auth_type, "authConfigPreview": map,
        "stdioApproved": { "type": "boolean", "description": "True when a SUPER_ADMIN configured exactly the current stdio launch (command, arguments, environment names): it may then run a command that is not on ODOCK_MCP_STDIO_ALLOW." },
        "enabled": boolean, "publicInternet": boolean, "oauthRequired": boolean,
        "teamId": opt_string, "apiKeyId": opt_string, "allowedTools": strings, "blockedTools": strings,
        "semanticFilter": map, "metadata": map, "pricing": pricing, "policies": map,
        "createdAt": time, "updatedAt": time,
    });
    let readable_required: Vec<&str> = readable
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    add("McpServer", object(&readable_required, readable.clone()));
    add(
        "McpGrant",
        object(
            &[
                "apiKeyId",
                "apiKeyName",
                "mcpServerId",
                "mcpServerName",
                "mcpServerSlug",
                "createdAt",
            ],
            json!({ "apiKeyId": string, "apiKeyName": string, "mcpServerId": string,
                    "mcpServerName": string, "mcpServerSlug": string, "createdAt": time }),
        ),
    );
    add(
        "GrantMcpServers",
        object(&["mcpServerIds"], json!({ "mcpServerIds": strings })),
    );
    add(
        "McpUsageRecord",
        object(
            &[
                "id",
                "usageRecordId",
                "requestId",
                "organisationId",
                "apiKeyId",
                "mcpServerId",
                "slug",
                "transport",
                "toolCallCount",
                "inputBytes",
                "outputBytes",
                "httpStatus",
                "latencyMs",
                "costNanosUsd",
                "billing",
                "createdAt",
            ],
            json!({
                "id": string, "usageRecordId": string, "requestId": string, "organisationId": string,
                "teamId": opt_string, "userId": opt_string, "apiKeyId": string, "mcpServerId": string,
                "slug": string, "transport": transport, "rpcMethod": opt_string, "toolName": opt_string,
                "toolCallCount": int, "inputBytes": int, "outputBytes": int, "httpStatus": int,
                "errorCode": opt_string, "latencyMs": int, "costNanosUsd": int,
                "billing": { "type": "object", "description": "totalCostNanosUsd, callCostNanosUsd, inputCostNanosUsd, outputCostNanosUsd and the pricing snapshot." },
                "createdAt": time,
            }),
        ),
    );
}
