//! Embedding Odock's governance layers in your own axum app, without `odock-server`.
//!
//! The app below serves `POST /v1/chat/completions` through the full Odock stack (request id,
//! JSON errors, virtual-key authentication, metering, model resolution and grants) over in-memory
//! stores, with a local provider standing in for an upstream, next to a route of its own.
//!
//! ```text
//! cargo run --example embed_axum
//! curl -s localhost:3000/v1/chat/completions -H 'authorization: Bearer sk_demo' \
//!      -d '{"model":"demo","messages":[{"role":"user","content":"hi"}]}'
//! ```
//! Swap `StaticProvider` for `odock_providers::default_registry(..)` to call real upstreams, and the
//! in-memory stores for `odock_store::SqlKeyStore` / `SqlUsageSink` to persist.

use std::sync::Arc;

use axum::routing::{get, post_service};
use axum::Router;
use odock::core::testing::StaticProvider;
use odock::core::{
    ApiKeyType, Endpoint, GatewayBuilder, InMemoryKeyStore, InMemoryUsageSink, ModelPricing,
    ModelType, Principal, ProviderRegistry, ProviderType, ResolvedModel, ResolvedProvider,
    ResolvedProviderKey, Secret, TokenRates,
};

/// Builds the app: the governed chat route plus an ordinary route, sharing one router.
fn app(usage: InMemoryUsageSink) -> Router {
    let keys = InMemoryKeyStore::new();
    keys.insert_key(
        "sk_demo",
        Principal {
            api_key_id: "key-demo".into(),
            organisation_id: "org-demo".into(),
            key_type: ApiKeyType::Organisation,
            team_id: None,
            user_id: None,
            expires_at: None,
            revoked: false,
        },
    );
    keys.insert_model(ResolvedModel {
        id: "model-demo".into(),
        organisation_id: "org-demo".into(),
        name: "demo".into(),
        slug: "demo-upstream".into(),
        model_type: ModelType::Chat,
        capabilities: vec![],
        enabled: true,
        provider: ResolvedProvider {
            id: "provider-demo".into(),
            name: "local".into(),
            provider_type: ProviderType::OpenAi,
            base_url: "http://127.0.0.1:9".into(),
            timeout: None,
            enabled: true,
            config: serde_json::Value::Null,
        },
        provider_key: Some(ResolvedProviderKey {
            id: "provider-key-demo".into(),
            secret: Secret::new("sk-upstream-demo"),
            revoked: false,
        }),
        pricing: Arc::new(ModelPricing {
            input: TokenRates {
                text: 2_000_000_000,
                ..TokenRates::default()
            },
            output: TokenRates {
                text: 8_000_000_000,
                ..TokenRates::default()
            },
            ..ModelPricing::default()
        }),
        max_output_tokens: None,
        config: serde_json::Value::Null,
    });
    keys.grant("key-demo".into(), "model-demo".into());

    let providers =
        ProviderRegistry::new().with(ProviderType::OpenAi, Arc::new(StaticProvider::default()));
    let gateway = GatewayBuilder::new(Arc::new(keys), providers, Arc::new(usage));

    Router::new()
        .route(
            "/v1/chat/completions",
            post_service(gateway.llm(Endpoint::ChatCompletions)),
        )
        .route("/hello", get(|| async { "an ordinary route of your app" }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let usage = InMemoryUsageSink::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("try: curl -s localhost:3000/v1/chat/completions -H 'authorization: Bearer sk_demo' -d '{{\"model\":\"demo\"}}'");
    axum::serve(listener, app(usage)).await
}
