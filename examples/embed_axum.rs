//! Odock's governance in your own axum app: `POST /v1/chat/completions` through the full stack
//! (auth, metering, grants, rate limits, a budget) over in-memory stores and a local stand-in for
//! OpenAI (`StaticProvider`, a test double of the `testing` feature), next to a route of your own.
//! ```text
//! cargo run --example embed_axum
//! curl -s localhost:3000/v1/chat/completions -H 'authorization: Bearer sk_demo' \
//!      -d '{"model":"demo","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
//! ```
//! The key's organisation has a one-cent daily budget: once spent, requests get 402
//! `budget_exceeded`. Real upstreams: `odock_providers::default_registry(..)`; persistence: `odock_store`.

use std::sync::Arc;

use axum::routing::{get, post_service};
use axum::Router;
use odock::core::testing::StaticProvider;
use odock::core::{
    usd_to_nanos, BudgetPeriod, Endpoint, GatewayBuilder, InMemoryKeyStore, InMemoryLedger,
    InMemoryUsageSink, LedgerRule, ModelPricing, Principal, ProviderRegistry, ProviderType,
    ResolvedModel, ResolvedProvider, StaticRuleSource,
};

pub fn app(usage: InMemoryUsageSink) -> Router {
    let keys = InMemoryKeyStore::new();
    keys.insert_key("sk_demo", Principal::organisation_key("acme", "key-demo"));
    let openai = ResolvedProvider::new("openai", ProviderType::OpenAi, "https://api.openai.com/v1");
    keys.insert_model(
        ResolvedModel::chat("acme", "model-demo", "demo", "gpt-4o-mini", openai)
            .with_key("openai-key", "sk-upstream-demo")
            .with_pricing(ModelPricing::usd_per_million_tokens(2.0, 8.0)),
    );
    keys.grant("key-demo".into(), "model-demo".into());

    let budget = LedgerRule::budget(
        "acme",
        "daily",
        "demo",
        usd_to_nanos(0.01),
        BudgetPeriod::Daily,
    );
    let ledger = InMemoryLedger::new(Arc::new(StaticRuleSource::new([budget])));
    let providers =
        ProviderRegistry::new().with(ProviderType::OpenAi, Arc::new(StaticProvider::default()));
    let gateway = GatewayBuilder::new(Arc::new(keys), providers, Arc::new(usage)).ledger(ledger);

    Router::new()
        .route(
            "/v1/chat/completions",
            post_service(gateway.llm(Endpoint::ChatCompletions)),
        )
        .route("/hello", get(|| async { "an ordinary route of your app" }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(InMemoryUsageSink::new())).await
}
