//! `GET /api/openapi.json`: an OpenAPI 3.1 document built from the route table ([`super::routes`])
//! and the schemas below, which mirror the serde structs of `odock_store::admin`.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{json, Map, Value};

use super::routes::{operations, Operation, Reply};

/// Serves the document (built once).
pub async fn serve() -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(|| document(&operations())).clone())
}

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
                    "description": "ODOCK_ADMIN_TOKEN (acts as SUPER_ADMIN).",
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
    if !operation.public {
        responses.insert("401".into(), error_response("unauthorized"));
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

fn object(required: &[&str], properties: Value, additional: bool) -> Value {
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": additional,
    })
}

fn enum_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn nullable(schema: Value) -> Value {
    json!({ "oneOf": [schema, { "type": "null" }] })
}

/// Every schema the route table names, plus the ones they reference.
pub fn schemas() -> Map<String, Value> {
    use odock_core::{ApiKeyType, Capability, ModelType, ProviderType};

    let string = json!({ "type": "string" });
    let opt_string = json!({ "type": ["string", "null"] });
    let time = json!({ "type": "string", "format": "date-time" });
    let opt_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let boolean = json!({ "type": "boolean" });
    let int = json!({ "type": "integer" });
    let map = json!({ "type": "object", "additionalProperties": true });
    let provider_type = enum_of(
        &ProviderType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
    );
    let model_type = enum_of(
        &ModelType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
    );
    let key_type = enum_of(
        &ApiKeyType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
    );
    let capabilities = json!({
        "type": "array",
        "items": enum_of(&Capability::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
    });
    let org_status = enum_of(&["active", "disabled"]);
    let ids = json!({ "type": "array", "items": { "type": "string" } });
    let rate = json!({ "type": "integer", "minimum": 0 });

    let mut schemas = Map::new();
    let mut add = |name: &str, schema: Value| {
        schemas.insert(name.to_owned(), schema);
    };

    add(
        "Error",
        object(
            &["error"],
            json!({
                "error": object(&["code", "message", "type"], json!({
                    "code": string, "message": string, "type": string,
                    "field": { "type": "string", "description": "The offending field, on 400." },
                }), false),
            }),
            false,
        ),
    );
    add(
        "OpenApiDocument",
        json!({ "type": "object", "description": "This OpenAPI 3.1 document." }),
    );

    add(
        "Organisation",
        object(
            &[
                "id",
                "name",
                "slug",
                "contact",
                "status",
                "routingEnabled",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "name": string, "slug": string, "contact": opt_string, "status": org_status,
                "routingEnabled": boolean, "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewOrganisation",
        object(
            &["name"],
            json!({
                "name": string,
                "slug": { "type": "string", "pattern": "^[a-z0-9-]{1,100}$", "description": "Derived from the name when absent." },
                "contact": opt_string,
            }),
            false,
        ),
    );
    add(
        "OrganisationPatch",
        object(
            &[],
            json!({
                "name": string, "slug": { "type": "string", "pattern": "^[a-z0-9-]{1,100}$" }, "contact": opt_string,
                "status": org_status, "routingEnabled": boolean,
            }),
            false,
        ),
    );

    add(
        "Provider",
        object(
            &[
                "id",
                "organisationId",
                "type",
                "name",
                "baseUrl",
                "timeoutMs",
                "enabled",
                "config",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "organisationId": string, "type": provider_type, "name": string,
                "baseUrl": { "type": "string", "format": "uri" }, "timeoutMs": { "type": ["integer", "null"] },
                "enabled": boolean, "config": map, "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewProvider",
        object(
            &["type", "name"],
            json!({
                "type": provider_type, "name": string,
                "baseUrl": { "type": "string", "format": "uri", "description": "http(s); defaults per provider type." },
                "timeoutMs": { "type": "integer", "minimum": 1, "maximum": 3_600_000 }, "enabled": boolean, "config": map,
            }),
            false,
        ),
    );
    add(
        "ProviderPatch",
        object(
            &[],
            json!({
                "name": string, "baseUrl": { "type": "string", "format": "uri" },
                "timeoutMs": { "type": ["integer", "null"], "minimum": 1, "maximum": 3_600_000 }, "enabled": boolean, "config": map,
            }),
            false,
        ),
    );

    add(
        "ProviderKey",
        object(
            &[
                "id",
                "providerId",
                "name",
                "preview",
                "revoked",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "providerId": string, "name": string, "preview": string, "revoked": boolean,
                "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewProviderKey",
        object(
            &["name", "key"],
            json!({
                "name": string, "key": { "type": "string", "writeOnly": true, "description": "Sealed at rest; never returned." },
            }),
            false,
        ),
    );

    add(
        "TokenRates",
        object(
            &[],
            json!({
                "text": rate, "image": rate, "audio": rate, "video": rate, "reasoning": rate,
            }),
            false,
        ),
    );
    add(
        "ModelPricing",
        json!({
            "type": "object",
            "description": "Token rates in nanos USD per 1M tokens; unitRate in nanos USD per 1,000 units. Omitted rates are 0.",
            "properties": {
                "input": schema_ref("TokenRates"),
                "output": schema_ref("TokenRates"),
                "cachedInputDiscountPercent": { "type": "integer", "minimum": 0, "maximum": 100 },
                "embeddings": rate,
                "unitRate": rate,
                "unitKind": opt_string,
            },
            "additionalProperties": false,
        }),
    );
    add(
        "Model",
        object(
            &[
                "id",
                "organisationId",
                "name",
                "slug",
                "type",
                "providerId",
                "providerKeyId",
                "capabilities",
                "pricing",
                "policies",
                "config",
                "enabled",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "organisationId": string, "name": string, "slug": string, "type": model_type,
                "providerId": string, "providerKeyId": opt_string, "capabilities": capabilities,
                "pricing": nullable(schema_ref("ModelPricing")), "policies": map, "config": map, "enabled": boolean,
                "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewModel",
        object(
            &["name", "slug", "type", "providerId"],
            json!({
                "name": string, "slug": string, "type": model_type, "providerId": string, "providerKeyId": opt_string,
                "capabilities": capabilities, "pricing": nullable(schema_ref("ModelPricing")), "policies": map,
                "config": map, "enabled": boolean,
            }),
            false,
        ),
    );
    add(
        "ModelPatch",
        object(
            &[],
            json!({
                "name": string, "slug": string, "type": model_type, "providerId": string, "providerKeyId": opt_string,
                "capabilities": capabilities, "pricing": nullable(schema_ref("ModelPricing")), "policies": map,
                "config": map, "enabled": boolean,
            }),
            false,
        ),
    );

    let api_key_properties = json!({
        "id": string, "organisationId": string, "name": string, "type": key_type, "teamId": opt_string,
        "userId": opt_string, "preview": string, "expiresAt": opt_time, "timezone": string, "revoked": boolean,
        "revealed": boolean, "rotations": int, "policies": map, "createdAt": time, "updatedAt": time,
    });
    let api_key_required = [
        "id",
        "organisationId",
        "name",
        "type",
        "teamId",
        "userId",
        "preview",
        "expiresAt",
        "timezone",
        "revoked",
        "revealed",
        "rotations",
        "policies",
        "createdAt",
        "updatedAt",
    ];
    add(
        "ApiKey",
        object(&api_key_required, api_key_properties.clone(), false),
    );
    let mut issued_properties = api_key_properties;
    issued_properties["key"] = json!({ "type": "string", "description": "The plaintext key, shown only in this response." });
    let mut issued_required = api_key_required.to_vec();
    issued_required.push("key");
    add(
        "IssuedApiKey",
        object(&issued_required, issued_properties, false),
    );
    add(
        "NewApiKey",
        object(
            &["name", "type"],
            json!({
                "name": string, "type": key_type,
                "teamId": { "type": "string", "description": "Required for TEAM keys, refused otherwise." },
                "userId": { "type": "string", "description": "Required for USER keys, refused otherwise." },
                "expiresAt": { "type": "string", "format": "date-time", "description": "Must be in the future." },
                "timezone": { "type": "string", "default": "UTC" }, "policies": map,
            }),
            false,
        ),
    );
    add(
        "ApiKeyPatch",
        object(
            &[],
            json!({
                "name": string, "expiresAt": opt_time, "timezone": string, "policies": map,
            }),
            false,
        ),
    );
    add(
        "RotateApiKey",
        object(
            &[],
            json!({
                "expiresAt": { "type": "string", "format": "date-time", "description": "Must be in the future; default: unchanged." },
            }),
            false,
        ),
    );

    add(
        "ModelGrant",
        object(
            &[
                "apiKeyId",
                "apiKeyName",
                "modelId",
                "modelName",
                "createdAt",
            ],
            json!({ "apiKeyId": string, "apiKeyName": string, "modelId": string, "modelName": string, "createdAt": time }),
            false,
        ),
    );
    add(
        "GrantModels",
        object(&["modelIds"], json!({ "modelIds": ids }), false),
    );
    add(
        "GrantApiKeys",
        object(&["apiKeyIds"], json!({ "apiKeyIds": ids }), false),
    );

    add(
        "TokenUsage",
        object(
            &[],
            json!({
                "input": int, "output": int, "cachedInput": int, "reasoning": int, "inputAudio": int, "outputAudio": int,
                "inputImage": int, "outputImage": int, "units": int, "unitKind": string,
            }),
            true,
        ),
    );
    add(
        "UsageRecord",
        object(
            &[
                "id",
                "requestId",
                "organisationId",
                "apiKeyId",
                "provider",
                "endpoint",
                "httpStatus",
                "latencyMs",
                "gatewayOverheadUs",
                "stream",
                "tokens",
                "billableTokens",
                "costNanosUsd",
                "createdAt",
            ],
            json!({
                "id": string, "requestId": string, "organisationId": string, "teamId": opt_string, "userId": opt_string,
                "apiKeyId": string, "provider": string, "model": opt_string, "modelId": opt_string, "endpoint": string,
                "httpStatus": int, "errorCode": opt_string, "latencyMs": int, "gatewayOverheadUs": int,
                "stream": boolean, "tokens": schema_ref("TokenUsage"), "billableTokens": int, "costNanosUsd": int,
                "billing": map, "providerUsage": { "type": ["object", "null"] }, "routing": { "type": ["object", "null"] },
                "metadata": map, "providerRequestId": opt_string, "traceId": opt_string, "createdAt": time,
            }),
            true,
        ),
    );
    schemas
}
