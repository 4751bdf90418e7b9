//! Usage-record write throughput into the embedded SQLite database: one batch of 256 records (the
//! writer's default batch) per iteration, in one transaction, rollup included.
//!
//! `cargo bench --bench usage_writer`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use odock::core::pricing::bill;
use odock::core::{
    BillingMode, ModelPricing, RequestId, RequestOutcome, TokenRates, TokenUsage, UsageMetadata,
    UsageRecord, UsageRecordId,
};
use odock_store::usage_records::insert_batch;

fn record() -> UsageRecord {
    let tokens = TokenUsage {
        input: 15,
        output: 644,
        ..TokenUsage::default()
    };
    let pricing = ModelPricing {
        input: TokenRates {
            text: 2_000_000_000,
            ..TokenRates::default()
        },
        output: TokenRates {
            text: 8_000_000_000,
            ..TokenRates::default()
        },
        ..ModelPricing::default()
    };
    let billing = bill(&pricing, &tokens, BillingMode::Tokens);
    let now = chrono::Utc::now();
    UsageRecord {
        id: UsageRecordId::new(odock::core::ids::time_ordered_hex_id()),
        request_id: RequestId::generate(),
        organisation_id: "corg0000000000000000000000".into(),
        team_id: None,
        user_id: None,
        api_key_id: "ckey0000000000000000000000".into(),
        provider: "openai".into(),
        model: Some("gpt-4o".into()),
        model_id: Some("cmodel00000000000000000000".into()),
        endpoint: "/v1/chat/completions".into(),
        http_status: 200,
        error_code: None,
        latency_ms: 120,
        gateway_overhead_us: 80,
        stream: false,
        billable_tokens: tokens.total(),
        cost_nanos_usd: billing.cost_nanos_usd,
        tokens,
        billing: Some(billing),
        provider_usage: Some(
            serde_json::json!({"prompt_tokens": 15, "completion_tokens": 644, "total_tokens": 659}),
        ),
        routing: None,
        metadata: UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: Some(110),
            received_at: now,
            provider_type: Some("OPENAI".into()),
            denied_by: None,
        },
        provider_request_id: Some("chatcmpl-abc".into()),
        trace_id: None,
        created_at: now,
        ledger_charges: Vec::new(),
    }
}

fn writer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let pool = runtime
        .block_on(odock_store::connect(
            &url,
            &odock_store::DbOptions::default(),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    let pool = Arc::new(pool);
    let mut group = c.benchmark_group("usage_writer");
    group.throughput(Throughput::Elements(256));
    group.bench_function("insert_batch_256", |b| {
        b.to_async(&runtime).iter(|| {
            let pool = pool.clone();
            let batch: Vec<UsageRecord> = (0..256).map(|_| record()).collect();
            async move {
                let mut conn = pool.acquire().await.unwrap_or_else(|e| panic!("{e}"));
                insert_batch(&mut conn, &batch, &[])
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            }
        })
    });
    group.finish();
}

criterion_group!(benches, writer);
criterion_main!(benches);
