//! A `Provider` of your own: Odock's governance in front of an in-house model service that speaks
//! its own wire format (`POST /generate {"prompt"}` → `{"text", "tokens_in", "tokens_out"}`). The
//! provider translates OpenAI chat requests to it and its answers back, and reports the usage Odock
//! bills. Registered for the `CUSTOM` provider type, it serves `/v1/chat/completions`.
//! ```text
//! cargo run --example custom_provider -- http://127.0.0.1:9000   # your service's base URL
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use axum::routing::post_service;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use odock::core::{
    BudgetPeriod, Endpoint, GatewayBuilder, InMemoryKeyStore, InMemoryLedger, InMemoryUsageSink,
    LedgerRule, ModelPricing, Principal, Provider, ProviderBody, ProviderError, ProviderRegistry,
    ProviderRequest, ProviderResponse, ProviderType, ReportedUsage, ResolvedModel,
    ResolvedProvider, StaticRuleSource, TokenUsage,
};
use serde_json::{json, Value};

/// Calls the in-house service at the model's provider base URL.
pub struct InHouse {
    http: reqwest::Client,
}

#[async_trait]
impl Provider for InHouse {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        if request.stream {
            return Err(ProviderError::InvalidRequest(
                "house-llm does not stream".into(),
            ));
        }
        // The gateway has validated the body; the prompt is the messages' text, in order.
        let chat: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let prompt: Vec<&str> = chat["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["content"].as_str())
            .collect();
        let url = format!("{}/generate", request.model.provider.base_url);
        let token = request
            .model
            .provider_key
            .as_ref()
            .map(|k| k.secret.expose().to_owned());
        let response = self
            .http
            .post(url)
            .bearer_auth(token.unwrap_or_default())
            .json(&json!({"model": request.model.slug, "prompt": prompt.join("\n")}))
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let message = response.text().await.unwrap_or_default();
            return Err(ProviderError::Upstream {
                status: status.as_u16(),
                message,
                retry_after: None,
            });
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
        let tokens = TokenUsage {
            input: answer["tokens_in"].as_u64().unwrap_or(0),
            output: answer["tokens_out"].as_u64().unwrap_or(0),
            ..TokenUsage::default()
        };
        let body = json!({"id": format!("chatcmpl-{}", request.request_id), "object": "chat.completion",
            "model": request.model.slug, "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": answer["text"]}}],
            "usage": {"prompt_tokens": tokens.input, "completion_tokens": tokens.output}});
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(ProviderResponse {
            status: StatusCode::OK,
            headers,
            body: ProviderBody::Full {
                bytes: Bytes::from(body.to_string()),
                usage: Some(ReportedUsage {
                    tokens,
                    raw: answer,
                }),
            },
            provider_request_id: None,
        })
    }
}

/// One key, one model served by the in-house service at `base_url`, a $1 daily budget.
pub fn app(base_url: &str, usage: InMemoryUsageSink) -> Router {
    let keys = InMemoryKeyStore::new();
    keys.insert_key("sk_app", Principal::organisation_key("acme", "key-app"));
    let service = ResolvedProvider::new("in-house", ProviderType::Custom, base_url);
    keys.insert_model(
        ResolvedModel::chat("acme", "model-house", "house-llm", "house-v2", service)
            .with_key("house-token", "token-for-the-service")
            .with_pricing(ModelPricing::usd_per_million_tokens(0.5, 1.5)),
    );
    keys.grant("key-app".into(), "model-house".into());
    let budget = LedgerRule::budget("acme", "daily", "daily", 1_000_000_000, BudgetPeriod::Daily);
    let ledger = InMemoryLedger::new(Arc::new(StaticRuleSource::new([budget])));
    let http = reqwest::Client::new();
    let providers = ProviderRegistry::new().with(ProviderType::Custom, Arc::new(InHouse { http }));
    let gateway = GatewayBuilder::new(Arc::new(keys), providers, Arc::new(usage)).ledger(ledger);
    let chat = gateway.llm(Endpoint::ChatCompletions);
    Router::new().route("/v1/chat/completions", post_service(chat))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let base_url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(&base_url, InMemoryUsageSink::new())).await
}
