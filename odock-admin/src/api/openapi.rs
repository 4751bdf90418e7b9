//! The OpenAPI 3.1 document of a route table ([`super::routes`] serves it at `GET /api/openapi.json`)
//! and the schemas below, which mirror the serde structs of `crate::services`.

use serde_json::{json, Map, Value};

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
    use crate::services::budgets::{Currency, THRESHOLDS};
    use odock_core::{
        ApiKeyType, BudgetPeriod, Capability, ModelType, OwnerType, ProviderType, QuotaMetric,
        TeamRole,
    };

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
    let policy = schema_ref("Policy");
    let owner_type = enum_of(
        &OwnerType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
    );
    let period = enum_of(
        &BudgetPeriod::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
    );
    let metric = enum_of(
        &QuotaMetric::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
    );
    let team_role = enum_of(&TeamRole::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>());
    let currency = enum_of(&Currency::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>());
    let thresholds = json!({ "type": "array", "items": { "type": "integer", "enum": THRESHOLDS } });
    let positive = json!({ "type": "integer", "minimum": 1 });
    let timezone = json!({ "type": "string", "description": "IANA timezone; default UTC." });
    let owner_id = json!({
        "type": ["string", "null"],
        "description": "The team, user or API key id; absent for ORG, required otherwise.",
    });

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
                "status": org_status, "routingEnabled": boolean, "policies": policy,
            }),
            false,
        ),
    );
    add(
        "OrganisationSettings",
        object(
            &["name", "contact", "routingEnabled", "policies"],
            json!({ "name": string, "contact": opt_string, "routingEnabled": boolean, "policies": policy }),
            false,
        ),
    );
    add(
        "SettingsPatch",
        object(
            &[],
            json!({ "name": string, "contact": opt_string, "routingEnabled": boolean, "policies": policy }),
            false,
        ),
    );
    add(
        "Policy",
        json!({
            "type": "object",
            "description": "Rate-limit and network policy; absent or 0 means no limit.",
            "properties": {
                "ipAllowlist": ids, "ipBlocklist": ids, "requestsPerSecond": rate, "requestsPerMinute": rate,
                "burst": rate, "tokensPerMinute": rate, "maxTokensPerRequest": rate, "maxRequestBytes": rate,
                "maxConcurrentRequests": rate, "concurrencyLeaseTtlMs": rate,
            },
            "additionalProperties": false,
        }),
    );

    add(
        "Team",
        object(
            &[
                "id",
                "organisationId",
                "name",
                "policies",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "organisationId": string, "name": string, "policies": policy,
                "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewTeam",
        object(
            &["name"],
            json!({ "name": string, "policies": policy }),
            false,
        ),
    );
    add(
        "TeamPatch",
        object(&[], json!({ "name": string, "policies": policy }), false),
    );
    add(
        "TeamMember",
        object(
            &[
                "teamId",
                "userId",
                "email",
                "name",
                "role",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "teamId": string, "userId": string, "email": string, "name": opt_string, "role": team_role,
                "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewTeamMember",
        object(
            &["userId", "role"],
            json!({ "userId": string, "role": team_role }),
            false,
        ),
    );
    add(
        "TeamMemberPatch",
        object(&["role"], json!({ "role": team_role }), false),
    );

    add(
        "Budget",
        object(
            &[
                "id",
                "organisationId",
                "name",
                "ownerType",
                "ownerId",
                "amountNanos",
                "currency",
                "period",
                "startAt",
                "timezone",
                "endAt",
                "thresholds",
                "rollover",
                "active",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "organisationId": string, "name": string, "ownerType": owner_type,
                "ownerId": opt_string, "amountNanos": int, "currency": currency, "period": period,
                "startAt": time, "timezone": string, "endAt": opt_time, "thresholds": thresholds,
                "rollover": boolean, "active": boolean, "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewBudget",
        object(
            &["name", "ownerType", "amountNanos", "period"],
            json!({
                "name": string, "ownerType": owner_type, "ownerId": owner_id, "amountNanos": positive,
                "period": period, "startAt": { "type": "string", "format": "date-time", "description": "Default: now." },
                "timezone": timezone, "endAt": { "type": "string", "format": "date-time", "description": "After startAt." },
                "thresholds": thresholds, "rollover": { "type": "boolean", "description": "Stored, not yet applied." },
                "active": boolean, "currency": currency,
            }),
            false,
        ),
    );
    add(
        "BudgetPatch",
        object(
            &[],
            json!({
                "name": string, "amountNanos": positive, "currency": currency, "period": period, "startAt": time,
                "timezone": timezone, "endAt": opt_time, "thresholds": thresholds, "rollover": boolean,
                "active": boolean,
            }),
            false,
        ),
    );
    add(
        "BudgetWindow",
        object(
            &["id", "startAt", "endAt", "usedNanos", "reservedNanos"],
            json!({
                "id": { "type": ["string", "null"], "description": "null until the ledger creates the window." },
                "startAt": time, "endAt": time, "usedNanos": int, "reservedNanos": int,
            }),
            false,
        ),
    );
    add(
        "Quota",
        object(
            &[
                "id",
                "organisationId",
                "name",
                "ownerType",
                "ownerId",
                "metric",
                "limit",
                "period",
                "startAt",
                "timezone",
                "endAt",
                "active",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "organisationId": string, "name": string, "ownerType": owner_type,
                "ownerId": opt_string, "metric": metric, "limit": int, "period": period, "startAt": time,
                "timezone": string, "endAt": opt_time, "active": boolean, "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewQuota",
        object(
            &["name", "ownerType", "metric", "limit", "period"],
            json!({
                "name": string, "ownerType": owner_type, "ownerId": owner_id, "metric": metric, "limit": positive,
                "period": period, "startAt": { "type": "string", "format": "date-time", "description": "Default: now." },
                "timezone": timezone, "endAt": { "type": "string", "format": "date-time", "description": "After startAt." },
                "active": boolean,
            }),
            false,
        ),
    );
    add(
        "QuotaPatch",
        object(
            &[],
            json!({
                "name": string, "limit": positive, "period": period, "startAt": time, "timezone": timezone,
                "endAt": opt_time, "active": boolean,
            }),
            false,
        ),
    );
    add(
        "QuotaWindow",
        object(
            &["id", "startAt", "endAt", "used", "reserved"],
            json!({
                "id": { "type": ["string", "null"], "description": "null until the ledger creates the window." },
                "startAt": time, "endAt": time, "used": int, "reserved": int,
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

    let channel_type = enum_of(&["WEBHOOK", "EMAIL"]);
    let events =
        json!({ "type": "array", "items": enum_of(crate::services::notifications::EVENTS) });
    let emails = json!({ "type": "array", "items": { "type": "string", "format": "email" } });
    add(
        "NotificationChannel",
        object(
            &[
                "id",
                "organisationId",
                "name",
                "type",
                "url",
                "emails",
                "hasSecret",
                "events",
                "enabled",
                "createdAt",
                "updatedAt",
            ],
            json!({
                "id": string, "organisationId": string, "name": string, "type": channel_type,
                "url": opt_string, "emails": emails, "hasSecret": boolean, "events": events,
                "enabled": boolean, "createdAt": time, "updatedAt": time,
            }),
            false,
        ),
    );
    add(
        "NewNotificationChannel",
        object(
            &["name", "type"],
            json!({
                "name": string, "type": channel_type, "url": { "type": "string", "description": "WEBHOOK: where alerts are POSTed (egress policy applies)." },
                "emails": emails,
                "secret": { "type": "string", "writeOnly": true, "description": "WEBHOOK: HMAC-SHA256 key of X-Odock-Signature (16-512 characters); sealed at rest, never returned." },
                "events": events, "enabled": boolean,
            }),
            false,
        ),
    );
    add(
        "NotificationChannelPatch",
        object(
            &[],
            json!({
                "name": string, "url": string, "emails": emails,
                "secret": { "type": ["string", "null"], "writeOnly": true },
                "events": events, "enabled": boolean,
            }),
            false,
        ),
    );
    add(
        "AlertDelivery",
        object(
            &[
                "id",
                "channelId",
                "channelType",
                "status",
                "attempts",
                "lastError",
                "deliveredAt",
            ],
            json!({
                "id": string, "channelId": string, "channelType": channel_type,
                "status": enum_of(&["PENDING", "SENDING", "DELIVERED", "FAILED"]),
                "attempts": int, "lastError": opt_string, "deliveredAt": opt_time,
            }),
            false,
        ),
    );
    add(
        "Alert",
        object(
            &[
                "id",
                "organisationId",
                "event",
                "data",
                "occurredAt",
                "deliveries",
            ],
            json!({
                "id": string, "organisationId": string, "event": string, "data": map,
                "occurredAt": time,
                "deliveries": { "type": "array", "items": { "$ref": "#/components/schemas/AlertDelivery" } },
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
                "pricing": nullable(schema_ref("ModelPricing")), "policies": policy, "config": map, "enabled": boolean,
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
                "capabilities": capabilities, "pricing": nullable(schema_ref("ModelPricing")), "policies": policy,
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
                "capabilities": capabilities, "pricing": nullable(schema_ref("ModelPricing")), "policies": policy,
                "config": map, "enabled": boolean,
            }),
            false,
        ),
    );

    let api_key_properties = json!({
        "id": string, "organisationId": string, "name": string, "type": key_type, "teamId": opt_string,
        "userId": opt_string, "preview": string, "expiresAt": opt_time, "timezone": string, "revoked": boolean,
        "revealed": boolean, "rotations": int, "policies": policy, "createdAt": time, "updatedAt": time,
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
        "ApiKeyRotation",
        object(
            &[
                "id",
                "apiKeyId",
                "previousPreview",
                "previousExpiresAt",
                "newExpiresAt",
                "rotatedBy",
                "rotatedAt",
            ],
            json!({
                "id": string, "apiKeyId": string,
                "previousPreview": { "type": "string", "description": "Preview of the secret this rotation replaced." },
                "previousExpiresAt": { "type": ["string", "null"], "format": "date-time" },
                "newExpiresAt": { "type": ["string", "null"], "format": "date-time" },
                "rotatedBy": { "type": ["string", "null"], "description": "The user id, or `admin-token`." },
                "rotatedAt": { "type": "string", "format": "date-time" },
            }),
            false,
        ),
    );
    add(
        "DashboardCounts",
        object(
            &[
                "apiKeys",
                "models",
                "providers",
                "mcpServers",
                "teams",
                "users",
            ],
            json!({
                "apiKeys": { "type": "integer", "description": "The keys the caller sees." },
                "models": { "type": "integer" },
                "providers": { "type": ["integer", "null"], "description": "null for roles that may not list providers." },
                "mcpServers": { "type": "integer" },
                "teams": { "type": "integer", "description": "The teams the caller sees." },
                "users": { "type": ["integer", "null"], "description": "null for roles that may not list users." },
            }),
            false,
        ),
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
                "timezone": { "type": "string", "default": "UTC" }, "policies": policy,
            }),
            false,
        ),
    );
    add(
        "ApiKeyPatch",
        object(
            &[],
            json!({
                "name": string, "expiresAt": opt_time, "timezone": string, "policies": policy,
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
        "RoutingCandidate",
        object(
            &["modelId"],
            json!({ "modelId": string, "priority": int, "weight": int }),
            false,
        ),
    );
    add(
        "RoutingPolicy",
        object(
            &["modelType", "strategy", "candidates"],
            json!({
                "modelType": { "type": "string", "enum": ["chat", "reasoning", "image", "embeddings", "audio", "moderation", "transcription", "tts", "ocr"] },
                "strategy": { "type": "string", "enum": ["failover", "priority", "round_robin", "weighted"] },
                "candidates": { "type": "array", "items": schema_ref("RoutingCandidate") },
                "maxRetries": { "type": "integer", "minimum": 0, "maximum": 10, "default": 0 },
                "retryDelayMs": { "type": "integer", "minimum": 0, "maximum": 60000, "default": 0 },
                "triggers": { "type": "array", "items": { "type": "string", "enum": ["5xx", "timeout", "rate_limit", "any"] }, "default": ["5xx", "timeout"] },
            }),
            false,
        ),
    );
    add(
        "RoutingDocument",
        object(
            &[],
            json!({ "policies": { "type": "array", "items": schema_ref("RoutingPolicy") } }),
            false,
        ),
    );
    add(
        "ProviderHealthList",
        object(
            &["data"],
            json!({ "data": { "type": "array", "items": { "type": "object", "description": "{providerId, name, type, health:{state, since, consecutiveFailures, lastError, lastErrorAt}, keys:[{providerKeyId, name, revoked, health}]}" } }, "nextCursor": opt_string }),
            false,
        ),
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
    for (name, schema) in super::auth_schemas::schemas() {
        schemas.insert(name.to_owned(), schema);
    }
    super::mcp_servers::openapi_schemas(&mut schemas);
    for (name, schema) in super::report_schemas::schemas() {
        schemas.insert(name.to_owned(), schema);
    }
    schemas
}
