//! `MistralProvider` against a fake Mistral API: paths under the versioned base URL, no
//! `stream_options` ever, usage from the last stream chunk, OCR pages as units.

use http::StatusCode;
use odock_core::{Endpoint, MistralRoute, Provider, ProviderError, ProviderType, TokenUsage};
use odock_providers::MistralProvider;
use serde_json::{json, Value};

use crate::fake_upstream::{http_client, FakeUpstream, Reply};
use crate::vllm::{
    assert_bearer, client_text, collect_stream, full_body, json_request, resolved_model,
};

const SLUG: &str = "mistral-large-2411";

/// Mistral's stream: usage arrives unasked on the last chunk, next to `finish_reason`.
const STREAM: &str = concat!(
    "data: {\"id\":\"m1\",\"object\":\"chat.completion.chunk\",\"model\":\"mistral-large-2411\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Bon\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"m1\",\"object\":\"chat.completion.chunk\",\"model\":\"mistral-large-2411\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"jour\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,\"total_tokens\":13,\"completion_tokens\":3}}\n\n",
    "data: [DONE]\n\n",
);

fn provider() -> MistralProvider {
    MistralProvider::new(http_client())
}

#[tokio::test]
async fn streams_never_send_stream_options_and_relay_the_usage_chunk_unchanged() {
    for client_wants_usage in [false, true] {
        let upstream = FakeUpstream::start(Reply::Sse(STREAM)).await;
        let model = resolved_model(ProviderType::Mistral, &upstream.base_url, SLUG);
        // Whatever the client sets, Mistral sees neither `stream_options` nor `include_usage`.
        let body = if client_wants_usage {
            r#"{"model":"odock-model","stream":true,"stream_options":{"include_usage":true},"include_usage":true,"messages":[{"role":"user","content":"Salut"}]}"#
        } else {
            r#"{"model":"odock-model","stream":true,"messages":[{"role":"user","content":"Salut"}]}"#
        };
        let response = provider()
            .call(json_request(
                Endpoint::Mistral(MistralRoute::ChatCompletions),
                model,
                body,
                true,
                client_wants_usage,
            ))
            .await
            .unwrap();
        let chunks = collect_stream(response).await;

        let received = upstream.only_request();
        assert_eq!(received.path, "/v1/chat/completions");
        assert_bearer(&received);
        assert_eq!(
            received.body_str(),
            r#"{"model":"mistral-large-2411","stream":true,"messages":[{"role":"user","content":"Salut"}]}"#
        );
        assert_eq!(
            client_text(&chunks),
            STREAM,
            "relayed exactly as Mistral sent it"
        );
        let usage = chunks.iter().find_map(|c| c.usage.clone()).unwrap();
        assert_eq!((usage.tokens.input, usage.tokens.output), (10, 3));
        assert_eq!(usage.raw["total_tokens"], 13);
    }
}

#[tokio::test]
async fn native_routes_go_below_the_versioned_base_url() {
    let chat = r#"{"id":"cmpl-7","object":"chat.completion","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
    let embeddings = r#"{"id":"emb-1","object":"list","data":[],"usage":{"prompt_tokens":6,"total_tokens":6,"completion_tokens":0}}"#;
    let moderation = r#"{"id":"mod-1","model":"mistral-moderation-latest","results":[{"categories":{"sexual":false}}]}"#;
    /// Route, upstream path, request body, answer, and the (input, output) tokens it reports.
    struct Case(
        MistralRoute,
        &'static str,
        &'static str,
        &'static str,
        Option<(u64, u64)>,
    );
    let cases = [
        Case(
            MistralRoute::ChatCompletions,
            "/v1/chat/completions",
            r#"{"model":"odock-model","messages":[]}"#,
            chat,
            Some((5, 7)),
        ),
        Case(
            MistralRoute::FimCompletions,
            "/v1/fim/completions",
            r#"{"model":"odock-model","prompt":"def f(","suffix":"return 1"}"#,
            chat,
            Some((5, 7)),
        ),
        Case(
            MistralRoute::Embeddings,
            "/v1/embeddings",
            r#"{"model":"odock-model","input":["a","b"]}"#,
            embeddings,
            Some((6, 0)),
        ),
        Case(
            MistralRoute::Moderations,
            "/v1/moderations",
            r#"{"model":"odock-model","input":"hello"}"#,
            moderation,
            None,
        ),
    ];
    for Case(route, path, body, answer, expected) in cases {
        let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, answer)).await;
        let model = resolved_model(
            ProviderType::Mistral,
            &format!("{}/", upstream.base_url),
            SLUG,
        );
        let response = provider()
            .call(json_request(
                Endpoint::Mistral(route),
                model,
                body,
                false,
                false,
            ))
            .await
            .unwrap();
        let (bytes, usage) = full_body(response);
        assert_eq!(bytes, answer.as_bytes());
        assert_eq!(
            usage.map(|u| (u.tokens.input, u.tokens.output)),
            expected,
            "{route:?}"
        );
        let received = upstream.only_request();
        assert_eq!(received.path, path);
        assert_bearer(&received);
        let sent: Value = serde_json::from_str(received.body_str()).unwrap();
        assert_eq!(sent["model"], SLUG);
        let original: Value = serde_json::from_str(body).unwrap();
        for (name, value) in original.as_object().unwrap() {
            if name != "model" {
                assert_eq!(&sent[name], value, "{route:?}: {name} forwarded");
            }
        }
    }
}

#[tokio::test]
async fn ocr_is_billed_per_processed_page() {
    const ANSWER: &str = r#"{"pages":[{"index":0,"markdown":"one"},{"index":1,"markdown":"two"},{"index":2,"markdown":"three"}],"model":"mistral-ocr-2505","usage_info":{"pages_processed":3,"doc_size_bytes":48213},"document_annotation":null}"#;
    let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, ANSWER)).await;
    let model = resolved_model(
        ProviderType::Mistral,
        &upstream.base_url,
        "mistral-ocr-latest",
    );
    let body = r#"{"model":"odock-model","document":{"type":"document_url","document_url":"https://example.com/a.pdf"}}"#;
    let response = provider()
        .call(json_request(
            Endpoint::Mistral(MistralRoute::Ocr),
            model,
            body,
            false,
            false,
        ))
        .await
        .unwrap();
    let (bytes, usage) = full_body(response);
    assert_eq!(bytes, ANSWER.as_bytes());
    let usage = usage.unwrap();
    assert_eq!(
        usage.tokens,
        TokenUsage {
            units: 3,
            unit_kind: Some("pages".into()),
            ..TokenUsage::default()
        }
    );
    assert_eq!(
        usage.raw,
        json!({"pages_processed": 3, "doc_size_bytes": 48213})
    );
    let received = upstream.only_request();
    assert_eq!(received.path, "/v1/ocr");
    assert_eq!(
        received.body_str(),
        r#"{"model":"mistral-ocr-latest","document":{"type":"document_url","document_url":"https://example.com/a.pdf"}}"#
    );
}

#[tokio::test]
async fn the_unified_route_uses_chat_completions_and_types_upstream_errors() {
    const ERROR: &str = r#"{"object":"error","message":"Invalid model: odock","type":"invalid_model","param":null,"code":"1500"}"#;
    let upstream = FakeUpstream::start(Reply::json(StatusCode::BAD_REQUEST, ERROR)).await;
    let model = resolved_model(ProviderType::Mistral, &upstream.base_url, SLUG);
    let error = provider()
        .call(json_request(
            Endpoint::UnifiedChat,
            model,
            r#"{"model":"odock-model","provider":"mistral","stream":true,"include_usage":true,"messages":[]}"#,
            true,
            true,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ProviderError::Upstream {
            status: 400,
            message: "Invalid model: odock".into(),
            retry_after: None,
        }
    );
    let received = upstream.only_request();
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(
        received.body_str(),
        r#"{"model":"mistral-large-2411","stream":true,"messages":[]}"#
    );
}
