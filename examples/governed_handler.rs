//! Odock's governance in front of a handler of your own — no provider dispatch. The handler serves
//! an in-house "model" (it echoes the prompt back); Odock authenticates the key, checks its grant,
//! admits the request against a budget, and bills what the handler reports it served.
//! ```text
//! cargo run --example governed_handler
//! curl -s localhost:3001/v1/chat/completions -H 'authorization: Bearer sk_team' \
//!      -d '{"model":"echo","max_tokens":8,"messages":[{"role":"user","content":"hello there"}]}'
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::routing::post_service;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use odock::core::layers::{ClientIpLayer, LlmRequest, Meter, TrustedProxies};
use odock::core::{
    full, usd_to_nanos, BudgetPeriod, Endpoint, GatewayBody, GatewayBuilder, GatewayError,
    InMemoryKeyStore, InMemoryLedger, InMemoryUsageSink, LedgerRule, ModelPricing, Principal,
    ProviderRegistry, ProviderType, ReportedUsage, RequestError, ResolvedModel, ResolvedProvider,
    StaticRuleSource, TokenUsage,
};
use serde_json::{json, Value};

/// The in-house model: answers with the last user message; one token per word.
async fn echo(request: Request<Bytes>) -> Result<Response<GatewayBody>, GatewayError> {
    // The resolution layer has already decoded and validated the body.
    let body: Value = serde_json::from_slice(request.body()).unwrap_or_default();
    let prompt = body["messages"][0]["content"].as_str().unwrap_or_default();
    // What the stack resolved travels in the extensions: the request's facts, the model, the meter.
    let stream = request
        .extensions()
        .get::<LlmRequest>()
        .is_some_and(|r| r.stream);
    if stream {
        return Err(GatewayError::Request(RequestError::Invalid {
            message: "this model does not stream".into(),
            field: Some("stream"),
        }));
    }
    let model = request
        .extensions()
        .get::<Arc<ResolvedModel>>()
        .map(|m| m.slug.clone());
    let words = prompt.split_whitespace().count() as u64;
    if let Some(meter) = request.extensions().get::<Meter>() {
        let tokens = TokenUsage {
            input: words,
            output: words,
            ..TokenUsage::default()
        };
        meter.record_usage(ReportedUsage {
            tokens,
            raw: Value::Null,
        });
    }
    let answer = json!({"object": "chat.completion", "model": model, "choices": [{"index": 0,
        "message": {"role": "assistant", "content": prompt}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": words, "completion_tokens": words}});
    let mut response = Response::new(full(answer.to_string()));
    let json = http::HeaderValue::from_static("application/json");
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, json);
    Ok(response)
}

pub fn app(usage: InMemoryUsageSink) -> Router {
    let keys = InMemoryKeyStore::new();
    keys.insert_key("sk_team", Principal::organisation_key("acme", "key-team"));
    let in_house =
        ResolvedProvider::new("in-house", ProviderType::Custom, "http://in-house.invalid");
    keys.insert_model(
        // The key is the credential the handler would use for its own backend (it reads it from
        // the resolved model); Odock refuses models without one.
        ResolvedModel::chat("acme", "model-echo", "echo", "echo-1", in_house)
            .with_key("in-house-key", "token-for-the-backend")
            .with_pricing(ModelPricing::usd_per_million_tokens(1.0, 1.0)),
    );
    keys.grant("key-team".into(), "model-echo".into());
    let budget = LedgerRule::budget(
        "acme",
        "daily",
        "demo",
        usd_to_nanos(0.001),
        BudgetPeriod::Daily,
    );
    let ledger = InMemoryLedger::new(Arc::new(StaticRuleSource::new([budget])));
    let gateway = GatewayBuilder::new(Arc::new(keys), ProviderRegistry::new(), Arc::new(usage))
        .ledger(ledger);
    let handler = tower::service_fn(echo);
    // The client address for IP allow/block lists: the TCP peer (no proxies trusted here). Without
    // it, keys with IP rules are refused, never silently unchecked.
    let peer = |ext: &http::Extensions| ext.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    Router::new()
        .route(
            "/v1/chat/completions",
            post_service(gateway.llm_with(Endpoint::ChatCompletions, handler)),
        )
        .layer(ClientIpLayer::new(TrustedProxies::default(), peer))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = app(InMemoryUsageSink::new());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
