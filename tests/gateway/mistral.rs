//! The Mistral family end to end: every `/v1/mistral/*` route through the real server to a strict
//! fake Mistral (which refuses `stream_options`), usage from the last stream chunk, OCR billed per
//! page, family pinning.

use serde_json::{json, Value};

use crate::support::fake_mistral::{FakeMistral, COMPLETION_TOKENS, OCR_PAGES, PROMPT_TOKENS};
use crate::support::{TestServer, UPSTREAM_SECRET};
use crate::vllm::{assert_provider_not_allowed, FamilyWorld};

/// $1/1M input, $3/1M output.
fn chat_pricing() -> Value {
    json!({"input": {"text": 1_000_000_000i64}, "output": {"text": 3_000_000_000i64}})
}

/// 10 prompt tokens × $1/1M + 4 completion tokens × $3/1M.
const CHAT_COST: i64 = 10_000 + 12_000;

async fn world(server: &TestServer, upstream: &FakeMistral) -> FamilyWorld {
    FamilyWorld::create(
        server,
        "MISTRAL",
        &upstream.base_url(),
        &[
            (
                "mistral-large",
                "mistral-large-2411",
                "chat",
                chat_pricing(),
            ),
            ("codestral", "codestral-2501", "chat", chat_pricing()),
            (
                "mistral-embed",
                "mistral-embed",
                "embeddings",
                json!({"embeddings": 100_000_000i64}),
            ),
            (
                "mistral-moderation",
                "mistral-moderation-latest",
                "moderation",
                chat_pricing(),
            ),
            // $1 per 1,000 pages.
            (
                "mistral-ocr",
                "mistral-ocr-latest",
                "ocr",
                json!({"unitRate": 1_000_000_000i64, "unitKind": "pages"}),
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn streamed_chat_never_sends_stream_options_and_bills_the_usage_of_the_last_chunk() {
    let upstream = FakeMistral::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    let cases = [
        (
            "mistral-stream",
            json!({"model": "mistral-large", "stream": true, "messages": [{"role": "user", "content": "Salut"}]}),
        ),
        // What the client asks for is not forwarded either: Mistral would refuse it (422).
        (
            "mistral-stream-asked",
            json!({"model": "mistral-large", "stream": true, "stream_options": {"include_usage": true},
            "include_usage": true, "messages": [{"role": "user", "content": "Salut"}]}),
        ),
    ];
    for (request_id, body) in cases {
        let response = world
            .post(&server, "/v1/mistral/chat/completions", request_id, body)
            .await;
        assert_eq!(response.status(), 200, "{request_id}");
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let text = response.text().await.unwrap();
        assert!(
            text.contains("\"Bon\"") && text.contains("\"jour\""),
            "{text}"
        );
        // Mistral's last chunk is relayed as sent, usage included.
        assert!(text.contains("\"usage\":{"), "{text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

        let received = upstream.last();
        assert_eq!(received.path, "/v1/chat/completions");
        assert_eq!(
            received.header_str("authorization"),
            format!("Bearer {UPSTREAM_SECRET}")
        );
        let sent = received.json();
        assert_eq!(sent["model"], "mistral-large-2411");
        assert!(sent.get("stream_options").is_none() && sent.get("include_usage").is_none());

        let record = world
            .assert_record(
                &server,
                request_id,
                (PROMPT_TOKENS, COMPLETION_TOKENS, CHAT_COST),
            )
            .await;
        assert_eq!(record["stream"], true);
        assert_eq!(record["provider"], "mistral");
        assert_eq!(record["metadata"]["usageEstimated"], false);
    }
}

#[tokio::test]
async fn fim_embeddings_and_moderations_are_forwarded_and_billed() {
    let upstream = FakeMistral::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    // (route, body, upstream slug, input, output, cost)
    let cases: Vec<(&str, Value, &str, u64, u64, i64)> = vec![
        (
            "chat/completions",
            json!({"model": "mistral-large", "messages": [{"role": "user", "content": "2+2?"}], "safe_prompt": true}),
            "mistral-large-2411",
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
            CHAT_COST,
        ),
        (
            "fim/completions",
            json!({"model": "codestral", "prompt": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))"}),
            "codestral-2501",
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
            CHAT_COST,
        ),
        (
            "fim/completions",
            json!({"model": "codestral", "prompt": "def f(", "suffix": "", "stream": true}),
            "codestral-2501",
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
            CHAT_COST,
        ),
        // 5 tokens at $0.10/1M embeddings.
        (
            "embeddings",
            json!({"model": "mistral-embed", "input": ["Bonjour", "Salut"]}),
            "mistral-embed",
            5,
            0,
            500,
        ),
        (
            "moderations",
            json!({"model": "mistral-moderation", "input": "I love you"}),
            "mistral-moderation-latest",
            3,
            0,
            3_000,
        ),
    ];
    for (i, (route, body, slug, input, output, cost)) in cases.into_iter().enumerate() {
        let request_id = format!("mistral-{i}");
        let streamed = body["stream"] == true;
        let response = world
            .post(
                &server,
                &format!("/v1/mistral/{route}"),
                &request_id,
                body.clone(),
            )
            .await;
        assert_eq!(response.status(), 200, "{route}");
        let text = response.text().await.unwrap();
        if streamed {
            assert!(
                text.contains("\"jour\"") && text.contains("\"usage\""),
                "{text}"
            );
        } else {
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert!(
                answer["id"].as_str().unwrap().starts_with("mistral-"),
                "{answer}"
            );
        }
        let received = upstream.last();
        assert_eq!(received.path, format!("/v1/{route}"));
        let mut expected = body;
        expected["model"] = json!(slug);
        assert_eq!(received.json(), expected, "{route}: only the model changes");

        let record = world
            .assert_record(&server, &request_id, (input, output, cost))
            .await;
        assert_eq!(record["endpoint"], format!("/v1/mistral/{route}"));
        assert_eq!(record["stream"], streamed);
    }
}

#[tokio::test]
async fn ocr_is_billed_per_page() {
    let upstream = FakeMistral::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    let body = json!({"model": "mistral-ocr",
        "document": {"type": "document_url", "document_url": "https://arxiv.org/pdf/2201.04234"},
        "include_image_base64": false});
    let response = world
        .post(&server, "/v1/mistral/ocr", "mistral-ocr-1", body)
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["pages"].as_array().unwrap().len() as u64, OCR_PAGES);
    assert_eq!(answer["usage_info"]["pages_processed"], OCR_PAGES);
    let received = upstream.last();
    assert_eq!(received.path, "/v1/ocr");
    assert_eq!(received.json()["model"], "mistral-ocr-latest");
    assert_eq!(received.json()["document"]["type"], "document_url");

    // 3 pages at $1 per 1,000 pages = 3,000,000 nanos.
    let record = world
        .assert_record(&server, "mistral-ocr-1", (0, 0, 3_000_000))
        .await;
    assert_eq!(record["tokens"]["units"], 3);
    assert_eq!(record["tokens"]["unitKind"], "pages");
    assert_eq!(
        record["providerUsage"],
        json!({"pages_processed": 3, "doc_size_bytes": 48213})
    );
    assert_eq!(record["billing"]["unitsCostNanosUsd"], 3_000_000);
}

#[tokio::test]
async fn the_family_routes_refuse_other_families_and_list_only_mistral_models() {
    let upstream = FakeMistral::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    assert_eq!(
        world.model_names(&server, "/v1/mistral/models").await,
        [
            "codestral",
            "mistral-embed",
            "mistral-large",
            "mistral-moderation",
            "mistral-ocr"
        ]
    );
    for route in [
        "chat/completions",
        "fim/completions",
        "embeddings",
        "moderations",
        "ocr",
    ] {
        let request_id = format!("mistral-deny-{}", route.replace('/', "-"));
        let response = world
            .post(
                &server,
                &format!("/v1/mistral/{route}"),
                &request_id,
                json!({"model": "other-family", "input": "x"}),
            )
            .await;
        assert_provider_not_allowed(response).await;
        let record = server.usage_record(&world.org, &request_id).await;
        assert_eq!(record["errorCode"], "provider_not_allowed");
    }
    let response = world
        .post(
            &server,
            "/v1/vllm/chat/completions",
            "mistral-on-vllm",
            json!({"model": "mistral-large", "messages": []}),
        )
        .await;
    assert_provider_not_allowed(response).await;
    assert!(upstream.0.received().is_empty());
}

#[tokio::test]
async fn the_unified_route_streams_from_mistral_without_stream_options() {
    let upstream = FakeMistral::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    let body = json!({"model": "mistral-large", "provider": "mistral", "stream": true, "include_usage": true,
        "messages": [{"role": "user", "content": "Salut"}]});
    let response = world
        .post(&server, "/v1/llm/chat", "mistral-unified", body)
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("chat.completion.chunk") && text.contains("\"jour\""),
        "{text}"
    );
    let sent = upstream.last().json();
    assert!(sent.get("stream_options").is_none() && sent.get("provider").is_none());
    world
        .assert_record(
            &server,
            "mistral-unified",
            (PROMPT_TOKENS, COMPLETION_TOKENS, CHAT_COST),
        )
        .await;
}
