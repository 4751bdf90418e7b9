//! The library route table (`axum_routes::llm_router`) over an in-memory gateway: every LLM path
//! reaches its own endpoint's stack, the Gemini path is split by method, the ungoverned routes
//! answer, and what is not a route is 404.
#![cfg(feature = "axum")]

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::axum_routes::llm_router;
use crate::testing::StaticProvider;
use crate::*;

fn router() -> (Router, InMemoryUsageSink) {
    let keys = InMemoryKeyStore::new();
    keys.insert_key("sk_demo", Principal::organisation_key("acme", "key-demo"));
    let openai = ResolvedProvider::new("openai", ProviderType::OpenAi, "http://unused");
    keys.insert_model(
        ResolvedModel::chat("acme", "model-demo", "demo", "demo-upstream", openai)
            .with_key("openai-key", "sk-upstream"),
    );
    keys.grant("key-demo".into(), "model-demo".into());
    let google = ResolvedProvider::new("google", ProviderType::Google, "http://unused");
    keys.insert_model(
        ResolvedModel::chat("acme", "model-gem", "gem", "gem-upstream", google)
            .with_key("google-key", "sk-upstream"),
    );
    keys.grant("key-demo".into(), "model-gem".into());
    let providers = ProviderRegistry::new()
        .with(ProviderType::OpenAi, Arc::new(StaticProvider::default()))
        .with(ProviderType::Google, Arc::new(StaticProvider::default()));
    let usage = InMemoryUsageSink::new();
    let gateway = GatewayBuilder::new(Arc::new(keys), providers, Arc::new(usage.clone()));
    (llm_router(&gateway), usage)
}

async fn call(router: &Router, method: &str, path: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let body = json!({"model": "demo", "messages": [{"role": "user", "content": "hi"}]});
    let request = request.body(Body::from(body.to_string())).expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn path_of(endpoint: Endpoint) -> String {
    let model = match endpoint {
        Endpoint::GeminiGenerateContent | Endpoint::GeminiStreamGenerateContent => "gem",
        _ => "demo",
    };
    endpoint.route().replace("{model}", model)
}

#[tokio::test]
async fn every_llm_route_reaches_the_stack_of_its_own_endpoint() {
    let (router, usage) = router();
    for &endpoint in Endpoint::ALL {
        let path = path_of(endpoint);
        let (status, body) = call(&router, "POST", &path, Some("sk_demo")).await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{path}: {status} {body}"
        );
        // One record per authenticated request, made by that endpoint's stack.
        let records = usage.records();
        let last = records.last().expect("a usage record");
        assert_eq!(last.endpoint, endpoint.route(), "{path}");
        assert_eq!(
            records.len(),
            Endpoint::ALL
                .iter()
                .position(|e| *e == endpoint)
                .unwrap_or(0)
                + 1
        );
        // Without a key, the same path is the gateway's 401, not a missing route.
        let (status, body) = call(&router, "POST", &path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_served_routes_answer_through_the_provider() {
    let (router, usage) = router();
    let (status, body) = call(&router, "POST", "/v1/chat/completions", Some("sk_demo")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from Odock."
    );
    assert_eq!(usage.records()[0].http_status, 200);
}

#[tokio::test]
async fn the_gemini_path_is_split_by_method_and_an_unknown_method_is_404() {
    let (router, usage) = router();
    let (status, body) = call(
        &router,
        "POST",
        "/v1beta/models/gem:generateContent",
        Some("sk_demo"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call(
        &router,
        "POST",
        "/v1beta/models/gem:streamGenerateContent",
        Some("sk_demo"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let records = usage.records();
    assert_eq!(records[0].endpoint, Endpoint::GeminiGenerateContent.route());
    assert!(!records[0].stream);
    assert_eq!(
        records[1].endpoint,
        Endpoint::GeminiStreamGenerateContent.route()
    );
    assert!(records[1].stream);

    let (status, body) = call(
        &router,
        "POST",
        "/v1beta/models/gem:countTokens",
        Some("sk_demo"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    // Not a governed request: nothing metered.
    assert_eq!(usage.records().len(), 2);
}

#[tokio::test]
async fn model_lists_and_key_validation_are_in_the_table() {
    let (router, usage) = router();
    let (status, body) = call(&router, "GET", "/v1/models", Some("sk_demo")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut ids: Vec<_> = body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["demo", "gem"]);
    for family in ["vllm", "mistral", "huggingface"] {
        let (status, body) = call(
            &router,
            "GET",
            &format!("/v1/{family}/models"),
            Some("sk_demo"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{family}: {body}");
        assert_eq!(body["data"], json!([]), "{family}");
    }
    let (status, body) = call(&router, "POST", "/v1/keys/validate", Some("sk_demo")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apiKeyId"], "key-demo");
    let (status, _) = call(&router, "GET", "/v1/models", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Neither is metered.
    assert!(usage.records().is_empty());
}

#[tokio::test]
async fn paths_outside_the_table_are_not_served() {
    let (router, _) = router();
    let (status, _) = call(&router, "POST", "/v1/not-a-route", Some("sk_demo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&router, "GET", "/v1/chat/completions", Some("sk_demo")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// A sink that stores records only when flushed, like a batching writer.
#[derive(Default)]
struct BatchingSink {
    pending: parking_lot::Mutex<Vec<UsageRecord>>,
    stored: parking_lot::Mutex<Vec<UsageRecord>>,
}

#[async_trait::async_trait]
impl UsageSink for BatchingSink {
    fn enqueue(&self, record: UsageRecord) {
        self.pending.lock().push(record);
    }

    async fn flush(&self) -> Result<(), UsageSinkError> {
        let batch = std::mem::take(&mut *self.pending.lock());
        self.stored.lock().extend(batch);
        Ok(())
    }
}

#[tokio::test]
async fn the_gateways_background_handle_flushes_every_accepted_requests_usage() {
    let keys = InMemoryKeyStore::new();
    keys.insert_key("sk_demo", Principal::organisation_key("acme", "key-demo"));
    let openai = ResolvedProvider::new("openai", ProviderType::OpenAi, "http://unused");
    keys.insert_model(
        ResolvedModel::chat("acme", "model-demo", "demo", "demo-upstream", openai)
            .with_key("openai-key", "sk-upstream"),
    );
    keys.grant("key-demo".into(), "model-demo".into());
    let providers =
        ProviderRegistry::new().with(ProviderType::OpenAi, Arc::new(StaticProvider::default()));
    let sink = Arc::new(BatchingSink::default());
    let gateway = GatewayBuilder::new(Arc::new(keys), providers, sink.clone());
    let router = llm_router(&gateway);
    let mut background = gateway.background();
    for _ in 0..5 {
        let (status, _) = call(&router, "POST", "/v1/chat/completions", Some("sk_demo")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(
        sink.stored.lock().is_empty(),
        "nothing flushed before shutdown"
    );

    background.shutdown().await;

    assert_eq!(sink.stored.lock().len(), 5);
    assert!(sink.pending.lock().is_empty());
    assert_eq!(background.running_tasks(), 0);
}
