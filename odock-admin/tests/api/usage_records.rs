//! Usage records: listed, filtered and scoped to the organisation.

use chrono::{Duration, Utc};
use http::StatusCode;
use odock_core::{ApiKeyId, OrganisationId, RequestId, TokenUsage, UsageRecord, UsageRecordId};

use crate::common::{assert_error, assert_invalid, harness};

fn usage_record(org: &str, api_key: &str, status: u16, minutes_ago: i64) -> UsageRecord {
    UsageRecord {
        id: UsageRecordId::generate(),
        request_id: RequestId::generate(),
        organisation_id: OrganisationId::new(org),
        team_id: None,
        user_id: None,
        api_key_id: ApiKeyId::new(api_key),
        provider: "openai".into(),
        model: Some("fast".into()),
        model_id: None,
        endpoint: "/v1/chat/completions".into(),
        http_status: status,
        error_code: None,
        latency_ms: 120,
        gateway_overhead_us: 300,
        stream: false,
        tokens: TokenUsage {
            input: 10,
            output: 20,
            ..TokenUsage::default()
        },
        billable_tokens: 30,
        cost_nanos_usd: 1_000,
        billing: None,
        provider_usage: None,
        routing: None,
        metadata: odock_core::UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: odock_core::RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: None,
            received_at: Utc::now(),
            provider_type: None,
            denied_by: None,
        },
        provider_request_id: None,
        trace_id: None,
        created_at: Utc::now() - Duration::minutes(minutes_ago),
        ledger_charges: Vec::new(),
    }
}

#[tokio::test]
async fn usage_records_are_listed_filtered_and_scoped() {
    let h = harness().await;
    let a = h.org("A").await;
    let b = h.org("B").await;
    let records = [
        usage_record(&a, "key-1", 200, 30),
        usage_record(&a, "key-2", 429, 20),
        usage_record(&a, "key-1", 200, 10),
        usage_record(&b, "key-3", 200, 5),
    ];
    {
        let mut conn = h.pool.acquire().await.unwrap();
        odock_store::usage_records::insert_batch(&mut conn, &records, &[])
            .await
            .unwrap();
    }

    let base = format!("/api/organisations/{a}/usage-records");
    let all = h.get(&base).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let data = all.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["id"], records[2].id.as_str(), "newest first");
    assert_eq!(data[0]["apiKeyId"], "key-1");
    assert_eq!(data[0]["costNanosUsd"], 1_000);

    let by_key = h.get(&format!("{base}?apiKeyId=key-1")).await;
    assert_eq!(by_key.body["data"].as_array().unwrap().len(), 2);
    let by_status = h.get(&format!("{base}?status=429")).await;
    assert_eq!(by_status.body["data"][0]["id"], records[1].id.as_str());
    let from =
        (Utc::now() - Duration::minutes(15)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let recent = h.get(&format!("{base}?from={from}")).await;
    assert_eq!(
        recent.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        recent.text
    );

    let mut seen = 0;
    let mut path = format!("{base}?limit=1");
    loop {
        let page = h.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        seen += page.body["data"].as_array().unwrap().len();
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("{base}?limit=1&cursor={cursor}"),
            None => break,
        }
        assert!(seen <= 3);
    }
    assert_eq!(seen, 3);

    assert_invalid(&h.get(&format!("{base}?from=yesterday")).await, "from");
    assert_invalid(&h.get(&format!("{base}?status=abc")).await, "status");
    assert_invalid(&h.get(&format!("{base}?cursor=garbage")).await, "cursor");

    let one = h.get(&format!("{base}/{}", records[0].id)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["requestId"], records[0].request_id.as_str());
    let foreign = h
        .get(&format!(
            "/api/organisations/{b}/usage-records/{}",
            records[0].id
        ))
        .await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &h.get("/api/organisations/missing/usage-records").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    let everyone = h.get("/api/admin/usage-records").await;
    assert_eq!(everyone.body["data"].as_array().unwrap().len(), 4);
    let only_b = h
        .get(&format!("/api/admin/usage-records?organisationId={b}"))
        .await;
    assert_eq!(only_b.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(only_b.body["data"][0]["organisationId"], b.as_str());
}
