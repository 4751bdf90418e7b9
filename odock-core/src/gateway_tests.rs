//! The assembled stack over in-memory stores and a local provider: the layer order, metering of
//! successes, denials and aborted streams.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::testing::StaticProvider;
use crate::*;

struct Harness {
    gateway: GatewayBuilder,
    sink: InMemoryUsageSink,
    store: InMemoryKeyStore,
}

fn model(name: &str, provider_type: ProviderType) -> ResolvedModel {
    ResolvedModel {
        id: ModelId::new(format!("model-{name}")),
        organisation_id: "org1".into(),
        name: name.to_owned(),
        slug: format!("{name}-upstream"),
        model_type: ModelType::Chat,
        capabilities: vec![],
        enabled: true,
        provider: ResolvedProvider {
            id: "prov1".into(),
            name: "p".into(),
            provider_type,
            base_url: "http://unused".into(),
            timeout: None,
            enabled: true,
            config: Value::Null,
        },
        provider_key: Some(ResolvedProviderKey {
            id: "pk1".into(),
            secret: Secret::new("sk-upstream"),
            revoked: false,
        }),
        key_pool: Default::default(),
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
        config: Value::Null,
    }
}

fn harness() -> Harness {
    let store = InMemoryKeyStore::new();
    store.insert_key(
        "sk_good",
        Principal {
            api_key_id: "key1".into(),
            organisation_id: "org1".into(),
            key_type: ApiKeyType::Organisation,
            team_id: None,
            user_id: None,
            expires_at: None,
            revoked: false,
        },
    );
    store.insert_model(model("gpt", ProviderType::OpenAi));
    store.insert_model(model("claude", ProviderType::Anthropic));
    store.insert_model(model("ungranted", ProviderType::OpenAi));
    store.grant("key1".into(), "model-gpt".into());
    store.grant("key1".into(), "model-claude".into());
    let sink = InMemoryUsageSink::new();
    let providers =
        ProviderRegistry::new().with(ProviderType::OpenAi, Arc::new(StaticProvider::default()));
    let gateway = GatewayBuilder::new(Arc::new(store.clone()), providers, Arc::new(sink.clone()));
    Harness {
        gateway,
        sink,
        store,
    }
}

fn chat(key: Option<&str>, body: &str) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/v1/chat/completions").header("x-request-id", "req-1");
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn send(h: &Harness, req: Request<Full<Bytes>>) -> (StatusCode, Value, http::HeaderMap) {
    let res = h
        .gateway
        .llm(Endpoint::ChatCompletions)
        .oneshot(req)
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body, headers)
}

#[tokio::test]
async fn a_successful_call_is_relayed_metered_and_priced() {
    let h = harness();
    let (status, body, headers) = send(
        &h,
        chat(Some("sk_good"), r#"{"model":"gpt","messages":[]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"], "gpt-upstream");
    assert_eq!(headers["x-request-id"], "req-1");
    let records = h.sink.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.request_id.as_str(), "req-1");
    assert_eq!(record.http_status, 200);
    assert_eq!(record.model.as_deref(), Some("gpt"));
    assert_eq!(record.provider, "openai");
    assert_eq!(record.tokens.input, 12);
    assert_eq!(record.tokens.output, 5);
    // 12 × $2/1M + 5 × $8/1M = 24,000 + 40,000 nanos.
    assert_eq!(record.cost_nanos_usd, 64_000);
    assert_eq!(record.error_code, None);
}

#[tokio::test]
async fn denials_are_json_errors_and_authenticated_ones_are_recorded() {
    let h = harness();
    let cases = [
        (None, r#"{"model":"gpt"}"#, 401, "unauthorized"),
        (Some("sk_nope"), r#"{"model":"gpt"}"#, 401, "unauthorized"),
        (
            Some("sk_good"),
            r#"{"model":"gpt""#,
            400,
            "invalid_request_body",
        ),
        (
            Some("sk_good"),
            r#"{"model":"missing"}"#,
            400,
            "model_not_found",
        ),
        (
            Some("sk_good"),
            r#"{"model":"ungranted"}"#,
            403,
            "model_not_allowed",
        ),
        (
            Some("sk_good"),
            r#"{"model":"claude"}"#,
            400,
            "provider_not_allowed",
        ),
    ];
    for (key, body, status, code) in cases {
        let (got_status, got, headers) = send(&h, chat(key, body)).await;
        assert_eq!(got_status.as_u16(), status, "{body}");
        assert_eq!(got["error"]["code"], code, "{body}");
        assert!(got["error"]["message"].is_string());
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-request-id"], "req-1");
    }
    // Only the four authenticated requests leave records, each with its code.
    let codes: Vec<_> = h
        .sink
        .records()
        .iter()
        .map(|r| (r.http_status, r.error_code.clone()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (400, Some("invalid_request_body".to_owned())),
            (400, Some("model_not_found".to_owned())),
            (403, Some("model_not_allowed".to_owned())),
            (400, Some("provider_not_allowed".to_owned())),
        ]
    );
    assert!(h.sink.records().iter().all(|r| r.cost_nanos_usd == 0));
}

#[tokio::test]
async fn revoked_keys_stop_working() {
    let h = harness();
    h.store.set_revoked("sk_good", true);
    let (status, body, _) = send(&h, chat(Some("sk_good"), r#"{"model":"gpt"}"#)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "api_key_revoked");
}

#[tokio::test]
async fn streams_are_billed_from_their_usage_and_the_usage_chunk_is_hidden_unless_asked() {
    let h = harness();
    let req = chat(Some("sk_good"), r#"{"model":"gpt","stream":true}"#);
    let res = h
        .gateway
        .llm(Endpoint::ChatCompletions)
        .oneshot(req)
        .await
        .unwrap();
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("Hello from Odock."));
    assert!(!text.contains("\"usage\""));
    assert!(text.ends_with("data: [DONE]\n\n"));
    let record = &h.sink.records()[0];
    assert!(record.stream);
    assert_eq!(record.cost_nanos_usd, 64_000);
    assert_eq!(record.metadata.outcome, RequestOutcome::Completed);

    let req = chat(
        Some("sk_good"),
        r#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true}}"#,
    );
    let res = h
        .gateway
        .llm(Endpoint::ChatCompletions)
        .oneshot(req)
        .await
        .unwrap();
    let text =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("\"usage\""));
}

#[tokio::test]
async fn a_stream_dropped_by_the_client_is_still_recorded_and_billed() {
    let h = harness();
    let req = chat(
        Some("sk_good"),
        r#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"12345678"}]}"#,
    );
    let res = h
        .gateway
        .llm(Endpoint::ChatCompletions)
        .oneshot(req)
        .await
        .unwrap();
    let mut body = res.into_body();
    // Read the first chunk (the generated text), then go away.
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    let records = h.sink.records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record.metadata.outcome, RequestOutcome::ClientAborted);
    assert_eq!(record.error_code.as_deref(), Some("client_disconnected"));
    // No usage report arrived: estimated from 8 prompt bytes and 17 generated bytes.
    assert!(record.metadata.usage_estimated);
    assert_eq!(record.tokens.input, 2);
    assert_eq!(record.tokens.output, 5);
    assert!(record.cost_nanos_usd > 0);
}

#[tokio::test]
async fn validate_key_describes_the_key() {
    let h = harness();
    let req = Request::post("/v1/keys/validate")
        .header("x-api-key", "sk_good")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = h.gateway.validate_key().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body,
        json!({"valid": true, "apiKeyId": "key1", "organisationId": "org1", "type": "ORGANISATION", "teamId": null, "userId": null, "expiresAt": null})
    );
    assert!(h.sink.records().is_empty());
}

#[tokio::test]
async fn the_unified_route_takes_any_family_but_honours_the_provider_pin() {
    let h = harness();
    let providers = ProviderRegistry::new()
        .with(ProviderType::OpenAi, Arc::new(StaticProvider::default()))
        .with(ProviderType::Anthropic, Arc::new(StaticProvider::default()));
    let gateway = GatewayBuilder::new(
        Arc::new(h.store.clone()),
        providers,
        Arc::new(h.sink.clone()),
    );
    let call = |body: &'static str| {
        let request = Request::post("/v1/llm/chat")
            .header("authorization", "Bearer sk_good")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        gateway.llm(Endpoint::UnifiedChat).oneshot(request)
    };
    // An Anthropic model on the unified route: normalised answer.
    let response = call(r#"{"model":"claude","messages":[]}"#).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["provider"], "anthropic");
    assert_eq!(body["model"], "claude");
    assert_eq!(body["content"], "Hello from Odock.");
    assert_eq!(body["input_tokens"], 12);
    // A pin naming the right family passes; another family is refused before the upstream.
    let ok = call(r#"{"model":"claude","provider":"anthropic"}"#)
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = call(r#"{"model":"claude","provider":"gemini"}"#)
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value =
        serde_json::from_slice(&refused.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["field"], "provider");
    // `openai` also names OpenAI-compatible families.
    let ok = call(r#"{"model":"gpt","provider":"openai"}"#)
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}
