//! Odock's governance in your own axum app: the gateway's whole LLM route table
//! (`odock::core::axum_routes::llm_router`, feature `axum`: the one the reference server mounts —
//! `POST /v1/chat/completions` and every other LLM route, the model lists, key validation) through
//! the full stack (auth, metering, grants, rate limits, a budget) over in-memory stores and a local
//! stand-in for OpenAI (`StaticProvider`, a test double of the `testing` feature), next to a route
//! of your own. Ctrl-C stops it; the gateway's `Background` handle then flushes usage.
//! ```text
//! cargo run --example embed_axum
//! curl -s localhost:3000/v1/chat/completions -H 'authorization: Bearer sk_demo' \
//!      -d '{"model":"demo","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
//! ```
//! The key's organisation has a one-cent daily budget: once spent, requests get 402
//! `budget_exceeded`. Real upstreams: `odock_providers::default_registry(..)`; persistence: `odock_store`.

use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use odock::core::axum_routes::llm_router;
use odock::core::testing::StaticProvider;
use odock::core::{
    usd_to_nanos, Background, BudgetPeriod, GatewayBuilder, InMemoryKeyStore, InMemoryLedger,
    InMemoryUsageSink, LedgerRule, ModelPricing, Principal, ProviderRegistry, ProviderType,
    ResolvedModel, ResolvedProvider, StaticRuleSource,
};

/// The app's router and the gateway's background work (stopped after serving).
pub fn app(usage: InMemoryUsageSink) -> (Router, Background) {
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

    let router =
        llm_router(&gateway).route("/hello", get(|| async { "an ordinary route of your app" }));
    (router, gateway.background())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let (router, mut background) = app(InMemoryUsageSink::new());
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    background.shutdown().await;
    Ok(())
}
