//! The OpenAPI 3.1 document of a route table ([`super::routes`] serves it at `GET /api/openapi.json`).
//! Paths come from the route table; component schemas are derived from the serde types themselves
//! (`utoipa::ToSchema`, with `#[schema(...)]` where a field's Rust type is not its wire form), so a
//! field renamed, added or removed in a type changes the document with it.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::operation::{Operation, Reply, Verb};

/// The document for `operations`.
pub fn document(operations: &[Operation]) -> Value {
    let schemas = schemas();
    let mut paths = Map::new();
    for operation in operations {
        let item = paths.entry(operation.path).or_insert_with(|| json!({}));
        if let Some(item) = item.as_object_mut() {
            item.insert(
                operation.verb.as_str().to_owned(),
                describe(operation, &schemas),
            );
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Odock admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Management plane of the Odock AI governance gateway. JSON bodies with camelCase \
                fields, RFC 3339 UTC timestamps, money in integer nanos USD. Lists answer \
                {\"data\":[...],\"nextCursor\":null|\"...\"} and accept ?limit= (default 50, max 500) and ?cursor=.",
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearerAuth": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token from POST /api/auth/login (the web UI sends the \
                        odock_session cookie instead), or ODOCK_ADMIN_TOKEN (acts as SUPER_ADMIN).",
                },
            },
            "schemas": schemas,
        },
    })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": json_content(schema_ref("Error")) })
}

/// The `{name}` segments of a path template.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Describes a path parameter by the collection segment before it (`/providers/{id}` → provider).
fn path_parameter_description(collection: &str) -> &'static str {
    match collection {
        "organisations" => "The organisation's id.",
        "providers" => "The provider's id.",
        "keys" => "The provider key's id.",
        "models" | "model-access" => "The model's id.",
        "apikeys" => "The API key's id.",
        "usage-records" => "The usage record's id.",
        "teams" => "The team's id.",
        "members" => "The member's user id.",
        "budgets" => "The budget's id.",
        "quotas" => "The quota's id.",
        _ => "The object's id.",
    }
}

fn describe(operation: &Operation, schemas: &Map<String, Value>) -> Value {
    let segments: Vec<&str> = operation.path.split('/').collect();
    let mut parameters: Vec<Value> = segments
        .windows(2)
        .filter_map(|pair| {
            let name = pair[1].strip_prefix('{')?.strip_suffix('}')?;
            Some(json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": path_parameter_description(pair[0]),
                "schema": { "type": "string" },
            }))
        })
        .collect();
    parameters.extend(operation.query.iter().map(|param| {
        let schema = match param.kind {
            "integer" => json!({ "type": "integer", "minimum": 0 }),
            "boolean" => json!({ "type": "boolean" }),
            "date-time" => json!({ "type": "string", "format": "date-time" }),
            _ => json!({ "type": "string" }),
        };
        json!({
            "name": param.name,
            "in": "query",
            "required": false,
            "description": param.description,
            "schema": schema,
        })
    }));

    let mut responses = Map::new();
    let (status, success) = match operation.reply {
        Reply::Created(schema) => (
            "201",
            json!({ "description": "Created", "content": json_content(schema_ref(schema)) }),
        ),
        Reply::Ok(schema) => (
            "200",
            json!({ "description": "OK", "content": json_content(schema_ref(schema)) }),
        ),
        Reply::List(schema) => (
            "200",
            json!({ "description": "OK", "content": json_content(list_of(schema)) }),
        ),
        Reply::NoContent => ("204", json!({ "description": "No content" })),
    };
    responses.insert(status.into(), success);
    if operation.request.is_some() || !operation.query.is_empty() {
        responses.insert(
            "400".into(),
            error_response("invalid_request (with `field` when one is at fault)"),
        );
    }
    let write = operation.verb != Verb::Get;
    if !operation.public {
        responses.insert("401".into(), error_response("unauthorized"));
        responses.insert(
            "403".into(),
            error_response(if write {
                "forbidden (the caller's role does not allow this); csrf_rejected (a cookie-authenticated write from another origin or not JSON)"
            } else {
                "forbidden (the caller's role does not allow this)"
            }),
        );
        responses.insert(
            "429".into(),
            error_response(
                "too_many_attempts (repeated wrong admin tokens from this IP), with Retry-After",
            ),
        );
    } else if write {
        responses.insert(
            "403".into(),
            error_response("csrf_rejected (sent by a page of another origin, or not JSON)"),
        );
    }
    if operation.path.contains('{') {
        responses.insert(
            "404".into(),
            error_response("not_found (also for another organisation's objects)"),
        );
    }
    if operation.request.is_some() {
        responses.insert(
            "409".into(),
            error_response("conflict (duplicate slug or name)"),
        );
    }
    responses.insert("500".into(), error_response("internal_error"));

    let mut described = json!({
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "description": format!("Access: {}", operation.access.describe()),
        "tags": [operation.tag],
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(request) = operation.request {
        // Bodies whose fields are all optional (patches, rotate) may be omitted.
        let required = schemas
            .get(request)
            .and_then(|schema| schema["required"].as_array())
            .is_some_and(|fields| !fields.is_empty());
        described["requestBody"] =
            json!({ "required": required, "content": json_content(schema_ref(request)) });
    }
    if operation.public {
        described["security"] = json!([]);
    }
    described
}

fn list_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["data", "nextCursor"],
        "properties": {
            "data": { "type": "array", "items": schema_ref(item) },
            "nextCursor": { "type": ["string", "null"] },
        },
    })
}

/// The types the route table names (their nested types are collected with them).
#[derive(OpenApi)]
#[openapi(components(schemas(
    crate::services::organisations::Organisation,
    crate::services::organisations::NewOrganisation,
    crate::services::organisations::OrganisationPatch,
    crate::services::organisations::OrganisationSettings,
    crate::services::organisations::SettingsPatch,
    crate::services::teams::Team,
    crate::services::teams::NewTeam,
    crate::services::teams::TeamPatch,
    crate::services::teams::TeamMember,
    crate::services::teams::NewTeamMember,
    crate::services::teams::TeamMemberPatch,
    crate::services::budgets::Budget,
    crate::services::budgets::NewBudget,
    crate::services::budgets::BudgetPatch,
    crate::services::budgets::BudgetWindow,
    crate::services::quotas::Quota,
    crate::services::quotas::NewQuota,
    crate::services::quotas::QuotaPatch,
    crate::services::quotas::QuotaWindow,
    crate::services::providers::Provider,
    crate::services::providers::NewProvider,
    crate::services::providers::ProviderPatch,
    crate::services::provider_keys::ProviderKey,
    crate::services::provider_keys::NewProviderKey,
    crate::services::notifications::NotificationChannel,
    crate::services::notifications::NewNotificationChannel,
    crate::services::notifications::NotificationChannelPatch,
    crate::services::notifications::Alert,
    crate::services::models::Model,
    crate::services::models::NewModel,
    crate::services::models::ModelPatch,
    crate::services::api_keys::ApiKey,
    crate::services::api_keys::IssuedApiKey,
    crate::services::api_keys::NewApiKey,
    crate::services::api_keys::ApiKeyPatch,
    crate::services::api_keys::RotateApiKey,
    crate::services::api_keys::Rotation,
    crate::services::grants::ModelGrant,
    crate::services::grants::GrantModels,
    crate::services::grants::GrantApiKeys,
    crate::services::users::User,
    crate::services::users::NewUser,
    crate::services::users::UserPatch,
    crate::services::invitations::Invitation,
    crate::services::invitations::IssuedInvitation,
    crate::services::invitations::NewInvitation,
    crate::services::invitations::NewOrganisationInvitation,
    crate::services::invitations::PublicInvitation,
    crate::services::invitations::AcceptInvitation,
    crate::services::mcp_servers::McpServer,
    crate::services::mcp_servers::NewMcpServer,
    crate::services::mcp_servers::McpServerPatch,
    crate::services::mcp_grants::McpGrant,
    crate::services::mcp_grants::GrantMcpServers,
    crate::analytics::UsageSummary,
    crate::invoices::Invoice,
    crate::audit_log::AuditEntry,
    super::dashboard::DashboardCounts,
    super::session::Login,
    super::session::SignedIn,
    super::session::Me,
    super::session::PasswordChange,
    odock_core::UsageRecord,
    odock_core::McpUsageRecord,
    odock_core::routing::RoutingDocument,
)))]
struct Derived;

/// Every schema the route table names, plus the ones they reference.
pub fn schemas() -> Map<String, Value> {
    let derived = Derived::openapi().components.map(|c| c.schemas);
    let mut schemas = match serde_json::to_value(derived) {
        Ok(Value::Object(schemas)) => schemas,
        _ => Map::new(),
    };
    // The three bodies without a serde type of their own: the error envelope (built by
    // `ApiError::into_response`), this document, and the provider-health report (built with `json!`).
    let string = json!({ "type": "string" });
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": { "error": {
                "type": "object",
                "required": ["code", "message", "type"],
                "properties": {
                    "code": string, "message": string, "type": string,
                    "field": { "type": "string", "description": "The offending field, on 400." },
                },
            }},
        }),
    );
    schemas.insert(
        "OpenApiDocument".into(),
        json!({ "type": "object", "description": "This OpenAPI 3.1 document." }),
    );
    schemas.insert(
        "ProviderHealthList".into(),
        json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": { "type": "array", "items": { "type": "object", "description": "{providerId, name, type, health:{state, since, consecutiveFailures, lastError, lastErrorAt}, keys:[{providerKeyId, name, revoked, health, rotation}]}" } },
                "nextCursor": { "type": ["string", "null"] },
            },
        }),
    );
    schemas
}

#[cfg(test)]
#[path = "openapi_tests.rs"]
mod tests;
