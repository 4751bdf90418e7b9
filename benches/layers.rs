//! Per-request overhead of the governance stack, in process: the full layer stack (request id,
//! errors, auth, metering, resolution, provider dispatch) over in-memory stores and a local
//! provider, unary and streaming; the same with routing on as the server has it (the SQL policy
//! source, warm, for a key without a policy: routing's "nothing applies" path); plus the request
//! decoder and the billing calculator alone.
//!
//! `cargo bench --bench layers`

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::{BodyExt, Full};
use odock::core::layers::LlmRequest;
use odock::core::pricing::bill;
use odock::core::routing::{CircuitBreakers, Routing};
use odock::core::testing::StaticProvider;
use odock::core::{
    ApiKeyType, BillingMode, Endpoint, GatewayBuilder, InMemoryKeyStore, ModelPricing, ModelType,
    Principal, ProviderRegistry, ProviderType, ResolvedModel, ResolvedProvider,
    ResolvedProviderKey, Secret, TokenRates, TokenUsage, UsageRecord, UsageSink, UsageSinkError,
};
use odock_store::{KeyStoreOptions, SqlRoutingPolicySource};
use tower::ServiceExt;

/// Discards records: the bench measures the request path, not storage.
struct NullSink;

#[async_trait::async_trait]
impl UsageSink for NullSink {
    fn enqueue(&self, record: UsageRecord) {
        criterion::black_box(record);
    }
    async fn flush(&self) -> Result<(), UsageSinkError> {
        Ok(())
    }
}

fn pricing() -> ModelPricing {
    ModelPricing {
        input: TokenRates {
            text: 2_000_000_000,
            ..TokenRates::default()
        },
        output: TokenRates {
            text: 8_000_000_000,
            ..TokenRates::default()
        },
        cached_input_discount_percent: 50,
        ..ModelPricing::default()
    }
}

fn gateway() -> GatewayBuilder {
    let keys = InMemoryKeyStore::new();
    keys.insert_key(
        "sk_bench",
        Principal {
            api_key_id: "key".into(),
            organisation_id: "org".into(),
            key_type: ApiKeyType::Organisation,
            team_id: None,
            user_id: None,
            expires_at: None,
            revoked: false,
        },
    );
    keys.insert_model(ResolvedModel {
        id: "model".into(),
        organisation_id: "org".into(),
        name: "gpt".into(),
        slug: "gpt-upstream".into(),
        model_type: ModelType::Chat,
        capabilities: vec![],
        enabled: true,
        provider: ResolvedProvider {
            id: "provider".into(),
            name: "local".into(),
            provider_type: ProviderType::OpenAi,
            base_url: "http://unused".into(),
            timeout: None,
            enabled: true,
            config: serde_json::Value::Null,
        },
        provider_key: Some(ResolvedProviderKey {
            id: "pk".into(),
            secret: Secret::new("sk-upstream"),
            revoked: false,
        }),
        key_pool: Default::default(),
        pricing: Arc::new(pricing()),
        max_output_tokens: None,
        config: serde_json::Value::Null,
    });
    keys.grant("key".into(), "model".into());
    let providers =
        ProviderRegistry::new().with(ProviderType::OpenAi, Arc::new(StaticProvider::default()));
    GatewayBuilder::new(Arc::new(keys), providers, Arc::new(NullSink))
}

const BODY: &str = r#"{"model":"gpt","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in five words."}],"temperature":0.2,"max_tokens":64}"#;
const STREAM_BODY: &str = r#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"Say hello in five words."}]}"#;

fn request(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("/v1/chat/completions")
        .header("authorization", "Bearer sk_bench")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

fn stack(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let service = gateway().llm::<Full<Bytes>>(Endpoint::ChatCompletions);
    // As the server builds it: SQL policies (cached per key), circuit breakers, key pools.
    let policies = runtime.block_on(odock_store::testing::database());
    let routing = Routing::new(
        Arc::new(SqlRoutingPolicySource::new(
            policies,
            &KeyStoreOptions::default(),
        )),
        Arc::new(CircuitBreakers::default()),
    );
    let routed = gateway()
        .routing(Some(Arc::new(routing)))
        .llm::<Full<Bytes>>(Endpoint::ChatCompletions);
    c.bench_function("stack/unary_routing_no_policy", |b| {
        b.to_async(&runtime).iter(|| {
            let service = routed.clone();
            async move {
                let response = service
                    .oneshot(request(BODY))
                    .await
                    .unwrap_or_else(|e| match e {});
                criterion::black_box(
                    response
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .ok(),
                )
            }
        })
    });
    c.bench_function("stack/unary", |b| {
        b.to_async(&runtime).iter(|| {
            let service = service.clone();
            async move {
                let response = service
                    .oneshot(request(BODY))
                    .await
                    .unwrap_or_else(|e| match e {});
                criterion::black_box(
                    response
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .ok(),
                )
            }
        })
    });
    c.bench_function("stack/stream", |b| {
        b.to_async(&runtime).iter(|| {
            let service = service.clone();
            async move {
                let response = service
                    .oneshot(request(STREAM_BODY))
                    .await
                    .unwrap_or_else(|e| match e {});
                criterion::black_box(
                    response
                        .into_body()
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .ok(),
                )
            }
        })
    });
}

fn pieces(c: &mut Criterion) {
    c.bench_function("decode/chat_request", |b| {
        b.iter(|| {
            LlmRequest::decode(
                Endpoint::ChatCompletions,
                "/v1/chat/completions",
                None,
                criterion::black_box(BODY.as_bytes()),
            )
        })
    });
    let pricing = pricing();
    let usage = TokenUsage {
        input: 1_234,
        output: 567,
        cached_input: 200,
        reasoning: 100,
        ..TokenUsage::default()
    };
    c.bench_function("billing/bill", |b| {
        b.iter(|| {
            bill(
                criterion::black_box(&pricing),
                criterion::black_box(&usage),
                BillingMode::Tokens,
            )
        })
    });
}

criterion_group!(benches, stack, pieces);
criterion_main!(benches);
