//! The Hugging Face family end to end: chat and every task route through the real server to a
//! fake router, media relayed byte for byte, units counted per task and billed per unit, family
//! pinning.

use serde_json::{json, Value};

use crate::support::fake_huggingface::{
    FakeHuggingFace, COMPLETION_TOKENS, MP4, PNG, PROMPT_TOKENS,
};
use crate::support::{TestServer, UPSTREAM_SECRET};
use crate::vllm::{assert_provider_not_allowed, FamilyWorld};

const CHAT_SLUG: &str = "meta-llama/Llama-3.1-8B-Instruct:fastest";
/// 9 prompt tokens × $1/1M + 3 completion tokens × $2/1M.
const CHAT_COST: i64 = 9_000 + 6_000;

fn per_unit(unit_rate: i64, unit_kind: &str) -> Value {
    json!({"unitRate": unit_rate, "unitKind": unit_kind})
}

async fn world(server: &TestServer, upstream: &FakeHuggingFace) -> FamilyWorld {
    FamilyWorld::create(
        server,
        "HUGGINGFACE",
        &upstream.base_url(),
        &[
            (
                "hf-llama",
                CHAT_SLUG,
                "chat",
                json!({"input": {"text": 1_000_000_000i64}, "output": {"text": 2_000_000_000i64}}),
            ),
            // $0.001 per input.
            (
                "bge",
                "BAAI/bge-m3",
                "embeddings",
                per_unit(1_000_000_000, "inputs"),
            ),
            // $0.03 per image.
            (
                "flux",
                "black-forest-labs/FLUX.1-schnell",
                "image",
                per_unit(30_000_000_000, "images"),
            ),
            (
                "flux-fal",
                "black-forest-labs/FLUX.1-dev:fal-ai",
                "image",
                per_unit(30_000_000_000, "images"),
            ),
            // $0.50 per video.
            (
                "hunyuan",
                "tencent/HunyuanVideo",
                "image",
                per_unit(500_000_000_000, "videos"),
            ),
            // $0.006 per transcription.
            (
                "whisper",
                "openai/whisper-large-v3",
                "transcription",
                per_unit(6_000_000_000, "transcriptions"),
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn chat_keeps_the_routing_suffix_and_is_billed_per_token() {
    let upstream = FakeHuggingFace::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    let body = json!({"model": "hf-llama", "messages": [{"role": "user", "content": "Hi"}]});
    let response = world
        .post(&server, "/v1/huggingface/chat/completions", "hf-chat", body)
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "Hi!");
    let received = upstream.last();
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(
        received.header_str("authorization"),
        format!("Bearer {UPSTREAM_SECRET}")
    );
    assert_eq!(received.json()["model"], CHAT_SLUG);
    let record = world
        .assert_record(
            &server,
            "hf-chat",
            (PROMPT_TOKENS, COMPLETION_TOKENS, CHAT_COST),
        )
        .await;
    assert_eq!(record["provider"], "huggingface");
    assert_eq!(record["providerRequestId"], "hf-chat");

    let body = json!({"model": "hf-llama", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let text = world
        .post(
            &server,
            "/v1/huggingface/chat/completions",
            "hf-chat-stream",
            body,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("\"Hi!\"") && !text.contains("\"usage\""),
        "{text}"
    );
    assert_eq!(
        upstream.last().json()["stream_options"]["include_usage"],
        true
    );
    let record = world
        .assert_record(
            &server,
            "hf-chat-stream",
            (PROMPT_TOKENS, COMPLETION_TOKENS, CHAT_COST),
        )
        .await;
    assert_eq!(record["stream"], true);
}

#[tokio::test]
async fn tasks_are_relayed_unchanged_and_billed_per_counted_unit() {
    let upstream = FakeHuggingFace::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    // (route, body, upstream path, answer content type, units, unit kind, cost)
    let cases: Vec<(&str, Value, &str, &str, u64, &str, i64)> = vec![
        (
            "feature-extraction",
            json!({"model": "bge", "inputs": ["a", "b", "c"], "parameters": {"normalize": true}}),
            "/hf-inference/models/BAAI/bge-m3",
            "application/json",
            3,
            "inputs",
            3_000_000,
        ),
        // 2 images at $0.03 = 60,000,000 nanos.
        (
            "text-to-image",
            json!({"model": "flux", "inputs": "a lighthouse at dusk", "parameters": {"num_images_per_prompt": 2}}),
            "/hf-inference/models/black-forest-labs/FLUX.1-schnell",
            "image/png",
            2,
            "images",
            60_000_000,
        ),
        (
            "text-to-video",
            json!({"model": "hunyuan", "inputs": "waves on a beach"}),
            "/hf-inference/models/tencent/HunyuanVideo",
            "video/mp4",
            1,
            "videos",
            500_000_000,
        ),
        (
            "speech-to-text",
            json!({"model": "whisper", "inputs": "UklGRiQAAABXQVZF"}),
            "/hf-inference/models/openai/whisper-large-v3",
            "application/json",
            1,
            "transcriptions",
            6_000_000,
        ),
        // A `model:provider` slug goes to that provider's path.
        (
            "text-to-image",
            json!({"model": "flux-fal", "inputs": "a red fox", "n": 1}),
            "/fal-ai/models/black-forest-labs/FLUX.1-dev",
            "image/png",
            1,
            "images",
            30_000_000,
        ),
    ];
    for (i, (route, body, path, content_type, units, unit_kind, cost)) in
        cases.into_iter().enumerate()
    {
        let request_id = format!("hf-task-{i}");
        let response = world
            .post(
                &server,
                &format!("/v1/huggingface/{route}"),
                &request_id,
                body.clone(),
            )
            .await;
        assert_eq!(response.status(), 200, "{route}");
        assert_eq!(response.headers()["content-type"], content_type, "{route}");
        let bytes = response.bytes().await.unwrap();
        match content_type {
            "image/png" => assert_eq!(&bytes[..], PNG, "{route}: the image arrives byte for byte"),
            "video/mp4" => assert_eq!(&bytes[..], MP4, "{route}: the video arrives byte for byte"),
            _ => assert!(serde_json::from_slice::<Value>(&bytes).is_ok(), "{route}"),
        }

        let received = upstream.last();
        assert_eq!(received.path, path, "{route}");
        assert_eq!(
            received.header_str("authorization"),
            format!("Bearer {UPSTREAM_SECRET}")
        );
        let mut expected = body;
        expected.as_object_mut().unwrap().remove("model");
        assert_eq!(
            received.json(),
            expected,
            "{route}: the URL names the model"
        );

        let record = world
            .assert_record(&server, &request_id, (0, 0, cost))
            .await;
        assert_eq!(record["tokens"]["units"], units, "{route}");
        assert_eq!(record["tokens"]["unitKind"], unit_kind, "{route}");
        assert_eq!(record["endpoint"], format!("/v1/huggingface/{route}"));
        assert_eq!(record["billing"]["unitsCostNanosUsd"], cost);
        assert_eq!(
            record["providerUsage"],
            Value::Null,
            "Hugging Face reported nothing"
        );
    }
}

#[tokio::test]
async fn the_family_routes_refuse_other_families_and_list_only_hugging_face_models() {
    let upstream = FakeHuggingFace::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    assert_eq!(
        world.model_names(&server, "/v1/huggingface/models").await,
        ["bge", "flux", "flux-fal", "hf-llama", "hunyuan", "whisper"]
    );
    for route in [
        "chat/completions",
        "feature-extraction",
        "text-to-image",
        "text-to-video",
        "speech-to-text",
    ] {
        let request_id = format!("hf-deny-{}", route.replace('/', "-"));
        let response = world
            .post(
                &server,
                &format!("/v1/huggingface/{route}"),
                &request_id,
                json!({"model": "other-family", "inputs": "x"}),
            )
            .await;
        assert_provider_not_allowed(response).await;
        let record = server.usage_record(&world.org, &request_id).await;
        assert_eq!(record["errorCode"], "provider_not_allowed");
    }
    let response = world
        .post(
            &server,
            "/v1/mistral/embeddings",
            "hf-on-mistral",
            json!({"model": "bge", "input": "x"}),
        )
        .await;
    assert_provider_not_allowed(response).await;
    assert!(upstream.0.received().is_empty());
}
