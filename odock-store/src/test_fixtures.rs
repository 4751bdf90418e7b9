//! Rows for the store's own tests, written with plain SQL: the store's tests must not depend on
//! the admin services (in `odock-admin`, which depends on this crate) to set up what they read.

use std::collections::BTreeMap;

use chrono::DateTime;
use odock_core::new_object_id;
use odock_core::secret::preview;
use serde_json::Value;

use crate::crypto::MasterKey;
use crate::db::{now_ms, Db};
use crate::mcp_config::stdio_fingerprint;

pub async fn pool() -> Db {
    crate::testing::database().await
}

pub async fn org(pool: &Db, name: &str) -> String {
    let id = new_object_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO organisations (id, name, slug, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(format!("{}-{id}", name.to_lowercase()))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// An ORGANISATION key.
pub async fn api_key(pool: &Db, org: &str) -> String {
    let id = new_object_id();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO api_keys (id, organisation_id, name, type, key_hash, preview, created_at, updated_at) \
         VALUES ($1, $2, 'k', 'ORGANISATION', $3, 'sk_abc…wxyz', $4, $5)",
    )
    .bind(&id)
    .bind(org)
    .bind(format!("hash-{id}"))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    id
}

fn text<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

fn start_at(body: &Value) -> i64 {
    text(body, "startAt")
        .map(|at| DateTime::parse_from_rfc3339(at).unwrap().timestamp_millis())
        .unwrap_or_else(now_ms)
}

/// The owner columns (`team_id`, `user_id`, `api_key_id`) of an admin-API-shaped body.
fn owner(body: &Value) -> [Option<String>; 3] {
    let id = text(body, "ownerId").map(str::to_owned);
    match text(body, "ownerType").unwrap_or("ORG") {
        "TEAM" => [id, None, None],
        "USER" => [None, id, None],
        "APIKEY" => [None, None, id],
        _ => [None, None, None],
    }
}

/// A budget from an admin-API-shaped body (`name, ownerType, ownerId?, amountNanos, period,
/// startAt?, timezone?, thresholds?`).
pub async fn budget(pool: &Db, org: &str, body: Value) -> String {
    let id = new_object_id();
    let now = now_ms();
    let [team, user, key] = owner(&body);
    sqlx::query(
        "INSERT INTO budgets (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
         amount_nanos, period, start_at, timezone, thresholds, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&id)
    .bind(org)
    .bind(text(&body, "name").unwrap())
    .bind(text(&body, "ownerType").unwrap_or("ORG"))
    .bind(team)
    .bind(user)
    .bind(key)
    .bind(body["amountNanos"].as_i64().unwrap())
    .bind(text(&body, "period").unwrap())
    .bind(start_at(&body))
    .bind(text(&body, "timezone").unwrap_or("UTC"))
    .bind(body.get("thresholds").cloned().unwrap_or(Value::Array(vec![])).to_string())
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// A quota from an admin-API-shaped body (`name, ownerType, ownerId?, metric, limit, period,
/// startAt?, timezone?`).
pub async fn quota(pool: &Db, org: &str, body: Value) -> String {
    let id = new_object_id();
    let now = now_ms();
    let [team, user, key] = owner(&body);
    sqlx::query(
        "INSERT INTO quotas (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
         metric, limit_value, period, start_at, timezone, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&id)
    .bind(org)
    .bind(text(&body, "name").unwrap())
    .bind(text(&body, "ownerType").unwrap_or("ORG"))
    .bind(team)
    .bind(user)
    .bind(key)
    .bind(text(&body, "metric").unwrap())
    .bind(body["limit"].as_i64().unwrap())
    .bind(text(&body, "period").unwrap())
    .bind(start_at(&body))
    .bind(text(&body, "timezone").unwrap_or("UTC"))
    .bind(now)
    .bind(now)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Sets `active` of a budget or quota.
pub async fn set_active(pool: &Db, table: &str, id: &str, active: bool) {
    sqlx::query(&format!("UPDATE {table} SET active = $1 WHERE id = $2"))
        .bind(i64::from(active))
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
}

/// An MCP server from an admin-API-shaped body (`transport?` (STREAMABLE_HTTP), `endpointUrl?`,
/// `stdioCommand?`, `stdioArgs?`, `stdioEnv?`, `authType?`, `authConfig?`, `allowedTools?`,
/// `semanticFilter?`, `pricing?`), secrets sealed with `master_key` as the admin services seal
/// them. `approved`: the stdio launch carries the operator's approval.
pub async fn mcp_server(
    pool: &Db,
    master_key: &MasterKey,
    org: &str,
    slug: &str,
    body: Value,
    approved: bool,
) -> String {
    let id = new_object_id();
    let now = now_ms();
    let transport = text(&body, "transport").unwrap_or("STREAMABLE_HTTP");
    let endpoint = match body.get("endpointUrl") {
        Some(Value::Null) => None,
        Some(url) => url.as_str().map(str::to_owned),
        None => Some("https://mcp.example/mcp".to_owned()),
    };
    let command = text(&body, "stdioCommand");
    let args: Vec<String> = body
        .get("stdioArgs")
        .map(|args| serde_json::from_value(args.clone()).unwrap())
        .unwrap_or_default();
    let env: BTreeMap<String, String> = body
        .get("stdioEnv")
        .map(|env| serde_json::from_value(env.clone()).unwrap())
        .unwrap_or_default();
    let seal = |value: &Value| master_key.seal(&value.to_string()).unwrap();
    let env_envelope = (!env.is_empty()).then(|| seal(&serde_json::to_value(&env).unwrap()));
    let env_preview: BTreeMap<&String, String> = env
        .iter()
        .map(|(name, value)| (name, preview(value)))
        .collect();
    let auth_envelope = body.get("authConfig").map(seal);
    let approval =
        approved.then(|| stdio_fingerprint(command, &args, env.keys().map(String::as_str)));
    let json = |field: &str, default: &str| {
        body.get(field)
            .map(Value::to_string)
            .unwrap_or_else(|| default.to_owned())
    };
    sqlx::query(
        "INSERT INTO mcp_servers (id, organisation_id, name, slug, transport, endpoint_url, \
         stdio_command, stdio_args, stdio_env, stdio_env_preview, auth_type, auth_config, \
         allowed_tools, semantic_filter, pricing, created_at, updated_at, stdio_approval) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
    )
    .bind(&id)
    .bind(org)
    .bind(slug)
    .bind(slug)
    .bind(transport)
    .bind(endpoint)
    .bind(command)
    .bind(serde_json::to_string(&args).unwrap())
    .bind(env_envelope)
    .bind(serde_json::to_string(&env_preview).unwrap())
    .bind(text(&body, "authType").unwrap_or("NONE"))
    .bind(auth_envelope)
    .bind(json("allowedTools", "[]"))
    .bind(json("semanticFilter", "{}"))
    .bind(json("pricing", "{}"))
    .bind(now)
    .bind(now)
    .bind(approval)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// Runs one statement with string parameters (a column changed behind the admin services' back).
pub async fn execute(pool: &Db, sql: &str, binds: &[&str]) {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    query.execute(pool).await.unwrap();
}

pub async fn grant_mcp(pool: &Db, key: &str, server: &str) {
    sqlx::query(
        "INSERT INTO api_key_mcp_access (api_key_id, mcp_server_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(key)
    .bind(server)
    .bind(now_ms())
    .execute(pool)
    .await
    .unwrap();
}
