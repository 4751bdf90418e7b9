//! `OpenAiCompatProvider` on every OpenAI route (responses, embeddings, images, `/v1/llm/chat`)
//! and on Azure OpenAI, against a fake upstream that records full URLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, StatusCode, Uri};
use odock_core::{
    Endpoint, ModelId, ModelPricing, ModelType, OrganisationId, ProviderBody, ProviderError,
    ProviderId, ProviderKeyId, ProviderRequest, ProviderResponse, ProviderType, ReportedUsage,
    RequestId, ResolvedModel, ResolvedProvider, ResolvedProviderKey, Secret, StreamChunk,
    TokenUsage,
};
use odock_providers::default_registry;

use crate::fake_upstream::http_client;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const RESPONSE: &str = include_str!("../../src/openai_compat/fixtures/response.json");
const RESPONSE_STREAM: &str = include_str!("../../src/openai_compat/fixtures/responses_stream.sse");
const CHAT: &str = include_str!("../../src/openai_compat/fixtures/chat_completion.json");
const CHAT_STREAM: &str =
    include_str!("../../src/openai_compat/fixtures/chat_completion_stream.sse");
const EMBEDDINGS: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
const DALL_E: &str = r#"{"created":1713833628,"data":[{"revised_prompt":"A cat","url":"https://files.example/1.png"},{"revised_prompt":"A cat","url":"https://files.example/2.png"}]}"#;
const GPT_IMAGE: &str = r#"{"created":1713833628,"data":[{"b64_json":"iVBORw0KGgo="}],"usage":{"total_tokens":4210,"input_tokens":50,"output_tokens":4160,"input_tokens_details":{"text_tokens":10,"image_tokens":40}}}"#;

const SECRET: &str = "sk-upstream-secret-9f8e7d6c5b4a";
const SLUG: &str = "upstream-slug";

/// One request as the upstream saw it, with its query.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An answer: status, content type, body.
type Canned = (StatusCode, &'static str, &'static str);

#[derive(Clone)]
struct Upstream {
    replies: Arc<HashMap<&'static str, Canned>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Answers each path with its canned reply (404 for others) and records what it received.
struct Recorder {
    /// `http://127.0.0.1:<port>` (no path).
    root: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Recorder {
    async fn start(replies: &[(&'static str, Canned)]) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            replies: Arc::new(replies.iter().copied().collect()),
            seen: seen.clone(),
        };
        let app = Router::new().fallback(answer).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            root: format!("http://{addr}"),
            seen,
        }
    }

    /// An OpenAI-style base URL (with `/v1`).
    fn v1(&self) -> String {
        format!("{}/v1", self.root)
    }

    fn only(&self) -> Seen {
        let seen = self.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "exactly one upstream request: {seen:?}");
        seen[0].clone()
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

async fn answer(
    State(upstream): State<Upstream>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    upstream.seen.lock().unwrap().push(Seen {
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    });
    let (status, content_type, body) = upstream.replies.get(uri.path()).copied().unwrap_or((
        StatusCode::NOT_FOUND,
        "application/json",
        "{}",
    ));
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-request-id", "req_upstream_7")
        .body(Body::from(body))
        .unwrap()
}

fn ok_json(body: &'static str) -> Canned {
    (StatusCode::OK, "application/json", body)
}

fn ok_sse(body: &'static str) -> Canned {
    (StatusCode::OK, "text/event-stream; charset=utf-8", body)
}

fn model(provider_type: ProviderType, base_url: &str, config: Value) -> Arc<ResolvedModel> {
    Arc::new(ResolvedModel {
        id: ModelId::new("mdl_1"),
        organisation_id: OrganisationId::new("org_1"),
        name: "odock-model".into(),
        slug: SLUG.into(),
        model_type: ModelType::Chat,
        capabilities: Vec::new(),
        enabled: true,
        provider: ResolvedProvider {
            id: ProviderId::new("prv_1"),
            name: "upstream".into(),
            provider_type,
            base_url: base_url.into(),
            timeout: None,
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
        max_output_tokens: None,
        config: json!({}),
    })
}

fn openai(recorder: &Recorder) -> Arc<ResolvedModel> {
    model(ProviderType::OpenAi, &recorder.v1(), json!({}))
}

fn azure(recorder: &Recorder, config: Value) -> Arc<ResolvedModel> {
    model(
        ProviderType::AzureOpenAi,
        &format!("{}/", recorder.root),
        config,
    )
}

fn json_request(endpoint: Endpoint, model: Arc<ResolvedModel>, body: &str) -> ProviderRequest {
    let stream = serde_json::from_str::<Value>(body).unwrap()["stream"] == true;
    ProviderRequest {
        endpoint,
        model,
        body: Bytes::copy_from_slice(body.as_bytes()),
        content_type: Some(http::HeaderValue::from_static("application/json")),
        query: None,
        stream,
        client_wants_usage: false,
        request_id: RequestId::generate(),
        traceparent: None,
    }
}

async fn call(request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
    let registry = default_registry(http_client());
    let provider = registry
        .get(request.model.provider.provider_type)
        .expect("the provider type is registered")
        .clone();
    provider.call(request).await
}

fn full(response: ProviderResponse) -> (Bytes, Option<ReportedUsage>) {
    match response.body {
        ProviderBody::Full { bytes, usage } => (bytes, usage),
        ProviderBody::Stream(_) => panic!("expected a full body"),
    }
}

async fn chunks(response: ProviderResponse) -> Vec<StreamChunk> {
    match response.body {
        ProviderBody::Stream(chunks) => chunks.map(Result::unwrap).collect().await,
        ProviderBody::Full { .. } => panic!("expected a stream"),
    }
}

fn relayed(chunks: &[StreamChunk]) -> String {
    chunks
        .iter()
        .map(|c| std::str::from_utf8(&c.bytes).unwrap())
        .collect()
}

#[tokio::test]
async fn every_openai_json_route_reaches_its_upstream_path_with_the_slug() {
    let recorder = Recorder::start(&[
        ("/v1/chat/completions", ok_json(CHAT)),
        ("/v1/responses", ok_json(RESPONSE)),
        ("/v1/embeddings", ok_json(EMBEDDINGS)),
        ("/v1/images/generations", ok_json(DALL_E)),
    ])
    .await;
    let cases = [
        (
            Endpoint::ChatCompletions,
            "/v1/chat/completions",
            r#"{"model":"odock-model","messages":[]}"#,
        ),
        (
            Endpoint::UnifiedChat,
            "/v1/chat/completions",
            r#"{"model":"odock-model","messages":[]}"#,
        ),
        (
            Endpoint::Responses,
            "/v1/responses",
            r#"{"model":"odock-model","input":"hi"}"#,
        ),
        (
            Endpoint::Embeddings,
            "/v1/embeddings",
            r#"{"model":"odock-model","input":["a","b"],"encoding_format":"float"}"#,
        ),
        (
            Endpoint::ImageGenerations,
            "/v1/images/generations",
            r#"{"model":"odock-model","prompt":"a cat","n":2}"#,
        ),
    ];
    for (endpoint, path, body) in cases {
        let response = call(json_request(endpoint, openai(&recorder), body))
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK, "{endpoint:?}");
        let seen = recorder.only();
        recorder.take();
        assert_eq!(seen.path, path, "{endpoint:?}");
        assert_eq!(seen.query, None);
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(seen.header("content-type"), Some("application/json"));
        let mut expected: Value = serde_json::from_str(body).unwrap();
        expected["model"] = json!(SLUG);
        assert_eq!(
            seen.json(),
            expected,
            "{endpoint:?}: only the model changes"
        );
    }
}

#[tokio::test]
async fn routes_the_openai_family_does_not_serve_are_refused_before_any_call() {
    let recorder = Recorder::start(&[]).await;
    for endpoint in [
        Endpoint::AnthropicMessages,
        Endpoint::GeminiGenerateContent,
        Endpoint::Vllm(odock_core::VllmRoute::ChatCompletions),
    ] {
        let error = call(json_request(
            endpoint,
            openai(&recorder),
            r#"{"model":"odock-model"}"#,
        ))
        .await
        .unwrap_err();
        assert_eq!(error, ProviderError::UnsupportedEndpoint);
    }
    assert!(recorder.take().is_empty());
}

#[tokio::test]
async fn unary_responses_report_their_usage_and_id() {
    let recorder = Recorder::start(&[("/v1/responses", ok_json(RESPONSE))]).await;
    let response = call(json_request(
        Endpoint::Responses,
        openai(&recorder),
        r#"{"model":"odock-model","input":"Say hello","include_usage":true}"#,
    ))
    .await
    .unwrap();
    assert_eq!(
        response.provider_request_id.as_deref(),
        Some("resp_68a1f0c2e4b48190a7d1c6f3b9e2d05c0b7e6a1f4c3d2e18")
    );
    let (bytes, usage) = full(response);
    assert_eq!(bytes, RESPONSE, "relayed unchanged");
    let usage = usage.unwrap();
    assert_eq!(
        usage.tokens,
        TokenUsage {
            input: 37,
            output: 11,
            cached_input: 5,
            reasoning: 2,
            ..TokenUsage::default()
        }
    );
    // Odock's own `include_usage` never reaches an upstream.
    assert_eq!(
        recorder.only().json(),
        json!({"model": SLUG, "input": "Say hello"})
    );
}

#[tokio::test]
async fn streamed_responses_are_relayed_event_by_event_and_billed_from_response_completed() {
    let recorder = Recorder::start(&[("/v1/responses", ok_sse(RESPONSE_STREAM))]).await;
    let body = r#"{"model":"odock-model","input":"Say hello","stream":true}"#;
    let response = call(json_request(Endpoint::Responses, openai(&recorder), body))
        .await
        .unwrap();

    let seen = recorder.only();
    assert_eq!(seen.header("accept"), Some("text/event-stream"));
    assert_eq!(
        std::str::from_utf8(&seen.body).unwrap(),
        r#"{"model":"upstream-slug","input":"Say hello","stream":true}"#,
        "the Responses API has no stream_options: none is added"
    );
    assert_eq!(response.headers["cache-control"], "no-cache");

    let chunks = chunks(response).await;
    assert_eq!(relayed(&chunks), RESPONSE_STREAM, "every event, unchanged");
    assert!(relayed(&chunks).contains("event: response.output_text.delta\n"));
    let usage: Vec<_> = chunks.iter().filter_map(|c| c.usage.clone()).collect();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (
            usage[0].tokens.input,
            usage[0].tokens.output,
            usage[0].tokens.cached_input,
            usage[0].tokens.reasoning
        ),
        (37, 11, 5, 2)
    );
    let text: u64 = chunks.iter().map(|c| c.output_text_bytes).sum();
    assert_eq!(text, "Bonjour! Héllo wörld 👋".len() as u64);
}

#[tokio::test]
async fn embeddings_bill_their_prompt_tokens_as_input() {
    let recorder = Recorder::start(&[("/v1/embeddings", ok_json(EMBEDDINGS))]).await;
    let response = call(json_request(
        Endpoint::Embeddings,
        openai(&recorder),
        r#"{"model":"odock-model","input":"The food was delicious"}"#,
    ))
    .await
    .unwrap();
    assert_eq!(
        response.provider_request_id.as_deref(),
        Some("req_upstream_7"),
        "embeddings have no id of their own"
    );
    let (bytes, usage) = full(response);
    assert_eq!(bytes, EMBEDDINGS);
    let usage = usage.unwrap();
    assert_eq!(
        usage.tokens,
        TokenUsage {
            input: 8,
            ..TokenUsage::default()
        }
    );
    assert_eq!(usage.raw["total_tokens"], 8);
}

#[tokio::test]
async fn image_answers_count_images_as_units_and_keep_reported_tokens() {
    let recorder = Recorder::start(&[
        ("/v1/images/generations", ok_json(DALL_E)),
        ("/v1/images/edits", ok_json(GPT_IMAGE)),
    ])
    .await;
    let (_, usage) = full(
        call(json_request(
            Endpoint::ImageGenerations,
            openai(&recorder),
            r#"{"model":"odock-model","prompt":"a cat","n":2}"#,
        ))
        .await
        .unwrap(),
    );
    let usage = usage.unwrap();
    assert_eq!(usage.tokens.units, 2);
    assert_eq!(usage.tokens.unit_kind.as_deref(), Some("images"));
    assert_eq!(usage.tokens.total(), 0, "dall-e reports no tokens");

    let (content_type, body) = multipart_edit();
    let response = call(multipart_request(
        Endpoint::ImageEdits,
        openai(&recorder),
        content_type,
        body,
    ))
    .await
    .unwrap();
    let (_, usage) = full(response);
    let usage = usage.unwrap();
    assert_eq!(
        usage.tokens,
        TokenUsage {
            input: 50,
            output: 4160,
            input_image: 40,
            output_image: 4160,
            units: 1,
            unit_kind: Some("images".into()),
            ..TokenUsage::default()
        }
    );
}

/// A PNG-ish file part: binary bytes, a CRLF and a fake boundary inside the data.
const IMAGE_BYTES: &[u8] = b"\x89PNG\r\n\x1a\n\x00\xff\xfe--not-the-boundary\r\n\x00binary";

fn multipart_edit() -> (&'static str, Bytes) {
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XyZ123\r\nContent-Disposition: form-data; name=\"image\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n",
    );
    body.extend_from_slice(IMAGE_BYTES);
    body.extend_from_slice(b"\r\n--XyZ123\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nodock-model\r\n--XyZ123\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nAdd a hat\r\n--XyZ123--\r\n");
    ("multipart/form-data; boundary=XyZ123", Bytes::from(body))
}

fn multipart_request(
    endpoint: Endpoint,
    model: Arc<ResolvedModel>,
    content_type: &'static str,
    body: Bytes,
) -> ProviderRequest {
    ProviderRequest {
        endpoint,
        model,
        body,
        content_type: Some(http::HeaderValue::from_static(content_type)),
        query: None,
        stream: false,
        client_wants_usage: false,
        request_id: RequestId::generate(),
        traceparent: None,
    }
}

#[tokio::test]
async fn multipart_uploads_get_only_their_model_field_swapped() {
    let recorder = Recorder::start(&[
        ("/v1/images/edits", ok_json(GPT_IMAGE)),
        ("/v1/images/variations", ok_json(DALL_E)),
    ])
    .await;
    for (endpoint, path) in [
        (Endpoint::ImageEdits, "/v1/images/edits"),
        (Endpoint::ImageVariations, "/v1/images/variations"),
    ] {
        let (content_type, body) = multipart_edit();
        let response = call(multipart_request(
            endpoint,
            openai(&recorder),
            content_type,
            body.clone(),
        ))
        .await
        .unwrap();
        assert_eq!(response.status, StatusCode::OK);

        let seen = recorder.only();
        recorder.take();
        assert_eq!(seen.path, path);
        assert_eq!(
            seen.header("content-type"),
            Some(content_type),
            "the client's boundary travels with its body"
        );
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        // Byte for byte: the file part untouched, the model value replaced, nothing else moved.
        let swapped = replace_once(
            &body,
            b"\r\n\r\nodock-model\r\n",
            b"\r\n\r\nupstream-slug\r\n",
        );
        assert_eq!(seen.body, swapped, "{endpoint:?}");
        assert!(seen
            .body
            .windows(IMAGE_BYTES.len())
            .any(|w| w == IMAGE_BYTES));
    }
}

fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    [&haystack[..at], with, &haystack[at + needle.len()..]].concat()
}

#[tokio::test]
async fn a_multipart_body_without_its_boundary_is_not_sent() {
    let recorder = Recorder::start(&[]).await;
    let (_, body) = multipart_edit();
    let error = call(multipart_request(
        Endpoint::ImageEdits,
        openai(&recorder),
        "application/json",
        body,
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidResponse(_)),
        "{error:?}"
    );
    assert!(recorder.take().is_empty());
}

#[tokio::test]
async fn streamed_images_are_relayed_and_billed_per_completed_image() {
    const IMAGE_STREAM: &str = "event: image_generation.partial_image\ndata: {\"type\":\"image_generation.partial_image\",\"b64_json\":\"AAAA\",\"partial_image_index\":0}\n\nevent: image_generation.completed\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"BBBB\",\"usage\":{\"input_tokens\":12,\"output_tokens\":272,\"total_tokens\":284,\"input_tokens_details\":{\"text_tokens\":12,\"image_tokens\":0}}}\n\n";
    let recorder = Recorder::start(&[("/v1/images/generations", ok_sse(IMAGE_STREAM))]).await;
    let body = r#"{"model":"odock-model","prompt":"a cat","stream":true,"partial_images":1}"#;
    let response = call(json_request(
        Endpoint::ImageGenerations,
        openai(&recorder),
        body,
    ))
    .await
    .unwrap();
    assert!(
        recorder.only().json().get("stream_options").is_none(),
        "images have no stream_options"
    );
    let chunks = chunks(response).await;
    assert_eq!(relayed(&chunks), IMAGE_STREAM);
    let usage = chunks.iter().rev().find_map(|c| c.usage.clone()).unwrap();
    assert_eq!(usage.tokens.units, 1);
    assert_eq!(usage.tokens.output_image, 272);
}

#[tokio::test]
async fn azure_addresses_the_deployment_with_its_api_version_and_api_key() {
    let recorder = Recorder::start(&[
        (
            "/openai/deployments/upstream-slug/chat/completions",
            ok_json(CHAT),
        ),
        (
            "/openai/deployments/upstream-slug/embeddings",
            ok_json(EMBEDDINGS),
        ),
        (
            "/openai/deployments/upstream-slug/images/generations",
            ok_json(DALL_E),
        ),
        ("/openai/v1/responses", ok_json(RESPONSE)),
    ])
    .await;

    let cases = [
        (
            Endpoint::ChatCompletions,
            json!({}),
            "/openai/deployments/upstream-slug/chat/completions",
            Some("api-version=2024-10-21"),
        ),
        (
            Endpoint::Embeddings,
            json!({"apiVersion": "2025-04-01-preview"}),
            "/openai/deployments/upstream-slug/embeddings",
            Some("api-version=2025-04-01-preview"),
        ),
        (
            Endpoint::ImageGenerations,
            json!({"apiVersion": "2024-10-21"}),
            "/openai/deployments/upstream-slug/images/generations",
            Some("api-version=2024-10-21"),
        ),
        (Endpoint::Responses, json!({}), "/openai/v1/responses", None),
        (
            Endpoint::Responses,
            json!({"responsesApiVersion": "preview"}),
            "/openai/v1/responses",
            Some("api-version=preview"),
        ),
    ];
    for (endpoint, config, path, query) in cases {
        let response = call(json_request(
            endpoint,
            azure(&recorder, config),
            r#"{"model":"odock-model","input":"x","prompt":"y"}"#,
        ))
        .await
        .unwrap();
        assert_eq!(response.status, StatusCode::OK, "{endpoint:?}");
        let (_, usage) = full(response);
        assert!(usage.is_some(), "{endpoint:?}: usage as on OpenAI");

        let seen = recorder.only();
        recorder.take();
        assert_eq!(seen.path, path, "{endpoint:?}");
        assert_eq!(seen.query.as_deref(), query, "{endpoint:?}");
        assert_eq!(seen.header("api-key"), Some(SECRET));
        assert_eq!(
            seen.header("authorization"),
            None,
            "Azure takes api-key only"
        );
        assert_eq!(
            seen.json()["model"],
            SLUG,
            "the deployment name, for the v1 surface"
        );
    }
}

#[tokio::test]
async fn azure_streams_ask_for_usage_like_openai() {
    let recorder = Recorder::start(&[(
        "/openai/deployments/upstream-slug/chat/completions",
        ok_sse(CHAT_STREAM),
    )])
    .await;
    let response = call(json_request(
        Endpoint::ChatCompletions,
        azure(&recorder, json!({})),
        r#"{"model":"odock-model","stream":true,"messages":[]}"#,
    ))
    .await
    .unwrap();
    let seen = recorder.only();
    assert_eq!(
        seen.json()["stream_options"],
        json!({"include_usage": true})
    );
    let chunks = chunks(response).await;
    assert!(
        !relayed(&chunks).contains("\"choices\":[]"),
        "usage chunk withheld"
    );
    let usage = chunks.iter().find_map(|c| c.usage.clone()).unwrap();
    assert_eq!((usage.tokens.input, usage.tokens.output), (19, 10));
}

#[tokio::test]
async fn azure_relays_upstream_errors_on_native_routes() {
    const ERROR: &str = r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#;
    let recorder = Recorder::start(&[(
        "/openai/deployments/upstream-slug/chat/completions",
        (StatusCode::NOT_FOUND, "application/json", ERROR),
    )])
    .await;
    let response = call(json_request(
        Endpoint::ChatCompletions,
        azure(&recorder, json!({})),
        r#"{"model":"odock-model","messages":[]}"#,
    ))
    .await
    .unwrap();
    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(full(response).0, ERROR);
}

#[tokio::test]
async fn unified_chat_forwards_openai_chat_without_odock_members() {
    let recorder = Recorder::start(&[("/v1/chat/completions", ok_json(CHAT))]).await;
    let body = r#"{"model":"odock-model","provider":"openai","messages":[{"role":"user","content":"What is this?","content_blocks":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"max_tokens":64}"#;
    let response = call(json_request(Endpoint::UnifiedChat, openai(&recorder), body))
        .await
        .unwrap();
    let (bytes, usage) = full(response);
    assert_eq!(bytes, CHAT, "the provider relays; the gateway normalises");
    assert_eq!(usage.unwrap().tokens.input, 1117);
    let sent = recorder.only().json();
    assert!(sent.get("provider").is_none());
    assert_eq!(sent["model"], SLUG);
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        ])
    );
}

#[tokio::test]
async fn unified_chat_turns_upstream_errors_into_provider_errors_with_their_message() {
    const LIMITED: &str = r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    const BROKEN: &str = r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#;
    for (status, body, message) in [
        (
            StatusCode::TOO_MANY_REQUESTS,
            LIMITED,
            "Rate limit reached for requests",
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            BROKEN,
            "The server had an error while processing your request.",
        ),
    ] {
        let recorder =
            Recorder::start(&[("/v1/chat/completions", (status, "application/json", body))]).await;
        for stream in [false, true] {
            let body = format!(r#"{{"model":"odock-model","stream":{stream},"messages":[]}}"#);
            let error = call(json_request(
                Endpoint::UnifiedChat,
                openai(&recorder),
                &body,
            ))
            .await
            .unwrap_err();
            assert_eq!(
                error,
                ProviderError::Upstream {
                    status: status.as_u16(),
                    message: message.to_owned(),
                    retry_after: None,
                },
                "stream: {stream}"
            );
        }
    }
}
