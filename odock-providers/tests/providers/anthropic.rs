//! `AnthropicProvider` against a fake Anthropic upstream speaking the Messages wire format.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, StatusCode, Uri};
use odock_core::{
    Endpoint, ModelId, ModelPricing, ModelType, OrganisationId, Provider, ProviderBody,
    ProviderError, ProviderId, ProviderKeyId, ProviderRequest, ProviderResponse, ProviderType,
    ReportedUsage, RequestId, ResolvedModel, ResolvedProvider, ResolvedProviderKey, Secret,
    StreamChunk, TokenUsage,
};
use odock_providers::anthropic::AnthropicProvider;
use odock_providers::default_registry;

use crate::fake_upstream::http_client;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const MESSAGE: &str = include_str!("../../src/anthropic/fixtures/message.json");
const STREAM: &str = include_str!("../../src/anthropic/fixtures/message_stream.sse");
const CHAT_STREAM: &str = include_str!("../../src/anthropic/fixtures/chat_completion_stream.sse");
const MESSAGE_ID: &str = "msg_01Aq9w938a90dw8qRz5cBzLg";
const UPSTREAM_REQUEST_ID: &str = "req_011CSHoEeqs5C35K2UUqR7Fy";

/// The provider's upstream credential.
const SECRET: &str = "sk-ant-api03-upstream-secret-9f8e7d6c";
/// What a client would authenticate to Odock with; it must never reach the upstream.
const VIRTUAL_KEY: &str = "sk_virtualkey0123456789abcdefghijklmnopqrstuvw";
const MODEL_NAME: &str = "claude";
const SLUG: &str = "claude-sonnet-4-5-20250929";

/// Headers the provider itself sets (plus what the HTTP stack adds); anything else was forwarded.
const EXPECTED_HEADERS: &[&str] = &[
    "x-api-key",
    "anthropic-version",
    "content-type",
    "accept",
    "user-agent",
    "host",
    "content-length",
];

/// The tokens of the fixtures' usage: cache reads and writes count as input.
fn fixture_tokens() -> TokenUsage {
    TokenUsage {
        input: 472 + 120 + 2048,
        cached_input: 2048,
        output: 89,
        ..TokenUsage::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The fake upstream
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Debug, Clone)]
enum Reply {
    Json(StatusCode, &'static str),
    Sse(&'static str),
    Hang,
}

#[derive(Clone)]
struct Shared {
    reply: Reply,
    received: Arc<Mutex<Vec<Received>>>,
}

struct FakeAnthropic {
    /// The server root, as an Anthropic provider's base URL.
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeAnthropic {
    async fn start(reply: Reply) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            reply,
            received: received.clone(),
        };
        let app = Router::new().fallback(answer).with_state(shared);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base_url: format!("http://{addr}"),
            received,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn only_request(&self) -> Received {
        let received = self.received();
        assert_eq!(received.len(), 1, "exactly one upstream request");
        received.into_iter().next().unwrap()
    }
}

async fn answer(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.received.lock().unwrap().push(Received {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let builder = Response::builder()
        .header("request-id", UPSTREAM_REQUEST_ID)
        .header("anthropic-organization-id", "org-upstream")
        .header("anthropic-ratelimit-requests-remaining", "99");
    match shared.reply {
        Reply::Json(status, body) => builder
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap(),
        Reply::Sse(body) => builder
            .header("content-type", "text/event-stream; charset=utf-8")
            .body(Body::from(body))
            .unwrap(),
        Reply::Hang => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn model(base_url: &str, timeout: Option<Duration>, config: Value) -> Arc<ResolvedModel> {
    Arc::new(ResolvedModel {
        id: ModelId::new("mdl_1"),
        organisation_id: OrganisationId::new("org_1"),
        name: MODEL_NAME.into(),
        slug: SLUG.into(),
        model_type: ModelType::Chat,
        capabilities: Vec::new(),
        enabled: true,
        provider: ResolvedProvider {
            id: ProviderId::new("prv_1"),
            name: "anthropic-main".into(),
            provider_type: ProviderType::Anthropic,
            base_url: base_url.into(),
            timeout,
            enabled: true,
            config,
        },
        provider_key: Some(ResolvedProviderKey {
            id: ProviderKeyId::new("pk_1"),
            secret: Secret::new(SECRET),
            revoked: false,
        }),
        key_pool: Default::default(),
        pricing: Arc::new(ModelPricing::default()),
        max_output_tokens: Some(2048),
        config: json!({}),
    })
}

fn request(
    endpoint: Endpoint,
    model: Arc<ResolvedModel>,
    body: &str,
    stream: bool,
    client_wants_usage: bool,
) -> ProviderRequest {
    ProviderRequest {
        endpoint,
        model,
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type: None,
        query: None,
        stream,
        client_wants_usage,
        request_id: RequestId::generate(),
        traceparent: None,
    }
}

fn provider() -> AnthropicProvider {
    AnthropicProvider::new(http_client())
}

fn full_body(response: ProviderResponse) -> (Bytes, Option<ReportedUsage>) {
    match response.body {
        ProviderBody::Full { bytes, usage } => (bytes, usage),
        ProviderBody::Stream(_) => panic!("expected a full body"),
    }
}

async fn collect_stream(response: ProviderResponse) -> Vec<Result<StreamChunk, ProviderError>> {
    match response.body {
        ProviderBody::Stream(chunks) => chunks.collect().await,
        ProviderBody::Full { .. } => panic!("expected a stream"),
    }
}

fn client_bytes(chunks: &[Result<StreamChunk, ProviderError>]) -> String {
    chunks
        .iter()
        .map(|c| {
            std::str::from_utf8(&c.as_ref().unwrap().bytes)
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn reported(chunks: &[Result<StreamChunk, ProviderError>]) -> Vec<ReportedUsage> {
    chunks
        .iter()
        .filter_map(|c| c.as_ref().unwrap().usage.clone())
        .collect()
}

/// Only the provider's own headers reached the upstream, with the upstream credential.
fn assert_upstream_auth(received: &Received) {
    assert_eq!(received.method, Method::POST);
    assert_eq!(received.path, "/v1/messages");
    assert_eq!(received.header("x-api-key"), Some(SECRET));
    assert_eq!(received.header("content-type"), Some("application/json"));
    assert!(received.header("authorization").is_none());
    for (name, value) in &received.headers {
        assert!(
            EXPECTED_HEADERS.contains(&name.as_str()),
            "unexpected upstream header {name}"
        );
        assert!(
            !value.to_str().unwrap().contains(VIRTUAL_KEY),
            "virtual key leaked in {name}"
        );
    }
    assert!(!received.body_str().contains(VIRTUAL_KEY));
}

// ---------------------------------------------------------------------------------------------
// Native: /v1/messages
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn native_unary_is_forwarded_with_the_slug_and_relayed_unchanged_with_exact_usage() {
    let upstream = FakeAnthropic::start(Reply::Json(StatusCode::OK, MESSAGE)).await;
    // A trailing slash on the base URL is tolerated.
    let model = model(&format!("{}/", upstream.base_url), None, json!({}));
    let body = r#"{"model":"claude","max_tokens":1024,"messages":[{"role":"user","content":"Weather in Zürich?"}],"x_vendor":{"keep": [1.0, "as-is"]}}"#;

    let response = provider()
        .call(request(
            Endpoint::AnthropicMessages,
            model,
            body,
            false,
            false,
        ))
        .await
        .unwrap();

    let received = upstream.only_request();
    assert_upstream_auth(&received);
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(received.header("accept"), Some("application/json"));
    assert_eq!(
        received.body_str(),
        r#"{"model":"claude-sonnet-4-5-20250929","max_tokens":1024,"messages":[{"role":"user","content":"Weather in Zürich?"}],"x_vendor":{"keep": [1.0, "as-is"]}}"#,
        "only the model is rewritten; everything else keeps its bytes"
    );

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.headers.len(),
        1,
        "only content-type is relayed: {:?}",
        response.headers
    );
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.provider_request_id.as_deref(), Some(MESSAGE_ID));
    let (bytes, usage) = full_body(response);
    assert_eq!(bytes, MESSAGE.as_bytes(), "relayed unchanged");
    let usage = usage.unwrap();
    assert_eq!(usage.tokens, fixture_tokens());
    assert_eq!(
        usage.raw,
        serde_json::from_str::<Value>(MESSAGE).unwrap()["usage"]
    );
}

#[tokio::test]
async fn the_anthropic_version_comes_from_the_provider_config() {
    let upstream = FakeAnthropic::start(Reply::Json(StatusCode::OK, MESSAGE)).await;
    let model = model(
        &upstream.base_url,
        None,
        json!({"anthropicVersion": "2024-10-22"}),
    );
    provider()
        .call(request(
            Endpoint::AnthropicMessages,
            model,
            r#"{"model":"claude"}"#,
            false,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(
        upstream.only_request().header("anthropic-version"),
        Some("2024-10-22")
    );
}

#[tokio::test]
async fn native_streams_are_relayed_event_for_event_with_usage_on_message_delta() {
    let upstream = FakeAnthropic::start(Reply::Sse(STREAM)).await;
    let body = r#"{"model":"claude","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#;

    let response = provider()
        .call(request(
            Endpoint::AnthropicMessages,
            model(&upstream.base_url, None, json!({})),
            body,
            true,
            false,
        ))
        .await
        .unwrap();

    let received = upstream.only_request();
    assert_upstream_auth(&received);
    assert_eq!(received.header("accept"), Some("text/event-stream"));
    assert_eq!(
        received.body_str(),
        r#"{"model":"claude-sonnet-4-5-20250929","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
        "Anthropic streams report usage unasked: nothing is added"
    );

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.headers["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(response.headers["cache-control"], "no-cache");
    assert_eq!(
        response.provider_request_id.as_deref(),
        Some(UPSTREAM_REQUEST_ID)
    );
    let chunks = collect_stream(response).await;
    assert_eq!(client_bytes(&chunks), STREAM, "every event relayed as sent");
    let usage = reported(&chunks);
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].tokens, fixture_tokens());
    assert_eq!(usage[0].raw["output_tokens"], 89);
    assert_eq!(usage[0].raw["cache_read_input_tokens"], 2048);
    let text: u64 = chunks
        .iter()
        .map(|c| c.as_ref().unwrap().output_text_bytes)
        .sum();
    assert_eq!(
        text,
        "The user wants the weather.Let me check Zürich 🌤{\"location\": \"Zürich\"}".len() as u64
    );
}

#[tokio::test]
async fn native_upstream_errors_are_relayed_with_their_status_and_body() {
    const ERROR: &str = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
    for stream in [false, true] {
        let upstream = FakeAnthropic::start(Reply::Json(StatusCode::BAD_REQUEST, ERROR)).await;
        let body = format!(r#"{{"model":"claude","stream":{stream}}}"#);
        let response = provider()
            .call(request(
                Endpoint::AnthropicMessages,
                model(&upstream.base_url, None, json!({})),
                &body,
                stream,
                false,
            ))
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "stream: {stream}");
        assert_eq!(response.headers["content-type"], "application/json");
        assert_eq!(
            response.provider_request_id.as_deref(),
            Some(UPSTREAM_REQUEST_ID)
        );
        let (bytes, usage) = full_body(response);
        assert_eq!(bytes, ERROR);
        assert!(usage.is_none());
    }
}

// ---------------------------------------------------------------------------------------------
// Unified: /v1/llm/chat
// ---------------------------------------------------------------------------------------------

/// An OpenAI chat request carrying a finished tool round: the assistant's call and its result.
const TOOL_ROUND: &str = r#"{
    "model": "claude",
    "messages": [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "toolu_prev", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Zürich\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "toolu_prev", "content": "18°C, sunny"},
        {"role": "user", "content": "And tomorrow?"}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}],
    "tool_choice": "required",
    "seed": 3
}"#;

#[tokio::test]
async fn unified_unary_translates_tool_calls_both_ways() {
    let upstream = FakeAnthropic::start(Reply::Json(StatusCode::OK, MESSAGE)).await;

    let response = provider()
        .call(request(
            Endpoint::UnifiedChat,
            model(&upstream.base_url, None, json!({})),
            TOOL_ROUND,
            false,
            false,
        ))
        .await
        .unwrap();

    let received = upstream.only_request();
    assert_upstream_auth(&received);
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        received.json(),
        json!({
            "model": SLUG,
            "system": "Use the tools.",
            "messages": [
                {"role": "user", "content": "Weather in Zürich?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_prev", "name": "get_weather", "input": {"location": "Zürich"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_prev", "content": "18°C, sunny"}
                ]},
                {"role": "user", "content": "And tomorrow?"}
            ],
            // No max_tokens in the request: the model's configured cap.
            "max_tokens": 2048,
            "tools": [{"name": "get_weather", "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
            "tool_choice": {"type": "any"}
        })
    );

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.provider_request_id.as_deref(), Some(MESSAGE_ID));
    let (bytes, usage) = full_body(response);
    let completion: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], MODEL_NAME, "the Odock model name");
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["content"],
        "I'll check the current weather in Zürich for you."
    );
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"location": "Zürich", "unit": "celsius"}));
    assert_eq!(completion["usage"]["prompt_tokens"], 2640);
    assert_eq!(completion["usage"]["completion_tokens"], 89);
    let usage = usage.unwrap();
    assert_eq!(usage.tokens, fixture_tokens());
    assert_eq!(
        usage.raw,
        serde_json::from_str::<Value>(MESSAGE).unwrap()["usage"]
    );
}

#[tokio::test]
async fn unified_streams_become_openai_chunks_ending_in_done() {
    for client_wants_usage in [false, true] {
        let upstream = FakeAnthropic::start(Reply::Sse(STREAM)).await;
        let body = r#"{"model":"claude","stream":true,"stream_options":{"include_usage":true},"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;

        let response = provider()
            .call(request(
                Endpoint::UnifiedChat,
                model(&upstream.base_url, None, json!({})),
                body,
                true,
                client_wants_usage,
            ))
            .await
            .unwrap();

        let sent = upstream.only_request();
        assert_upstream_auth(&sent);
        assert_eq!(sent.header("accept"), Some("text/event-stream"));
        assert_eq!(
            sent.json(),
            json!({"model": SLUG, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100, "stream": true})
        );
        assert_eq!(response.status, StatusCode::OK);
        assert!(response.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let chunks = collect_stream(response).await;
        let text = client_bytes(&chunks);
        // Same chunks as the golden file, apart from each chunk's `created` timestamp.
        let normalise = |s: &str| -> Vec<Value> {
            s.split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .map(|data| {
                    let mut value: Value =
                        serde_json::from_str(data).unwrap_or(Value::String(data.into()));
                    if let Some(created) = value.get_mut("created") {
                        *created = json!(0);
                    }
                    value
                })
                .collect()
        };
        let expected: String = CHAT_STREAM
            .split_inclusive("\n\n")
            .filter(|e| client_wants_usage || !e.contains("\"choices\":[]"))
            .collect();
        assert_eq!(normalise(&text), normalise(&expected), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        let usage = reported(&chunks);
        assert_eq!(usage.len(), 1, "billed whether or not the client asked");
        assert_eq!(usage[0].tokens, fixture_tokens());
    }
}

#[tokio::test]
async fn unified_upstream_errors_carry_the_upstream_status_and_message() {
    for (status, body, message) in [
        (
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
            "Internal server error",
        ),
    ] {
        for stream in [false, true] {
            let upstream = FakeAnthropic::start(Reply::Json(status, body)).await;
            let error = provider()
                .call(request(
                    Endpoint::UnifiedChat,
                    model(&upstream.base_url, None, json!({})),
                    r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#,
                    stream,
                    false,
                ))
                .await
                .unwrap_err();
            assert_eq!(
                error,
                ProviderError::Upstream {
                    status: status.as_u16(),
                    message: message.into(),
                    retry_after: None,
                },
                "stream: {stream}"
            );
            assert!(!format!("{error:?}").contains(SECRET));
        }
    }
}

#[tokio::test]
async fn unified_requests_anthropic_cannot_express_are_refused_without_calling_upstream() {
    let upstream = FakeAnthropic::start(Reply::Json(StatusCode::OK, MESSAGE)).await;
    let error = provider()
        .call(request(
            Endpoint::UnifiedChat,
            model(&upstream.base_url, None, json!({})),
            r#"{"model":"claude","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}"#,
            false,
            false,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidRequest(_)),
        "{error:?}"
    );
    assert_eq!(
        odock_core::GatewayError::from(error).code(),
        "invalid_request"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn a_translated_stream_cut_before_message_stop_ends_with_an_error() {
    // The fixture up to (and including) the first text delta.
    let cut: &'static str = {
        let end = STREAM
            .find("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}")
            .unwrap();
        Box::leak(STREAM[..end].to_owned().into_boxed_str())
    };
    let upstream = FakeAnthropic::start(Reply::Sse(cut)).await;
    let response = provider()
        .call(request(
            Endpoint::UnifiedChat,
            model(&upstream.base_url, None, json!({})),
            r#"{"model":"claude","stream":true,"messages":[]}"#,
            true,
            false,
        ))
        .await
        .unwrap();
    let chunks = collect_stream(response).await;
    let (last, first) = chunks.split_last().unwrap();
    assert!(
        matches!(last, Err(ProviderError::InvalidResponse(_))),
        "{last:?}"
    );
    assert!(client_bytes(first).contains("Let me check"));
    assert!(!client_bytes(first).contains("[DONE]"));
}

// ---------------------------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    let upstream = FakeAnthropic::start(Reply::Hang).await;
    let timeout = Duration::from_millis(200);
    for endpoint in [Endpoint::AnthropicMessages, Endpoint::UnifiedChat] {
        let error = provider()
            .call(request(
                endpoint,
                model(&upstream.base_url, Some(timeout), json!({})),
                r#"{"model":"claude","messages":[]}"#,
                false,
                false,
            ))
            .await
            .unwrap_err();
        assert_eq!(error, ProviderError::Timeout(timeout));
    }
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_and_never_names_the_secret() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let error = provider()
        .call(request(
            Endpoint::AnthropicMessages,
            model(&format!("http://127.0.0.1:{port}"), None, json!({})),
            r#"{"model":"claude"}"#,
            false,
            false,
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Unreachable(_)), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(SECRET));
}

#[tokio::test]
async fn other_routes_are_not_served_and_the_default_registry_has_the_provider() {
    let error = provider()
        .call(request(
            Endpoint::ChatCompletions,
            model("http://127.0.0.1:9", None, json!({})),
            r#"{"model":"claude"}"#,
            false,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(error, ProviderError::UnsupportedEndpoint);

    let upstream = FakeAnthropic::start(Reply::Json(StatusCode::OK, MESSAGE)).await;
    let registry = default_registry(http_client());
    let response = registry
        .get(ProviderType::Anthropic)
        .unwrap()
        .call(request(
            Endpoint::AnthropicMessages,
            model(&upstream.base_url, None, json!({})),
            r#"{"model":"claude"}"#,
            false,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(upstream.received().len(), 1);
}
