//! In-process tests of the MCP parts of the admin API: MCP servers (secrets sealed, previews only),
//! MCP grants from both sides, and MCP usage records.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use odock_core::{
    CacheInvalidator, CacheKind, InvalidationCommand, McpPricing, McpUsageRecord, RequestId,
    Secret, TokenUsage, UsageMetadata, UsageRecord, UsageRecordId, UsageSink,
};
use odock_store::db::Db;
use odock_store::{MasterKey, SqlUsageSink, UsageWriterOptions};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{router, AdminState};

const TOKEN: &str = "test-admin-token";

#[derive(Default)]
struct Recorder(Mutex<Vec<InvalidationCommand>>);

impl CacheInvalidator for Recorder {
    fn invalidate(&self, command: &InvalidationCommand) {
        self.0.lock().push(command.clone());
    }
}

struct Harness {
    app: Router,
    pool: Db,
    master_key: Arc<MasterKey>,
    invalidations: Arc<Recorder>,
}

async fn harness() -> Harness {
    let pool = odock_store::testing::database().await;
    let (master_key, _) = MasterKey::generate();
    let master_key = Arc::new(master_key);
    let invalidations = Arc::new(Recorder::default());
    let app = router(AdminState {
        pool: pool.clone(),
        host: super::host_policy::HostPolicy {
            egress: std::sync::Arc::new(
                odock_core::egress::EgressPolicy::parse("127.0.0.0/8").unwrap(),
            ),
            ..Default::default()
        },
        master_key: master_key.clone(),
        invalidator: invalidations.clone(),
        admin_token: Secret::new(TOKEN),
        live_windows: std::sync::Arc::new(odock_core::StoredWindowsOnly),
    });
    Harness {
        app,
        pool,
        master_key,
        invalidations,
    }
}

impl Harness {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value, text)
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, value, text) = self.call(method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path} -> {status}: {text}");
        value
    }

    async fn org(&self, name: &str) -> String {
        self.ok(
            Method::POST,
            "/api/admin/organisations",
            Some(json!({ "name": name })),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn api_key(&self, org: &str) -> String {
        self.ok(
            Method::POST,
            &format!("/api/organisations/{org}/apikeys"),
            Some(json!({ "name": "agent", "type": "ORGANISATION" })),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn invalidated(&self) -> Vec<InvalidationCommand> {
        std::mem::take(&mut *self.invalidations.0.lock())
    }
}

#[tokio::test]
async fn mcp_servers_keep_their_secrets_sealed_and_show_previews() {
    let h = harness().await;
    let org = h.org("Acme").await;
    let other = h.org("Other").await;
    let servers = format!("/api/organisations/{org}/mcp-servers");
    let client_secret = "oauth-client-secret-value-42";
    let env_secret = "stdio-env-secret-value-77";
    h.invalidated();
    let (status, created, text) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({
                "name": "Search", "slug": "search", "transport": "STREAMABLE_HTTP",
                "endpointUrl": "https://mcp.example.com/mcp", "authType": "OAUTH2",
                "authConfig": {"tokenUrl": "https://auth.example.com/token", "clientId": "odock",
                               "clientSecret": client_secret, "scope": "tools"},
                "stdioEnv": {"API_KEY": env_secret},
                "allowedTools": ["search", "fetch"], "blockedTools": ["delete"],
                "semanticFilter": {"blockedKeywords": ["password"]},
                "pricing": {"callNanosUsd": 2000, "inputNanosUsdPerMillionBytes": 500000000},
                "policies": {"requestsPerMinute": 60},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert!(
        !text.contains(client_secret) && !text.contains(env_secret),
        "{text}"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["authType"], "OAUTH2");
    assert_eq!(created["authConfigPreview"]["clientId"], "odock");
    assert_eq!(created["authConfigPreview"]["clientSecret"], "oau…e-42");
    assert_eq!(created["stdioEnvPreview"]["API_KEY"], "std…e-77");
    assert_eq!(created["pricing"]["callNanosUsd"], 2000);
    assert_eq!(created["pricing"]["outputNanosUsdPerMillionBytes"], 0);
    assert_eq!(created["enabled"], true);
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::McpServer, id.as_str())]
    );

    // At rest: envelopes, not the secrets.
    let (auth, env): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT auth_config, stdio_env FROM mcp_servers WHERE id = $1")
            .bind(&id)
            .fetch_one(&h.pool)
            .await
            .unwrap();
    let (auth, env) = (auth.unwrap(), env.unwrap());
    assert!(!auth.contains(client_secret) && !env.contains(env_secret));
    assert!(h
        .master_key
        .open(&auth)
        .unwrap()
        .expose()
        .contains(client_secret));

    let got = h.ok(Method::GET, &format!("{servers}/{id}"), None).await;
    assert_eq!(got, created);
    let listed = h.ok(Method::GET, &servers, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let all = h
        .ok(
            Method::GET,
            &format!("/api/admin/mcp-servers?organisationId={org}"),
            None,
        )
        .await;
    assert_eq!(all["data"][0]["id"], id.as_str());

    let (status, _, _) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({"name": "x", "slug": "search", "transport": "STDIO"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body, _) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({"name": "x", "slug": "y", "transport": "STDIO", "authType": "BEARER"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "authConfig");
    let (status, _, _) = h
        .call(
            Method::POST,
            &servers,
            Some(json!({"name": "x", "slug": "y", "transport": "CARRIER_PIGEON"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = h
        .call(
            Method::GET,
            &format!("/api/organisations/{other}/mcp-servers/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let patched = h
        .ok(
            Method::PATCH,
            &format!("{servers}/{id}"),
            Some(json!({"enabled": false, "authType": "BEARER", "authConfig": {"token": "new-bearer-token-999"}})),
        )
        .await;
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["authConfigPreview"], json!({"token": "new…-999"}));
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::McpServer, id.as_str())]
    );

    let (status, _, _) = h
        .call(Method::DELETE, &format!("{servers}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = h.call(Method::GET, &format!("{servers}/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mcp_grants_are_managed_from_both_sides_and_invalidate_the_keys() {
    let h = harness().await;
    let org = h.org("Acme").await;
    let servers = format!("/api/organisations/{org}/mcp-servers");
    let server = |slug: &'static str| json!({"name": slug, "slug": slug, "transport": "STDIO", "stdioCommand": "mcp-tools"});
    let tools = h.ok(Method::POST, &servers, Some(server("tools"))).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let search = h.ok(Method::POST, &servers, Some(server("search"))).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = h.api_key(&org).await;
    let other_key = h.api_key(&org).await;
    h.invalidated();

    let access = format!("/api/organisations/{org}/apikeys/{key}/mcp-access");
    let granted = h
        .ok(
            Method::POST,
            &access,
            Some(json!({"mcpServerIds": [tools, tools]})),
        )
        .await;
    assert_eq!(granted["data"].as_array().unwrap().len(), 1);
    assert_eq!(granted["data"][0]["mcpServerSlug"], "tools");
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::Grant, key.as_str())]
    );

    let from_server = h
        .ok(
            Method::POST,
            &format!("{servers}/{search}/api-key-access"),
            Some(json!({"apiKeyIds": [key, other_key]})),
        )
        .await;
    assert_eq!(from_server["data"].as_array().unwrap().len(), 2);
    let touched: Vec<String> = h.invalidated().into_iter().map(|c| c.id).collect();
    assert_eq!(touched.len(), 2);
    assert!(touched.contains(&key) && touched.contains(&other_key));

    let listed = h.ok(Method::GET, &access, None).await;
    let slugs: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["mcpServerSlug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["search", "tools"]);
    let (status, body, _) = h
        .call(
            Method::POST,
            &access,
            Some(json!({"mcpServerIds": ["nope"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "mcpServerIds");

    let (status, _, _) = h
        .call(Method::DELETE, &format!("{access}/{tools}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.invalidated(),
        [InvalidationCommand::new(CacheKind::Grant, key.as_str())]
    );
    let (status, _, _) = h
        .call(Method::DELETE, &format!("{access}/{tools}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let keys = h
        .ok(
            Method::GET,
            &format!("{servers}/{search}/api-key-access"),
            None,
        )
        .await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
}

fn usage_pair(
    org: &str,
    key: &str,
    server: &str,
    tool: &str,
    status: u16,
) -> (UsageRecord, McpUsageRecord) {
    let request_id = RequestId::generate();
    let id = UsageRecordId::new(odock_core::ids::time_ordered_hex_id());
    let now = chrono::Utc::now();
    let pricing = McpPricing {
        call_nanos_usd: 1_000,
        ..McpPricing::default()
    };
    let billing = odock_core::pricing::bill_mcp(&pricing, 1, 100, 200);
    let record = UsageRecord {
        id: id.clone(),
        request_id: request_id.clone(),
        organisation_id: org.into(),
        team_id: None,
        user_id: None,
        api_key_id: key.into(),
        provider: "mcp".into(),
        model: Some("tools".into()),
        model_id: None,
        endpoint: "/v1/mcp/{mcp_ref}".into(),
        http_status: status,
        error_code: None,
        latency_ms: 12,
        gateway_overhead_us: 100,
        stream: false,
        tokens: TokenUsage::default(),
        billable_tokens: 0,
        cost_nanos_usd: billing.cost_nanos_usd,
        billing: None,
        provider_usage: None,
        routing: None,
        metadata: UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: odock_core::RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: None,
            received_at: now,
            provider_type: Some("STDIO".into()),
            denied_by: None,
        },
        provider_request_id: None,
        trace_id: None,
        created_at: now,
        ledger_charges: Vec::new(),
    };
    let mcp = McpUsageRecord {
        id: odock_core::ids::time_ordered_hex_id(),
        usage_record_id: id,
        request_id,
        organisation_id: org.into(),
        team_id: None,
        user_id: None,
        api_key_id: key.into(),
        mcp_server_id: server.into(),
        slug: "tools".into(),
        transport: "STDIO".into(),
        rpc_method: Some("tools/call".into()),
        tool_name: Some(tool.into()),
        tool_call_count: 1,
        input_bytes: 100,
        output_bytes: 200,
        http_status: status,
        error_code: None,
        latency_ms: 12,
        cost_nanos_usd: billing.cost_nanos_usd,
        billing,
        created_at: now,
    };
    (record, mcp)
}

#[tokio::test]
async fn mcp_usage_records_are_written_with_their_usage_record_and_listed_with_filters() {
    let h = harness().await;
    let org = h.org("Acme").await;
    let other = h.org("Other").await;
    let sink = SqlUsageSink::start(h.pool.clone(), UsageWriterOptions::default());
    let pairs = [
        usage_pair(&org, "k1", "s1", "echo", 200),
        usage_pair(&org, "k1", "s1", "add", 200),
        usage_pair(&org, "k2", "s2", "echo", 502),
        usage_pair(&other, "k3", "s3", "echo", 200),
    ];
    for (record, mcp) in pairs.clone() {
        sink.enqueue_mcp(record, mcp);
    }
    sink.flush().await.unwrap();

    let list = |query: &str| format!("/api/organisations/{org}/mcp-usage-records{query}");
    let all = h.ok(Method::GET, &list(""), None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3);
    let first = &pairs[0].1;
    let by_request = h
        .ok(
            Method::GET,
            &list(&format!("?requestId={}", first.request_id)),
            None,
        )
        .await;
    let row = &by_request["data"][0];
    assert_eq!(row["usageRecordId"], first.usage_record_id.as_str());
    assert_eq!(row["toolName"], "echo");
    assert_eq!(row["inputBytes"], 100);
    assert_eq!(row["outputBytes"], 200);
    assert_eq!(row["costNanosUsd"], first.cost_nanos_usd);
    assert_eq!(row["billing"]["callCostNanosUsd"], 1_000);
    // Its usage record is stored too, with the same cost.
    let usage = h
        .ok(
            Method::GET,
            &format!(
                "/api/organisations/{org}/usage-records/{}",
                first.usage_record_id
            ),
            None,
        )
        .await;
    assert_eq!(usage["provider"], "mcp");
    assert_eq!(usage["costNanosUsd"], first.cost_nanos_usd);

    for (query, expected) in [
        ("?tool=echo", 2),
        ("?mcpServerId=s1", 2),
        ("?status=502", 1),
        ("?apiKeyId=k2", 1),
    ] {
        let page = h.ok(Method::GET, &list(query), None).await;
        assert_eq!(page["data"].as_array().unwrap().len(), expected, "{query}");
    }
    let page = h.ok(Method::GET, &list("?limit=2"), None).await;
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let rest = h
        .ok(
            Method::GET,
            &list(&format!("?limit=2&cursor={cursor}")),
            None,
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    let (status, _, _) = h.call(Method::GET, &list("?cursor=garbage"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let everyone = h
        .ok(Method::GET, "/api/admin/mcp-usage-records", None)
        .await;
    assert_eq!(everyone["data"].as_array().unwrap().len(), 4);
    sink.shutdown().await.unwrap();
}
