//! `OpenAiCompatProvider` against a fake OpenAI upstream.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::StatusCode;
use odock_core::{
    Endpoint, ModelId, ModelPricing, ModelType, OrganisationId, Provider, ProviderBody,
    ProviderError, ProviderId, ProviderKeyId, ProviderRequest, ProviderResponse, ProviderType,
    RequestId, ResolvedModel, ResolvedProvider, ResolvedProviderKey, Secret, StreamChunk,
    TokenUsage,
};
use odock_providers::{default_registry, OpenAiCompatProvider};

use crate::fake_upstream::http_client;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::fake_upstream::{FakeUpstream, Reply, UPSTREAM_REQUEST_ID};

const UNARY: &str = include_str!("../../src/openai_compat/fixtures/chat_completion.json");
const STREAM: &str = include_str!("../../src/openai_compat/fixtures/chat_completion_stream.sse");
const UNARY_ID: &str = "chatcmpl-BxQ3kTQ8v2gNqfXzK1aR7cYpLm9Ue";

/// The provider's upstream credential.
const SECRET: &str = "sk-upstream-secret-9f8e7d6c5b4a";
/// What a client would authenticate to Odock with; it must never reach the upstream.
const VIRTUAL_KEY: &str = "sk_virtualkey0123456789abcdefghijklmnopqrstuvw";
const MODEL_NAME: &str = "odock-fast";
const SLUG: &str = "gpt-4o-mini-2024-07-18";

/// Headers the provider itself sets (plus what the HTTP stack adds); anything else was forwarded.
const EXPECTED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "user-agent",
    "host",
    "content-length",
];

fn model(base_url: &str, timeout: Option<Duration>) -> Arc<ResolvedModel> {
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
            name: "openai-main".into(),
            provider_type: ProviderType::OpenAi,
            base_url: base_url.into(),
            timeout,
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

fn request(
    model: Arc<ResolvedModel>,
    body: &str,
    stream: bool,
    client_wants_usage: bool,
) -> ProviderRequest {
    ProviderRequest {
        endpoint: Endpoint::ChatCompletions,
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

fn provider() -> OpenAiCompatProvider {
    OpenAiCompatProvider::new(http_client())
}

fn full_body(response: ProviderResponse) -> (Bytes, Option<odock_core::ReportedUsage>) {
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

/// Only the provider's own headers reached the upstream, with the upstream credential.
fn assert_upstream_auth(received: &crate::fake_upstream::Received) {
    assert_eq!(
        received.header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
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

#[tokio::test]
async fn unary_requests_reach_the_upstream_rewritten_and_the_answer_is_relayed() {
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, UNARY)).await;
    // A trailing slash on the base URL is tolerated.
    let model = model(&format!("{}/", upstream.base_url), None);
    let body = r#"{"model":"odock-fast","messages":[{"role":"user","content":"Capital of Australia?"}],"x_vendor":{"keep": [1.0, "as-is"]},"include_usage":true}"#;

    let response = provider()
        .call(request(model, body, false, true))
        .await
        .unwrap();

    let received = upstream.only_request();
    assert_eq!(received.method, http::Method::POST);
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(
        received.body_str(),
        r#"{"model":"gpt-4o-mini-2024-07-18","messages":[{"role":"user","content":"Capital of Australia?"}],"x_vendor":{"keep": [1.0, "as-is"]}}"#
    );
    assert_upstream_auth(&received);
    assert_eq!(received.header("content-type"), Some("application/json"));
    assert_eq!(received.header("accept"), Some("application/json"));
    assert!(received.header("user-agent").unwrap().starts_with("odock/"));

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.headers.len(),
        1,
        "only content-type is relayed: {:?}",
        response.headers
    );
    assert_eq!(response.headers["content-type"], "application/json");
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
            input: 1117,
            output: 346,
            cached_input: 1024,
            reasoning: 192,
            ..TokenUsage::default()
        }
    );
    assert_eq!(
        usage.raw,
        serde_json::from_str::<Value>(UNARY).unwrap()["usage"]
    );
}

#[tokio::test]
async fn the_default_registry_serves_custom_upstreams_with_the_same_provider() {
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, UNARY)).await;
    let mut custom = (*model(&upstream.base_url, None)).clone();
    custom.provider.provider_type = ProviderType::Custom;
    custom.slug = MODEL_NAME.into();
    let registry = default_registry(http_client());
    let provider = registry.get(ProviderType::Custom).unwrap();

    let body = r#"{"model":"odock-fast","messages":[]}"#;
    let response = provider
        .call(request(Arc::new(custom), body, false, false))
        .await
        .unwrap();

    assert_eq!(response.status, StatusCode::OK);
    let received = upstream.only_request();
    assert_eq!(
        received.body_str(),
        body,
        "nothing to rewrite: forwarded as sent"
    );
    assert_upstream_auth(&received);
}

#[tokio::test]
async fn a_2xx_body_that_is_not_json_is_still_relayed() {
    let upstream = FakeUpstream::start(Reply::Full {
        status: StatusCode::OK,
        content_type: "text/plain",
        body: "ok, but not JSON",
    })
    .await;
    let response = provider()
        .call(request(
            model(&upstream.base_url, None),
            r#"{"model":"odock-fast"}"#,
            false,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(
        response.provider_request_id.as_deref(),
        Some(UPSTREAM_REQUEST_ID)
    );
    assert_eq!(response.headers["content-type"], "text/plain");
    let (bytes, usage) = full_body(response);
    assert_eq!(bytes, "ok, but not JSON");
    assert!(usage.is_none());
}

#[tokio::test]
async fn streams_ask_for_usage_and_withhold_it_from_a_client_that_did_not() {
    let upstream = FakeUpstream::start(Reply::Sse(STREAM)).await;
    let body =
        r#"{"model":"odock-fast","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

    let response = provider()
        .call(request(model(&upstream.base_url, None), body, true, false))
        .await
        .unwrap();

    let received = upstream.only_request();
    assert_eq!(
        received.body_str(),
        r#"{"model":"gpt-4o-mini-2024-07-18","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}"#
    );
    assert_eq!(received.header("accept"), Some("text/event-stream"));
    assert_upstream_auth(&received);

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.headers["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(response.headers["cache-control"], "no-cache");
    assert_eq!(response.headers.len(), 2);
    assert_eq!(
        response.provider_request_id.as_deref(),
        Some(UPSTREAM_REQUEST_ID)
    );

    let chunks = collect_stream(response).await;
    let expected: String = STREAM
        .split_inclusive("\n\n")
        .filter(|event| !event.contains("\"choices\":[]"))
        .collect();
    assert_ne!(expected, STREAM);
    assert_eq!(client_bytes(&chunks), expected);
    assert!(client_bytes(&chunks).ends_with("data: [DONE]\n\n"));

    let usage: Vec<_> = chunks
        .iter()
        .filter_map(|c| c.as_ref().unwrap().usage.clone())
        .collect();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].tokens.input, usage[0].tokens.output), (19, 10));
    let text: u64 = chunks
        .iter()
        .map(|c| c.as_ref().unwrap().output_text_bytes)
        .sum();
    assert_eq!(text, "Hello! Héllo wörld 👋".len() as u64);
}

#[tokio::test]
async fn a_client_that_asked_for_usage_gets_the_upstream_stream_unchanged() {
    let upstream = FakeUpstream::start(Reply::Sse(STREAM)).await;
    // The Odock-only top-level `include_usage` is how this client asked.
    let body = r#"{"model":"odock-fast","stream":true,"include_usage":true,"stream_options":{"continuous_usage_stats":false},"messages":[]}"#;

    let response = provider()
        .call(request(model(&upstream.base_url, None), body, true, true))
        .await
        .unwrap();

    assert_eq!(
        upstream.only_request().body_str(),
        r#"{"model":"gpt-4o-mini-2024-07-18","stream":true,"stream_options":{"continuous_usage_stats":false,"include_usage":true},"messages":[]}"#
    );
    let chunks = collect_stream(response).await;
    assert_eq!(client_bytes(&chunks), STREAM);
    assert_eq!(
        chunks
            .iter()
            .filter(|c| c.as_ref().unwrap().usage.is_some())
            .count(),
        1
    );
}

#[tokio::test]
async fn upstream_errors_are_relayed_with_their_status_and_body() {
    const ERROR: &str = r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#;
    for stream in [false, true] {
        let upstream =
            FakeUpstream::start(Reply::json(StatusCode::INTERNAL_SERVER_ERROR, ERROR)).await;
        let body = format!(r#"{{"model":"odock-fast","stream":{stream}}}"#);

        let response = provider()
            .call(request(
                model(&upstream.base_url, None),
                &body,
                stream,
                false,
            ))
            .await
            .unwrap();

        assert_eq!(
            response.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "stream: {stream}"
        );
        assert_eq!(response.headers.len(), 1);
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

#[tokio::test]
async fn a_refused_connection_is_unreachable_and_never_names_the_secret() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);

    let model = model(&format!("http://127.0.0.1:{port}/v1"), None);
    let error = provider()
        .call(request(model, r#"{"model":"odock-fast"}"#, false, false))
        .await
        .unwrap_err();

    let ProviderError::Unreachable(message) = &error else {
        panic!("expected Unreachable, got {error:?}");
    };
    assert!(!message.is_empty());
    assert!(!format!("{error} {error:?}").contains(SECRET));
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out() {
    let upstream = FakeUpstream::start(Reply::Hang).await;
    let timeout = Duration::from_millis(200);

    let error = provider()
        .call(request(
            model(&upstream.base_url, Some(timeout)),
            r#"{"model":"odock-fast"}"#,
            false,
            false,
        ))
        .await
        .unwrap_err();

    assert_eq!(error, ProviderError::Timeout(timeout));
    assert_eq!(
        upstream.received().len(),
        1,
        "the request did reach the upstream"
    );
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_one_timeout() {
    const FIRST: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let upstream = FakeUpstream::start(Reply::SseThenHang(FIRST)).await;
    let timeout = Duration::from_millis(200);
    let body = r#"{"model":"odock-fast","stream":true}"#;

    let response = provider()
        .call(request(
            model(&upstream.base_url, Some(timeout)),
            body,
            true,
            false,
        ))
        .await
        .unwrap();
    let chunks = collect_stream(response).await;

    assert_eq!(chunks.len(), 2, "{chunks:?}");
    let first = chunks[0].as_ref().unwrap();
    assert_eq!(first.bytes, FIRST);
    assert_eq!(first.output_text_bytes, 2);
    assert_eq!(
        chunks[1].as_ref().unwrap_err(),
        &ProviderError::Timeout(timeout)
    );
}

#[tokio::test]
async fn a_connection_lost_mid_stream_yields_one_error_and_ends() {
    const FIRST: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let abort = Arc::new(Notify::new());
    let upstream = FakeUpstream::start(Reply::SseThenAbort {
        prefix: FIRST,
        abort: abort.clone(),
    })
    .await;
    let body = r#"{"model":"odock-fast","stream":true}"#;

    let response = provider()
        .call(request(model(&upstream.base_url, None), body, true, false))
        .await
        .unwrap();
    let ProviderBody::Stream(mut chunks) = response.body else {
        panic!("expected a stream");
    };

    assert_eq!(chunks.next().await.unwrap().unwrap().bytes, FIRST);
    abort.notify_one();
    let error = chunks.next().await.unwrap().unwrap_err();
    assert!(matches!(error, ProviderError::Unreachable(_)), "{error:?}");
    assert!(!format!("{error}").contains(SECRET));
    assert!(chunks.next().await.is_none());
}
