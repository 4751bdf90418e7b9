//! `GeminiProvider` against a fake Gemini upstream: native routes (bytes in, bytes out) and
//! `/v1/llm/chat` (OpenAI in, Gemini upstream, OpenAI out).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http::{HeaderMap, StatusCode, Uri};
use odock_core::{
    Endpoint, ModelId, ModelPricing, ModelType, OrganisationId, Provider, ProviderBody,
    ProviderError, ProviderId, ProviderKeyId, ProviderRequest, ProviderResponse, ProviderType,
    ReportedUsage, RequestId, ResolvedModel, ResolvedProvider, ResolvedProviderKey, Secret,
    StreamChunk, TokenUsage,
};
use odock_providers::default_registry;
use odock_providers::gemini::GeminiProvider;

use crate::fake_upstream::http_client;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const UNARY: &str = include_str!("../../src/gemini/fixtures/generate_content.json");
const STREAM: &str = include_str!("../../src/gemini/fixtures/stream_generate_content.sse");
const CALLS_STREAM: &str = include_str!("../../src/gemini/fixtures/stream_function_calls.sse");
const UNARY_ID: &str = "xBJ2aOu3Ks-Az7IP2Kq8wQ8";

/// The provider's upstream credential.
const SECRET: &str = "AIzaSyUpstreamSecret-0123456789abcdef";
/// What a client would authenticate to Odock with; it must never reach the upstream.
const VIRTUAL_KEY: &str = "sk_virtualkey0123456789abcdefghijklmnopqrstuvw";
const MODEL_NAME: &str = "odock-gemini";
const SLUG: &str = "gemini-2.5-flash";

/// Headers the provider itself sets (plus what the HTTP stack adds); anything else was forwarded.
const EXPECTED_HEADERS: &[&str] = &[
    "x-goog-api-key",
    "content-type",
    "accept",
    "user-agent",
    "host",
    "content-length",
];

const GOOGLE_ERROR_429: &str = r#"{
  "error": {
    "code": 429,
    "message": "Resource has been exhausted (e.g. check quota).",
    "status": "RESOURCE_EXHAUSTED"
  }
}
"#;

// ---------------------------------------------------------------------------------------------
// A fake Gemini upstream.

#[derive(Debug, Clone)]
struct Received {
    uri: Uri,
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
    SseThenHang(&'static str),
    Hang,
}

#[derive(Clone)]
struct Upstream {
    reply: Reply,
    received: Arc<Mutex<Vec<Received>>>,
}

struct FakeGemini {
    /// `http://127.0.0.1:<port>`: the server root, as a Gemini provider's base URL.
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeGemini {
    async fn start(reply: Reply) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            reply,
            received: received.clone(),
        };
        let app = Router::new().fallback(answer).with_state(state);
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
    State(upstream): State<Upstream>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    upstream
        .received
        .lock()
        .unwrap()
        .push(Received { uri, headers, body });
    let sse = |body: Body| {
        Response::builder()
            .header("content-type", "text/event-stream")
            .header("x-goog-upstream-only", "1")
            .body(body)
            .unwrap()
    };
    match upstream.reply {
        Reply::Json(status, body) => Response::builder()
            .status(status)
            .header("content-type", "application/json; charset=UTF-8")
            .header("server-timing", "gfet4t7; dur=1234")
            .body(Body::from(body))
            .unwrap(),
        Reply::Sse(body) => sse(Body::from(body)),
        Reply::SseThenHang(prefix) => sse(Body::from_stream(
            stream::iter([Ok::<_, Infallible>(Bytes::from_static(prefix.as_bytes()))])
                .chain(stream::pending()),
        )),
        Reply::Hang => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn model(base_url: &str, timeout: Option<Duration>) -> Arc<ResolvedModel> {
    Arc::new(ResolvedModel {
        id: ModelId::new("mdl_g"),
        organisation_id: OrganisationId::new("org_1"),
        name: MODEL_NAME.into(),
        slug: SLUG.into(),
        model_type: ModelType::Chat,
        capabilities: Vec::new(),
        enabled: true,
        provider: ResolvedProvider {
            id: ProviderId::new("prv_g"),
            name: "google".into(),
            provider_type: ProviderType::Google,
            base_url: base_url.into(),
            timeout,
            enabled: true,
            config: json!({}),
        },
        provider_key: Some(ResolvedProviderKey {
            id: ProviderKeyId::new("pk_g"),
            secret: Secret::new(SECRET),
            revoked: false,
        }),
        key_pool: Default::default(),
        pricing: Arc::new(ModelPricing::default()),
        max_output_tokens: None,
        config: json!({}),
    })
}

fn request(endpoint: Endpoint, model: Arc<ResolvedModel>, body: &str) -> ProviderRequest {
    ProviderRequest {
        endpoint,
        model,
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type: Some(http::HeaderValue::from_static("application/json")),
        query: None,
        stream: endpoint == Endpoint::GeminiStreamGenerateContent,
        client_wants_usage: false,
        request_id: RequestId::parse("req_gemini_1").unwrap(),
        traceparent: None,
    }
}

fn unified(
    model: Arc<ResolvedModel>,
    body: Value,
    stream: bool,
    wants_usage: bool,
) -> ProviderRequest {
    ProviderRequest {
        stream,
        client_wants_usage: wants_usage,
        ..request(Endpoint::UnifiedChat, model, &body.to_string())
    }
}

fn provider() -> GeminiProvider {
    GeminiProvider::new(http_client())
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

fn client_text(chunks: &[Result<StreamChunk, ProviderError>]) -> String {
    chunks
        .iter()
        .map(|c| {
            std::str::from_utf8(&c.as_ref().unwrap().bytes)
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The `data:` payloads of an SSE text, JSON-decoded where they are JSON.
fn payloads(sse: &str) -> Vec<Value> {
    sse.split("\n\n")
        .filter(|block| !block.is_empty())
        .map(|block| {
            let data = block.strip_prefix("data: ").unwrap();
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
        })
        .collect()
}

fn last_usage(chunks: &[Result<StreamChunk, ProviderError>]) -> TokenUsage {
    chunks
        .iter()
        .rev()
        .find_map(|c| c.as_ref().unwrap().usage.as_ref())
        .expect("the stream reported usage")
        .tokens
        .clone()
}

/// Only the provider's own headers reached the upstream, with the upstream credential.
fn assert_upstream_auth(received: &Received) {
    assert_eq!(received.header("x-goog-api-key"), Some(SECRET));
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
    assert!(!received.uri.to_string().contains(VIRTUAL_KEY));
    assert!(!received.body_str().contains(VIRTUAL_KEY));
}

// ---------------------------------------------------------------------------------------------
// Native routes.

#[tokio::test]
async fn native_unary_forwards_the_clients_bytes_and_relays_the_answer() {
    let upstream = FakeGemini::start(Reply::Json(StatusCode::OK, UNARY)).await;
    // Unknown members and exact number formatting must survive.
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"Weather in Zürich?"}]}],"generationConfig":{"temperature":0.50},"x_vendor":{"keep":[1.0,"as-is"]}}"#;
    let mut call = request(
        Endpoint::GeminiGenerateContent,
        // A trailing slash on the base URL is tolerated.
        model(&format!("{}/", upstream.base_url), None),
        body,
    );
    // Whatever else the client put in its query stays behind.
    call.query = Some("alt=json&$fields=candidates".into());

    let response = provider().call(call).await.unwrap();

    let received = upstream.only_request();
    assert_eq!(
        received.uri.path(),
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(received.uri.query(), None);
    assert_eq!(received.body_str(), body, "forwarded byte for byte");
    assert_upstream_auth(&received);
    assert_eq!(received.header("accept"), Some("application/json"));
    assert_eq!(received.header("content-type"), Some("application/json"));

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers.len(), 1, "{:?}", response.headers);
    assert_eq!(
        response.headers["content-type"],
        "application/json; charset=UTF-8"
    );
    assert_eq!(response.provider_request_id.as_deref(), Some(UNARY_ID));
    let (bytes, usage) = full_body(response);
    assert_eq!(
        bytes,
        UNARY.as_bytes(),
        "the upstream body is relayed unchanged"
    );
    let usage = usage.unwrap();
    assert_eq!(
        usage.tokens,
        TokenUsage {
            input: 1187,
            // candidatesTokenCount 31 + thoughtsTokenCount 94.
            output: 125,
            cached_input: 1024,
            reasoning: 94,
            ..TokenUsage::default()
        }
    );
    assert_eq!(
        usage.raw,
        serde_json::from_str::<Value>(UNARY).unwrap()["usageMetadata"]
    );
}

#[tokio::test]
async fn native_streams_ask_for_sse_and_relay_every_event() {
    let upstream = FakeGemini::start(Reply::Sse(STREAM)).await;
    let body = r#"{"contents":[{"parts":[{"text":"Say hello"}]}]}"#;
    let mut call = request(
        Endpoint::GeminiStreamGenerateContent,
        model(&upstream.base_url, None),
        body,
    );
    call.query = Some("alt=sse".into());

    let response = provider().call(call).await.unwrap();

    let received = upstream.only_request();
    assert_eq!(
        received.uri.path(),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(received.uri.query(), Some("alt=sse"));
    assert_eq!(received.body_str(), body);
    assert_eq!(received.header("accept"), Some("text/event-stream"));
    assert_upstream_auth(&received);

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["content-type"], "text/event-stream");
    assert_eq!(response.headers["cache-control"], "no-cache");
    assert_eq!(response.headers.len(), 2);

    let chunks = collect_stream(response).await;
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        client_text(&chunks),
        STREAM.replace("\r\n", "\n"),
        "each event's data is relayed unchanged"
    );
    assert_eq!(
        last_usage(&chunks),
        TokenUsage {
            input: 9,
            output: 56,
            reasoning: 50,
            ..TokenUsage::default()
        }
    );
    let text: u64 = chunks
        .iter()
        .map(|c| c.as_ref().unwrap().output_text_bytes)
        .sum();
    assert_eq!(text, "Hello! Héllo wörld 👋".len() as u64);
}

#[tokio::test]
async fn native_upstream_errors_are_relayed_with_their_status_and_body() {
    for endpoint in [
        Endpoint::GeminiGenerateContent,
        Endpoint::GeminiStreamGenerateContent,
    ] {
        let upstream =
            FakeGemini::start(Reply::Json(StatusCode::TOO_MANY_REQUESTS, GOOGLE_ERROR_429)).await;
        let response = provider()
            .call(request(endpoint, model(&upstream.base_url, None), "{}"))
            .await
            .unwrap();
        assert_eq!(
            response.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{endpoint:?}"
        );
        assert_eq!(response.headers.len(), 1);
        let (bytes, usage) = full_body(response);
        assert_eq!(bytes, GOOGLE_ERROR_429);
        assert!(usage.is_none());
    }
}

#[tokio::test]
async fn the_api_version_comes_from_the_provider_config() {
    let upstream = FakeGemini::start(Reply::Json(StatusCode::OK, UNARY)).await;
    let mut configured = (*model(&upstream.base_url, None)).clone();
    configured.provider.config = json!({"apiVersion": "v1"});
    configured.slug = "models/gemini-2.0-flash".into();
    provider()
        .call(request(
            Endpoint::GeminiGenerateContent,
            Arc::new(configured),
            "{}",
        ))
        .await
        .unwrap();
    assert_eq!(
        upstream.only_request().uri.path(),
        "/v1/models/gemini-2.0-flash:generateContent"
    );
}

#[tokio::test]
async fn the_default_registry_serves_google_providers() {
    let upstream = FakeGemini::start(Reply::Json(StatusCode::OK, UNARY)).await;
    let registry = default_registry(http_client());
    let provider = registry.get(ProviderType::Google).unwrap();
    let response = provider
        .call(request(
            Endpoint::GeminiGenerateContent,
            model(&upstream.base_url, None),
            "{}",
        ))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_upstream_auth(&upstream.only_request());
}

#[tokio::test]
async fn other_endpoints_are_not_served() {
    let error = provider()
        .call(request(
            Endpoint::ChatCompletions,
            model("http://127.0.0.1:9", None),
            "{}",
        ))
        .await
        .unwrap_err();
    assert_eq!(error, ProviderError::UnsupportedEndpoint);
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    let upstream = FakeGemini::start(Reply::Hang).await;
    let timeout = Duration::from_millis(200);
    let error = provider()
        .call(request(
            Endpoint::GeminiGenerateContent,
            model(&upstream.base_url, Some(timeout)),
            "{}",
        ))
        .await
        .unwrap_err();
    assert_eq!(error, ProviderError::Timeout(timeout));
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_one_timeout() {
    const FIRST: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}],\"role\": \"model\"},\"index\": 0}]}\r\n\r\n";
    let upstream = FakeGemini::start(Reply::SseThenHang(FIRST)).await;
    let timeout = Duration::from_millis(200);
    let response = provider()
        .call(request(
            Endpoint::GeminiStreamGenerateContent,
            model(&upstream.base_url, Some(timeout)),
            "{}",
        ))
        .await
        .unwrap();
    let chunks = collect_stream(response).await;
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert_eq!(chunks[0].as_ref().unwrap().output_text_bytes, 2);
    assert_eq!(
        chunks[1].as_ref().unwrap_err(),
        &ProviderError::Timeout(timeout)
    );
}

// ---------------------------------------------------------------------------------------------
// `/v1/llm/chat`, translated.

#[tokio::test]
async fn unified_unary_is_translated_both_ways() {
    let upstream = FakeGemini::start(Reply::Json(StatusCode::OK, UNARY)).await;
    let body = json!({
        "model": MODEL_NAME,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Zürich?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": "auto",
        "max_tokens": 256,
        "temperature": 0.2,
        "stop": "END"
    });

    let response = provider()
        .call(unified(model(&upstream.base_url, None), body, false, false))
        .await
        .unwrap();

    let received = upstream.only_request();
    assert_eq!(
        received.uri.path(),
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(received.uri.query(), None);
    assert_upstream_auth(&received);
    assert_eq!(
        received.json(),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Weather in Zürich?"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
                "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"maxOutputTokens": 256, "temperature": 0.2, "stopSequences": ["END"]}
        })
    );

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.provider_request_id.as_deref(), Some(UNARY_ID));
    let (bytes, usage) = full_body(response);
    let completion: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["id"], UNARY_ID);
    assert_eq!(
        completion["model"], MODEL_NAME,
        "the Odock name, not the slug"
    );
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["content"],
        "Let me look up the current weather in Zürich for you."
    );
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Zürich", "unit": "celsius"}));
    assert_eq!(
        completion["usage"],
        json!({"prompt_tokens": 1187, "completion_tokens": 125, "total_tokens": 1312,
               "prompt_tokens_details": {"cached_tokens": 1024},
               "completion_tokens_details": {"reasoning_tokens": 94}})
    );
    let usage = usage.unwrap();
    assert_eq!((usage.tokens.input, usage.tokens.output), (1187, 125));
}

#[tokio::test]
async fn unified_tool_results_reach_gemini_as_function_responses() {
    let upstream = FakeGemini::start(Reply::Json(StatusCode::OK, UNARY)).await;
    let body = json!({
        "model": MODEL_NAME,
        "messages": [
            {"role": "user", "content": "Weather and time in Zürich?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Zürich\"}"}},
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\":18,\"sky\":\"rain\"}"},
            {"role": "tool", "tool_call_id": "call_1", "content": "14:05 local time"}
        ]
    });
    provider()
        .call(unified(model(&upstream.base_url, None), body, false, false))
        .await
        .unwrap();
    let sent = upstream.only_request().json();
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather and time in Zürich?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Zürich"}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18, "sky": "rain"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "14:05 local time"}}}
            ]}
        ])
    );
}

#[tokio::test]
async fn unified_streams_become_openai_chunks_with_usage_and_done() {
    let upstream = FakeGemini::start(Reply::Sse(STREAM)).await;
    let body = json!({"model": MODEL_NAME, "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "Say hello"}]});

    let response = provider()
        .call(unified(model(&upstream.base_url, None), body, true, true))
        .await
        .unwrap();

    let received = upstream.only_request();
    assert_eq!(
        received.uri.path(),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(received.uri.query(), Some("alt=sse"));
    assert_eq!(
        received.json(),
        json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}),
        "nothing OpenAI-only reaches Gemini"
    );
    assert_upstream_auth(&received);
    assert_eq!(response.headers["content-type"], "text/event-stream");
    assert_eq!(response.headers["cache-control"], "no-cache");

    let chunks = collect_stream(response).await;
    let events = payloads(&client_text(&chunks));
    let deltas: Vec<&Value> = events
        .iter()
        .filter_map(|e| e.get("choices")?.get(0)?.get("delta"))
        .collect();
    assert_eq!(deltas[0], &json!({"role": "assistant", "content": ""}));
    let text: String = deltas
        .iter()
        .filter_map(|d| d.get("content").and_then(Value::as_str))
        .collect();
    assert_eq!(text, "Hello! Héllo wörld 👋");
    for event in &events[..events.len() - 1] {
        assert_eq!(event["object"], "chat.completion.chunk");
        assert_eq!(event["model"], MODEL_NAME);
        assert_eq!(event["id"], "AdVRaMmDCYekqtsPrb_-iAw");
    }
    let finish = &events[events.len() - 3];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &events[events.len() - 2];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 9);
    assert_eq!(usage["usage"]["completion_tokens"], 56);
    assert_eq!(usage["usage"]["total_tokens"], 65);
    assert_eq!(events[events.len() - 1], json!("[DONE]"));

    assert_eq!(last_usage(&chunks).output, 56);
    let generated: u64 = chunks
        .iter()
        .map(|c| c.as_ref().unwrap().output_text_bytes)
        .sum();
    assert_eq!(generated, "Hello! Héllo wörld 👋".len() as u64);
}

#[tokio::test]
async fn unified_streams_without_usage_requested_end_with_done_only() {
    let upstream = FakeGemini::start(Reply::Sse(STREAM)).await;
    let body = json!({"model": MODEL_NAME, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = provider()
        .call(unified(model(&upstream.base_url, None), body, true, false))
        .await
        .unwrap();
    let chunks = collect_stream(response).await;
    let events = payloads(&client_text(&chunks));
    assert!(events.iter().all(|e| e.get("usage").is_none()));
    assert_eq!(
        events[events.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(events[events.len() - 1], json!("[DONE]"));
    assert_eq!(
        last_usage(&chunks).input,
        9,
        "usage is still reported for billing"
    );
}

#[tokio::test]
async fn unified_streamed_function_calls_become_tool_call_deltas() {
    let upstream = FakeGemini::start(Reply::Sse(CALLS_STREAM)).await;
    let body = json!({"model": MODEL_NAME, "stream": true,
        "messages": [{"role": "user", "content": "Weather and time in Zürich?"}],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}});
    let response = provider()
        .call(unified(model(&upstream.base_url, None), body, true, false))
        .await
        .unwrap();
    assert_eq!(
        upstream.only_request().json()["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    let chunks = collect_stream(response).await;
    let events = payloads(&client_text(&chunks));
    let calls = &events[1]["choices"][0]["delta"]["tool_calls"];
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["id"], "call_0");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city":"Zürich"}"#);
    assert_eq!(calls[1]["index"], 1);
    assert_eq!(calls[1]["function"]["name"], "get_time");
    assert_eq!(events[2]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(events[3], json!("[DONE]"));
}

#[tokio::test]
async fn unified_upstream_errors_carry_the_upstream_status_and_message() {
    for stream in [false, true] {
        let upstream =
            FakeGemini::start(Reply::Json(StatusCode::TOO_MANY_REQUESTS, GOOGLE_ERROR_429)).await;
        let body = json!({"model": MODEL_NAME, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let error = provider()
            .call(unified(
                model(&upstream.base_url, None),
                body,
                stream,
                false,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            ProviderError::Upstream {
                status: 429,
                message: "Resource has been exhausted (e.g. check quota).".into(),
                retry_after: None,
            },
            "stream: {stream}"
        );
        assert!(!format!("{error:?}").contains(SECRET));
    }
}

#[tokio::test]
async fn unified_requests_gemini_cannot_take_are_refused_without_calling_it() {
    let upstream = FakeGemini::start(Reply::Json(StatusCode::OK, UNARY)).await;
    let body = json!({"model": MODEL_NAME, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "call_unknown", "content": "42"}
    ]});
    let error = provider()
        .call(unified(model(&upstream.base_url, None), body, false, false))
        .await
        .unwrap_err();
    let ProviderError::InvalidRequest(message) = &error else {
        panic!("expected InvalidRequest, got {error:?}");
    };
    assert!(message.contains("call_unknown"));
    assert_eq!(
        odock_core::GatewayError::from(error).code(),
        "invalid_request"
    );
    assert!(upstream.received().is_empty());
}
