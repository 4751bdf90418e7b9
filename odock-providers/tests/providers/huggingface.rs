//! `HuggingFaceProvider` against a fake router: chat under `/v1`, task URLs by slug suffix,
//! units counted per task, media relayed with its content type.

use http::StatusCode;
use odock_core::{Endpoint, HuggingFaceRoute, Provider, ProviderType, TokenUsage};
use odock_providers::HuggingFaceProvider;
use serde_json::Value;

use crate::fake_upstream::{http_client, FakeUpstream, Reply};
use crate::vllm::{
    assert_bearer, client_text, collect_stream, full_body, json_request, resolved_model,
};

fn provider() -> HuggingFaceProvider {
    HuggingFaceProvider::new(http_client())
}

fn root(upstream: &FakeUpstream) -> String {
    upstream.base_url.trim_end_matches("/v1").to_owned()
}

fn units(n: u64, kind: &str) -> TokenUsage {
    TokenUsage {
        units: n,
        unit_kind: Some(kind.into()),
        ..TokenUsage::default()
    }
}

#[tokio::test]
async fn chat_passes_the_slug_with_its_routing_suffix_and_asks_for_stream_usage() {
    const STREAM: &str = concat!(
        "data: {\"id\":\"hf1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hey\"}}]}\n\n",
        "data: {\"id\":\"hf1\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":1,\"total_tokens\":9}}\n\n",
        "data: [DONE]\n\n",
    );
    let upstream = FakeUpstream::start(Reply::Sse(STREAM)).await;
    let model = resolved_model(
        ProviderType::HuggingFace,
        &root(&upstream),
        "meta-llama/Llama-3.1-8B-Instruct:fastest",
    );
    let response = provider()
        .call(json_request(
            Endpoint::HuggingFace(HuggingFaceRoute::ChatCompletions),
            model,
            r#"{"model":"odock-model","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
            true,
            false,
        ))
        .await
        .unwrap();
    let chunks = collect_stream(response).await;
    let received = upstream.only_request();
    assert_eq!(received.path, "/v1/chat/completions");
    assert_bearer(&received);
    assert_eq!(
        received.body_str(),
        r#"{"model":"meta-llama/Llama-3.1-8B-Instruct:fastest","stream":true,"messages":[{"role":"user","content":"Hi"}],"stream_options":{"include_usage":true}}"#
    );
    assert!(!client_text(&chunks).contains("usage"));
    let usage = chunks.iter().find_map(|c| c.usage.clone()).unwrap();
    assert_eq!((usage.tokens.input, usage.tokens.output), (8, 1));
}

#[tokio::test]
async fn tasks_go_to_hf_inference_without_the_model_member_and_count_units() {
    const VECTORS: &str = "[[0.1,0.2],[0.3,0.4]]";
    let cases: &[(HuggingFaceRoute, &str, TokenUsage)] = &[
        (
            HuggingFaceRoute::FeatureExtraction,
            r#"{"model":"odock-model","inputs":["a","b"]}"#,
            units(2, "inputs"),
        ),
        (
            HuggingFaceRoute::TextToImage,
            r#"{"model":"odock-model","inputs":"a cat","parameters":{"num_images_per_prompt":2}}"#,
            units(2, "images"),
        ),
        (
            HuggingFaceRoute::TextToVideo,
            r#"{"model":"odock-model","inputs":"waves","parameters":{"num_outputs":3}}"#,
            units(3, "videos"),
        ),
        (
            HuggingFaceRoute::SpeechToText,
            r#"{"model":"odock-model","inputs":"UklGRg=="}"#,
            units(1, "transcriptions"),
        ),
    ];
    for (route, body, expected) in cases {
        let upstream = FakeUpstream::start(Reply::json(StatusCode::OK, VECTORS)).await;
        let model = resolved_model(ProviderType::HuggingFace, &root(&upstream), "BAAI/bge-m3");
        let response = provider()
            .call(json_request(
                Endpoint::HuggingFace(*route),
                model,
                body,
                false,
                false,
            ))
            .await
            .unwrap();
        let (bytes, usage) = full_body(response);
        assert_eq!(bytes, VECTORS.as_bytes());
        assert_eq!(&usage.unwrap().tokens, expected, "{route:?}");

        let received = upstream.only_request();
        assert_eq!(
            received.path, "/hf-inference/models/BAAI/bge-m3",
            "{route:?}"
        );
        assert_bearer(&received);
        let sent: Value = serde_json::from_str(received.body_str()).unwrap();
        assert!(sent.get("model").is_none(), "the URL names the model");
        assert!(sent.get("inputs").is_some());
    }
}

#[tokio::test]
async fn media_is_relayed_with_its_content_type_and_provider_suffixes_pick_the_path() {
    let upstream = FakeUpstream::start(Reply::Full {
        status: StatusCode::OK,
        content_type: "image/png",
        body: "PNG-bytes-as-sent",
    })
    .await;
    let model = resolved_model(
        ProviderType::HuggingFace,
        &root(&upstream),
        "black-forest-labs/FLUX.1-schnell:fal-ai",
    );
    let response = provider()
        .call(json_request(
            Endpoint::HuggingFace(HuggingFaceRoute::TextToImage),
            model,
            r#"{"model":"odock-model","inputs":"a lighthouse","n":2}"#,
            false,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(response.headers["content-type"], "image/png");
    let (bytes, usage) = full_body(response);
    assert_eq!(bytes, "PNG-bytes-as-sent".as_bytes());
    assert_eq!(usage.unwrap().tokens, units(2, "images"));
    let received = upstream.only_request();
    assert_eq!(
        received.path,
        "/fal-ai/models/black-forest-labs/FLUX.1-schnell"
    );
    assert_eq!(received.header("accept"), Some("*/*"));
}

#[tokio::test]
async fn a_failed_task_is_relayed_and_not_billed() {
    const ERROR: &str = r#"{"error":"Model black-forest-labs/FLUX.1-dev is currently loading","estimated_time":20.0}"#;
    let upstream = FakeUpstream::start(Reply::json(StatusCode::SERVICE_UNAVAILABLE, ERROR)).await;
    let model = resolved_model(
        ProviderType::HuggingFace,
        &root(&upstream),
        "black-forest-labs/FLUX.1-dev",
    );
    let response = provider()
        .call(json_request(
            Endpoint::HuggingFace(HuggingFaceRoute::TextToImage),
            model,
            r#"{"model":"odock-model","inputs":"x"}"#,
            false,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    let (bytes, usage) = full_body(response);
    assert_eq!(bytes, ERROR.as_bytes());
    assert!(usage.is_none());
}
