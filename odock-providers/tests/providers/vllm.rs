//! `VllmProvider` against a fake vLLM server: root vs `/v1` paths, auth, slug swap, multipart
//! audio, usage from every answer shape, relayed errors and `/v1/llm/chat`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode};
use odock_core::{
    Endpoint, ModelId, ModelPricing, ModelType, OrganisationId, Provider, ProviderBody,
    ProviderError, ProviderId, ProviderKeyId, ProviderRequest, ProviderResponse, ProviderType,
    ReportedUsage, RequestId, ResolvedModel, ResolvedProvider, ResolvedProviderKey, Secret,
    StreamChunk, TokenUsage, VllmRoute,
};
use odock_providers::{default_registry, VllmProvider};

use crate::fake_upstream::http_client;
use serde_json::{json, Value};

use crate::fake_upstream::{FakeUpstream, Received, Reply};

pub const SECRET: &str = "vllm-api-key-0123456789";
const SLUG: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// A model of `provider_type` named `odock-model` with upstream slug `slug` at `base_url`.
pub fn resolved_model(
    provider_type: ProviderType,
    base_url: &str,
    slug: &str,
) -> Arc<ResolvedModel> {
    Arc::new(ResolvedModel {
        id: ModelId::new("mdl_1"),
        organisation_id: OrganisationId::new("org_1"),
        name: "odock-model".into(),
        slug: slug.into(),
        model_type: ModelType::Chat,
        capabilities: Vec::new(),
        enabled: true,
        provider: ResolvedProvider {
            id: ProviderId::new("prv_1"),
            name: provider_type.family().into(),
            provider_type,
            base_url: base_url.into(),
            timeout: None,
            enabled: true,
            config: json!({}),
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

/// A JSON request for `endpoint`; `stream` and `client_wants_usage` as the gateway decoded them.
pub fn json_request(
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
        content_type: Some(HeaderValue::from_static("application/json")),
        query: None,
        stream,
        client_wants_usage,
        request_id: RequestId::generate(),
        traceparent: None,
    }
}

pub fn full_body(response: ProviderResponse) -> (Bytes, Option<ReportedUsage>) {
    match response.body {
        ProviderBody::Full { bytes, usage } => (bytes, usage),
        ProviderBody::Stream(_) => panic!("expected a full body"),
    }
}

pub async fn collect_stream(response: ProviderResponse) -> Vec<StreamChunk> {
    match response.body {
        ProviderBody::Stream(chunks) => chunks.map(|c| c.unwrap()).collect().await,
        ProviderBody::Full { .. } => panic!("expected a stream"),
    }
}

pub fn client_text(chunks: &[StreamChunk]) -> String {
    chunks
        .iter()
        .map(|c| std::str::from_utf8(&c.bytes).unwrap())
        .collect()
}

pub fn assert_bearer(received: &Received) {
    assert_eq!(
        received.header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
}

/// The fake server's root (its `base_url` without `/v1`), as a vLLM base URL.
fn root(upstream: &FakeUpstream) -> String {
    upstream.base_url.trim_end_matches("/v1").to_owned()
}

fn tokens(input: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input,
        output,
        ..TokenUsage::default()
    }
}

#[tokio::test]
async fn every_json_route_goes_to_its_path_with_the_slug_and_the_server_key() {
    let chat = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#;
    let embeddings = r#"{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":8,"total_tokens":8,"completion_tokens":0}}"#;
    let responses = r#"{"id":"resp_1","object":"response","usage":{"input_tokens":9,"output_tokens":4,"total_tokens":13}}"#;
    let tokenize = r#"{"count":3,"max_model_len":8192,"tokens":[1,2,3]}"#;
    let rerank = r#"{"id":"rerank-1","results":[{"index":0,"relevance_score":0.9}],"usage":{"total_tokens":21}}"#;
    let cases: &[(VllmRoute, &str, &'static str, Option<TokenUsage>)] = &[
        (
            VllmRoute::ChatCompletions,
            "/v1/chat/completions",
            chat,
            Some(tokens(12, 5)),
        ),
        (
            VllmRoute::Completions,
            "/v1/completions",
            chat,
            Some(tokens(12, 5)),
        ),
        (
            VllmRoute::Responses,
            "/v1/responses",
            responses,
            Some(tokens(9, 4)),
        ),
        (
            VllmRoute::Embeddings,
            "/v1/embeddings",
            embeddings,
            Some(tokens(8, 0)),
        ),
        (VllmRoute::Tokenize, "/tokenize", tokenize, None),
        (
            VllmRoute::Detokenize,
            "/detokenize",
            r#"{"prompt":"hi"}"#,
            None,
        ),
        (
            VllmRoute::Pooling,
            "/pooling",
            embeddings,
            Some(tokens(8, 0)),
        ),
        (
            VllmRoute::Classify,
            "/classify",
            embeddings,
            Some(tokens(8, 0)),
        ),
        (VllmRoute::Score, "/score", embeddings, Some(tokens(8, 0))),
        (VllmRoute::Rerank, "/rerank", rerank, Some(tokens(21, 0))),
    ];
    for &(route, path, answer, ref expected) in cases {
        let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, answer)).await;
        // Root with a trailing slash, and root + `/v1` (what OpenAI SDK users paste), both work.
        for base in [format!("{}/", root(&upstream)), upstream.base_url.clone()] {
            let model = resolved_model(ProviderType::Vllm, &base, SLUG);
            let body = r#"{"model":"odock-model","input":"x","x_vllm":{"keep":[1, 2.50]},"include_usage":true}"#;
            let response = VllmProvider::new(http_client())
                .call(json_request(
                    Endpoint::Vllm(route),
                    model,
                    body,
                    false,
                    false,
                ))
                .await
                .unwrap();
            assert_eq!(response.status, StatusCode::OK, "{route:?}");
            let (bytes, usage) = full_body(response);
            assert_eq!(bytes, answer.as_bytes(), "{route:?}: relayed unchanged");
            assert_eq!(
                usage.map(|u| u.tokens).as_ref(),
                expected.as_ref(),
                "{route:?}"
            );
        }
        let received = upstream.received();
        assert_eq!(received.len(), 2);
        for received in received {
            assert_eq!(received.path, path, "{route:?}");
            assert_bearer(&received);
            assert_eq!(
                received.body_str(),
                r#"{"model":"meta-llama/Llama-3.1-8B-Instruct","input":"x","x_vllm":{"keep":[1, 2.50]}}"#,
                "{route:?}: only the model changes, Odock's include_usage is dropped"
            );
        }
    }
}

const CHAT_STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":6,\"completion_tokens\":2,\"total_tokens\":8}}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test]
async fn streamed_chat_asks_for_usage_and_withholds_it_unless_the_client_asked() {
    for client_wants_usage in [false, true] {
        let upstream = FakeUpstream::start(Reply::Sse(CHAT_STREAM)).await;
        let model = resolved_model(ProviderType::Vllm, &root(&upstream), SLUG);
        let body =
            r#"{"model":"odock-model","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
        let response = VllmProvider::new(http_client())
            .call(json_request(
                Endpoint::Vllm(VllmRoute::ChatCompletions),
                model,
                body,
                true,
                client_wants_usage,
            ))
            .await
            .unwrap();
        let chunks = collect_stream(response).await;
        let sent: Value = serde_json::from_str(upstream.only_request().body_str()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(sent["model"], SLUG);

        let text = client_text(&chunks);
        assert_eq!(text.contains("\"usage\""), client_wants_usage, "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        let usage = chunks.iter().find_map(|c| c.usage.clone()).unwrap();
        assert_eq!(usage.tokens, tokens(6, 2));
        assert_eq!(chunks.iter().map(|c| c.output_text_bytes).sum::<u64>(), 5);
    }
}

#[tokio::test]
async fn streamed_completions_count_their_text_and_report_usage() {
    const STREAM: &str = concat!(
        "data: {\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\"Once upon\"}]}\n\n",
        "data: {\"id\":\"cmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
        "data: [DONE]\n\n",
    );
    let upstream = FakeUpstream::start(Reply::Sse(STREAM)).await;
    let model = resolved_model(ProviderType::Vllm, &root(&upstream), SLUG);
    let response = VllmProvider::new(http_client())
        .call(json_request(
            Endpoint::Vllm(VllmRoute::Completions),
            model,
            r#"{"model":"odock-model","prompt":"Tell","stream":true}"#,
            true,
            false,
        ))
        .await
        .unwrap();
    let chunks = collect_stream(response).await;
    let received = upstream.only_request();
    assert_eq!(received.path, "/v1/completions");
    assert!(received
        .body_str()
        .contains(r#""stream_options":{"include_usage":true}"#));
    assert_eq!(chunks.iter().map(|c| c.output_text_bytes).sum::<u64>(), 9);
    assert!(!client_text(&chunks).contains("usage"));
    assert_eq!(
        chunks.iter().find_map(|c| c.usage.clone()).unwrap().tokens,
        tokens(3, 2)
    );
}

#[tokio::test]
async fn streamed_responses_are_relayed_with_event_names_and_billed_from_the_completed_event() {
    const STREAM: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"usage\":null}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Bonjour\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"usage\":{\"input_tokens\":14,\"output_tokens\":3}}}\n\n",
    );
    let upstream = FakeUpstream::start(Reply::Sse(STREAM)).await;
    let model = resolved_model(ProviderType::Vllm, &root(&upstream), SLUG);
    let response = VllmProvider::new(http_client())
        .call(json_request(
            Endpoint::Vllm(VllmRoute::Responses),
            model,
            r#"{"model":"odock-model","input":"Say hi","stream":true}"#,
            true,
            false,
        ))
        .await
        .unwrap();
    let chunks = collect_stream(response).await;
    let received = upstream.only_request();
    assert_eq!(received.path, "/v1/responses");
    assert!(
        !received.body_str().contains("stream_options"),
        "the Responses API reports usage without being asked"
    );
    assert_eq!(client_text(&chunks), STREAM);
    assert_eq!(chunks.iter().map(|c| c.output_text_bytes).sum::<u64>(), 7);
    assert_eq!(
        chunks.iter().find_map(|c| c.usage.clone()).unwrap().tokens,
        tokens(14, 3)
    );
}

#[tokio::test]
async fn multipart_audio_swaps_the_model_field_and_keeps_the_boundary_and_the_file() {
    const BODY: &[u8] = b"--odockB0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\x01\xff\xfeWAVE\r\n--odockB0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nodock-model\r\n--odockB0undary\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nfr\r\n--odockB0undary--\r\n";
    const ANSWER: &str = r#"{"text":"bonjour","usage":{"type":"duration","seconds":2}}"#;
    for (route, path) in [
        (VllmRoute::AudioTranscriptions, "/v1/audio/transcriptions"),
        (VllmRoute::AudioTranslations, "/v1/audio/translations"),
    ] {
        let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, ANSWER)).await;
        let model = resolved_model(
            ProviderType::Vllm,
            &root(&upstream),
            "openai/whisper-large-v3",
        );
        let content_type = "multipart/form-data; boundary=odockB0undary";
        let request = ProviderRequest {
            content_type: Some(HeaderValue::from_static(content_type)),
            body: Bytes::from_static(BODY),
            ..json_request(Endpoint::Vllm(route), model, "", false, false)
        };
        let response = VllmProvider::new(http_client())
            .call(request)
            .await
            .unwrap();
        let (bytes, usage) = full_body(response);
        assert_eq!(bytes, ANSWER.as_bytes());
        assert_eq!(
            usage.unwrap().raw,
            json!({"type": "duration", "seconds": 2})
        );

        let received = upstream.only_request();
        assert_eq!(received.path, path);
        assert_bearer(&received);
        assert_eq!(received.header("content-type"), Some(content_type));
        let expected = String::from_utf8_lossy(BODY).replace(
            "\r\n\r\nodock-model\r\n",
            "\r\n\r\nopenai/whisper-large-v3\r\n",
        );
        assert_eq!(String::from_utf8_lossy(&received.body), expected);
        assert!(
            received
                .body
                .windows(10)
                .any(|w| w == b"RIFF\x00\x01\xff\xfeWA"),
            "the audio bytes pass untouched"
        );
    }
}

#[tokio::test]
async fn upstream_errors_are_relayed_on_native_routes_and_typed_on_the_unified_route() {
    const ERROR: &str = r#"{"object":"error","message":"This model's maximum context length is 8192 tokens","type":"BadRequestError","code":400}"#;
    let upstream = FakeUpstream::start(Reply::json(StatusCode::BAD_REQUEST, ERROR)).await;
    let model = resolved_model(ProviderType::Vllm, &root(&upstream), SLUG);
    let body = r#"{"model":"odock-model","messages":[]}"#;
    let response = VllmProvider::new(http_client())
        .call(json_request(
            Endpoint::Vllm(VllmRoute::ChatCompletions),
            model.clone(),
            body,
            false,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    let (bytes, usage) = full_body(response);
    assert_eq!(bytes, ERROR.as_bytes());
    assert!(usage.is_none());

    let error = VllmProvider::new(http_client())
        .call(json_request(
            Endpoint::UnifiedChat,
            model,
            body,
            false,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ProviderError::Upstream {
            status: 400,
            message: "This model's maximum context length is 8192 tokens".into(),
            retry_after: None,
        }
    );
}

#[tokio::test]
async fn the_unified_route_calls_chat_completions_without_odock_members() {
    const ANSWER: &str = r#"{"id":"chatcmpl-9","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1}}"#;
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, ANSWER)).await;
    let model = resolved_model(ProviderType::Vllm, &root(&upstream), SLUG);
    let registry = default_registry(http_client());
    let provider = registry.get(ProviderType::Vllm).unwrap();
    let response = provider
        .call(json_request(
            Endpoint::UnifiedChat,
            model,
            r#"{"model":"odock-model","provider":"vllm","messages":[{"role":"user","content":"Hi"}]}"#,
            false,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(response.provider_request_id.as_deref(), Some("chatcmpl-9"));
    assert_eq!(full_body(response).1.unwrap().tokens, tokens(4, 1));
    let received = upstream.only_request();
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(
        received.body_str(),
        r#"{"model":"meta-llama/Llama-3.1-8B-Instruct","messages":[{"role":"user","content":"Hi"}]}"#
    );
}

#[tokio::test]
async fn routes_of_other_families_are_refused_without_a_call() {
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, "{}")).await;
    let model = resolved_model(ProviderType::Vllm, &root(&upstream), SLUG);
    let error = VllmProvider::new(http_client())
        .call(json_request(
            Endpoint::ChatCompletions,
            model,
            "{}",
            false,
            false,
        ))
        .await
        .unwrap_err();
    assert_eq!(error, ProviderError::UnsupportedEndpoint);
    assert!(upstream.received().is_empty());
}
