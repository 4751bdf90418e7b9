//! MCP usage records: written with their usage record, listed with filters.

use http::{Method, StatusCode};
use odock_core::{
    McpPricing, McpUsageRecord, RequestId, TokenUsage, UsageMetadata, UsageRecord, UsageRecordId,
    UsageSink,
};
use odock_store::{SqlUsageSink, UsageWriterOptions};

use super::harness;

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
