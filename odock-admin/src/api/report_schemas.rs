//! OpenAPI schemas of the usage summary, the invoice and the audit log (merged into
//! [`super::openapi::schemas`]); they mirror `odock_store::{analytics, invoices, audit}`.

use serde_json::{json, Value};

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties, "additionalProperties": false })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `(name, schema)` of every schema the summary, invoice and audit-log routes name.
pub fn schemas() -> Vec<(&'static str, Value)> {
    let int = json!({ "type": "integer" });
    let opt_int = json!({ "type": ["integer", "null"] });
    let string = json!({ "type": "string" });
    let opt_string = json!({ "type": ["string", "null"] });
    let time = json!({ "type": "string", "format": "date-time" });
    let opt_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let usd = json!({ "type": "string", "description": "The amount in USD with nine decimals, exactly the nanos." });
    let group_by = json!({ "type": ["string", "null"], "enum": ["day", "hour", "model", "apiKey", "team", "user", "provider", "mcpServer", "status", null] });

    let stats = json!({
        "requests": int, "successes": int, "errors": int,
        "successRate": { "type": ["number", "null"], "description": "Successes (HTTP status < 400) / requests." },
        "llmRequests": int, "mcpRequests": int,
        "inputTokens": int, "outputTokens": int, "cachedTokens": int, "reasoningTokens": int,
        "totalTokens": int, "billableTokens": int,
        "costNanosUsd": int, "llmCostNanosUsd": int, "mcpCostNanosUsd": int,
        "latencyP50Ms": opt_int, "latencyP95Ms": opt_int,
    });
    let stats_required = [
        "requests",
        "successes",
        "errors",
        "successRate",
        "llmRequests",
        "mcpRequests",
        "inputTokens",
        "outputTokens",
        "cachedTokens",
        "reasoningTokens",
        "totalTokens",
        "billableTokens",
        "costNanosUsd",
        "llmCostNanosUsd",
        "mcpCostNanosUsd",
        "latencyP50Ms",
        "latencyP95Ms",
    ];
    let mut group = stats.clone();
    group["key"] = json!({ "type": ["string", "null"], "description": "The day (YYYY-MM-DD), object id or provider; null for records without one." });
    group["label"] = string.clone();
    let mut group_required = stats_required.to_vec();
    group_required.extend(["key", "label"]);

    let line = json!({
        "id": opt_string, "name": string, "requests": int, "llmCostNanosUsd": int,
        "mcpCostNanosUsd": int, "costNanosUsd": int, "billableTokens": int, "costUsd": usd,
    });
    let lines = json!({ "type": "array", "items": schema_ref("InvoiceLine") });
    let ids = json!({ "type": "array", "items": { "type": "string" } });

    vec![
        ("UsageStats", object(&stats_required, stats)),
        ("UsageGroup", object(&group_required, group)),
        (
            "UsageSummary",
            object(
                &[
                    "from",
                    "to",
                    "groupBy",
                    "latencyPercentiles",
                    "totals",
                    "groups",
                ],
                json!({
                    "from": opt_time, "to": opt_time, "groupBy": group_by,
                    "latencyPercentiles": { "type": "string", "enum": ["exact", "estimated"],
                        "description": "exact nearest-rank values, or estimated from histogram buckets when the report covers more than 50,000 records" },
                    "totals": schema_ref("UsageStats"),
                    "groups": { "type": "array", "items": schema_ref("UsageGroup") },
                }),
            ),
        ),
        (
            "InvoiceLine",
            object(
                &[
                    "id",
                    "name",
                    "requests",
                    "llmCostNanosUsd",
                    "mcpCostNanosUsd",
                    "costNanosUsd",
                    "billableTokens",
                    "costUsd",
                ],
                line,
            ),
        ),
        (
            "InvoiceTotals",
            object(
                &[
                    "requests",
                    "llmRequests",
                    "mcpRequests",
                    "llmCostNanosUsd",
                    "mcpCostNanosUsd",
                    "costNanosUsd",
                    "billableTokens",
                    "llmCostUsd",
                    "mcpCostUsd",
                    "costUsd",
                ],
                json!({
                    "requests": int, "llmRequests": int, "mcpRequests": int, "llmCostNanosUsd": int,
                    "mcpCostNanosUsd": int, "costNanosUsd": int, "billableTokens": int,
                    "llmCostUsd": usd, "mcpCostUsd": usd, "costUsd": usd,
                }),
            ),
        ),
        (
            "Invoice",
            object(
                &[
                    "organisationId",
                    "period",
                    "teamIds",
                    "apiKeyIds",
                    "generatedAt",
                    "totals",
                    "byTeam",
                    "byApiKey",
                    "byModel",
                    "byMcpServer",
                ],
                json!({
                    "organisationId": string,
                    "period": object(&["from", "to"], json!({ "from": time, "to": time })),
                    "teamIds": ids, "apiKeyIds": ids, "generatedAt": time,
                    "totals": schema_ref("InvoiceTotals"),
                    "byTeam": lines, "byApiKey": lines,
                    "byModel": { "type": "array", "items": schema_ref("InvoiceLine"), "description": "LLM traffic only." },
                    "byMcpServer": { "type": "array", "items": schema_ref("InvoiceLine"), "description": "MCP traffic only." },
                }),
            ),
        ),
        (
            "AuditEntry",
            object(
                &[
                    "id",
                    "at",
                    "organisationId",
                    "actorUserId",
                    "actorKind",
                    "action",
                    "targetType",
                    "targetId",
                    "summary",
                ],
                json!({
                    "id": string, "at": time, "organisationId": opt_string, "actorUserId": opt_string,
                    "actorKind": { "type": "string", "enum": ["user", "admin-token"] },
                    "action": { "type": "string", "description": "The operation id of the admin route." },
                    "targetType": string, "targetId": opt_string,
                    "summary": {
                        "type": "object",
                        "description": "{path, request, before, after}, secrets removed.",
                        "additionalProperties": true,
                    },
                }),
            ),
        ),
    ]
}
