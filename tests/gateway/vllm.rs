//! The vLLM family end to end: every `/v1/vllm/*` route through the real server to a fake vLLM
//! server, with the slug, the server key, root vs `/v1` paths, multipart audio, family pinning and
//! exact usage records.

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

use crate::support::fake_vllm::{FakeVllm, COMPLETION_TOKENS, PROMPT_TOKENS};
use crate::support::{TestServer, UPSTREAM_SECRET};

const SLUG: &str = "meta-llama/Llama-3.1-8B-Instruct";
const WHISPER_SLUG: &str = "openai/whisper-large-v3";
/// A little WAV header with bytes that are not UTF-8.
const WAV: &[u8] = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\xff\xfe";

/// $1/1M input, $2/1M output, $0.50/1M embeddings.
fn token_pricing() -> Value {
    json!({"input": {"text": 1_000_000_000i64}, "output": {"text": 2_000_000_000i64}, "embeddings": 500_000_000i64})
}

/// An organisation with a provider of `provider_type` at `base_url`, the given models (name,
/// slug, type, pricing) and an ORGANISATION key granted to all of them, plus `other-family`: a
/// granted OpenAI model that this family's routes must refuse.
pub struct FamilyWorld {
    pub org: String,
    pub key_id: String,
    pub key: String,
}

impl FamilyWorld {
    pub async fn create(
        server: &TestServer,
        provider_type: &str,
        base_url: &str,
        models: &[(&str, &str, &str, Value)],
    ) -> Self {
        let org = server.create_org().await;
        let provider = server
            .create_provider(&org, provider_type, base_url, json!({}))
            .await;
        let (key_id, key) = server.create_key(&org).await;
        for (name, slug, model_type, pricing) in models {
            let model = server
                .create_priced_model(&org, &provider, name, slug, model_type, pricing.clone())
                .await;
            server.grant(&org, &key_id, &model).await;
        }
        let openai = server
            .create_provider(&org, "OPENAI", "http://127.0.0.1:9/v1", json!({}))
            .await;
        let other = server
            .create_model(&org, &openai, "other-family", "gpt-4o")
            .await;
        server.grant(&org, &key_id, &other).await;
        Self { org, key_id, key }
    }

    /// POST `path` with a JSON body and `x-request-id: request_id`.
    pub async fn post(
        &self,
        server: &TestServer,
        path: &str,
        request_id: &str,
        body: Value,
    ) -> reqwest::Response {
        server
            .client
            .post(server.url(path))
            .bearer_auth(&self.key)
            .header("x-request-id", request_id)
            .json(&body)
            .send()
            .await
            .expect("gateway request")
    }

    /// GET the family's model list: the names of the models it lists.
    pub async fn model_names(&self, server: &TestServer, path: &str) -> Vec<String> {
        let response = server
            .client
            .get(server.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let list: Value = response.json().await.unwrap();
        assert_eq!(list["object"], "list");
        let mut names: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// The usage record of `request_id`, with the status, tokens and cost asserted.
    pub async fn assert_record(
        &self,
        server: &TestServer,
        request_id: &str,
        (input, output, cost): (u64, u64, i64),
    ) -> Value {
        let record = server.usage_record(&self.org, request_id).await;
        assert_eq!(record["httpStatus"], 200, "{request_id}: {record}");
        assert_eq!(record["tokens"]["input"], input, "{request_id}: {record}");
        assert_eq!(record["tokens"]["output"], output, "{request_id}: {record}");
        assert_eq!(record["costNanosUsd"], cost, "{request_id}: {record}");
        assert_eq!(record["apiKeyId"], self.key_id);
        let text = record.to_string();
        assert!(!text.contains(&self.key) && !text.contains(UPSTREAM_SECRET));
        record
    }
}

/// A 400 `provider_not_allowed` JSON error.
pub async fn assert_provider_not_allowed(response: reqwest::Response) {
    let status = response.status().as_u16();
    let error: Value = response.json().await.expect("JSON error");
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "provider_not_allowed", "{error}");
}

async fn world(server: &TestServer, upstream: &FakeVllm) -> FamilyWorld {
    FamilyWorld::create(
        server,
        "VLLM",
        &upstream.base_url(),
        &[
            ("llama", SLUG, "chat", token_pricing()),
            ("whisper", WHISPER_SLUG, "transcription", token_pricing()),
            ("broken", "fail-500", "chat", token_pricing()),
        ],
    )
    .await
}

fn audio_form(model: &str) -> Form {
    Form::new()
        .text("model", model.to_owned())
        .part(
            "file",
            Part::bytes(WAV)
                .file_name("hello.wav")
                .mime_str("audio/wav")
                .unwrap(),
        )
        .text("language", "fr")
}

const CHAT_COST: i64 = 11_000 + 14_000;

#[tokio::test]
async fn every_json_route_reaches_its_vllm_path_and_is_billed_from_its_usage() {
    let upstream = FakeVllm::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;
    let chat = json!({"model": "llama", "messages": [{"role": "user", "content": "Hi"}], "x_vllm": {"top_k": 5}});
    /// Route, body, upstream path, a field of the answer and its value, (input, output, cost).
    struct Case(
        &'static str,
        Value,
        &'static str,
        &'static str,
        Value,
        (u64, u64, i64),
    );
    let cases = [
        Case(
            "chat/completions",
            chat,
            "/v1/chat/completions",
            "/id",
            json!("chatcmpl-vllm"),
            (11, 7, CHAT_COST),
        ),
        Case(
            "completions",
            json!({"model": "llama", "prompt": "Once"}),
            "/v1/completions",
            "/id",
            json!("cmpl-vllm"),
            (11, 7, CHAT_COST),
        ),
        Case(
            "responses",
            json!({"model": "llama", "input": "Hi"}),
            "/v1/responses",
            "/id",
            json!("resp-vllm"),
            (13, 5, 13_000 + 10_000),
        ),
        // Embeddings are priced at the embeddings rate.
        Case(
            "embeddings",
            json!({"model": "llama", "input": "Hi"}),
            "/v1/embeddings",
            "/id",
            json!("embd-vllm"),
            (6, 0, 3_000),
        ),
        Case(
            "tokenize",
            json!({"model": "llama", "prompt": "Hello world"}),
            "/tokenize",
            "/count",
            json!(3),
            (0, 0, 0),
        ),
        Case(
            "detokenize",
            json!({"model": "llama", "tokens": [9906, 1917]}),
            "/detokenize",
            "/prompt",
            json!("Hello world"),
            (0, 0, 0),
        ),
        Case(
            "pooling",
            json!({"model": "llama", "input": "Hi"}),
            "/pooling",
            "/id",
            json!("pool-vllm"),
            (6, 0, 6_000),
        ),
        Case(
            "classify",
            json!({"model": "llama", "input": ["great"]}),
            "/classify",
            "/id",
            json!("classify-vllm"),
            (6, 0, 6_000),
        ),
        Case(
            "score",
            json!({"model": "llama", "text_1": "capital of France", "text_2": "Paris"}),
            "/score",
            "/id",
            json!("score-vllm"),
            (6, 0, 6_000),
        ),
        Case(
            "rerank",
            json!({"model": "llama", "query": "capital of France", "documents": ["Berlin", "Paris"]}),
            "/rerank",
            "/id",
            json!("rerank-vllm"),
            (21, 0, 21_000),
        ),
    ];
    for Case(route, body, upstream_path, field, value, usage) in cases {
        let request_id = format!("vllm-{}", route.replace('/', "-"));
        let response = world
            .post(
                &server,
                &format!("/v1/vllm/{route}"),
                &request_id,
                body.clone(),
            )
            .await;
        assert_eq!(response.status(), 200, "{route}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer.pointer(field), Some(&value), "{route}: {answer}");

        let received = upstream.last();
        assert_eq!(received.path, upstream_path, "{route}");
        assert_eq!(
            received.header_str("authorization"),
            format!("Bearer {UPSTREAM_SECRET}")
        );
        let mut expected = body;
        expected["model"] = json!(SLUG);
        assert_eq!(received.json(), expected, "{route}: only the model changes");
        assert!(!received.text().contains(&world.key));

        let record = world.assert_record(&server, &request_id, usage).await;
        assert_eq!(record["provider"], "vllm");
        assert_eq!(record["model"], "llama");
        assert_eq!(record["endpoint"], format!("/v1/vllm/{route}"));
        assert_eq!(record["stream"], false);
    }
    let record = server
        .usage_record(&world.org, "vllm-chat-completions")
        .await;
    assert_eq!(record["providerRequestId"], "chatcmpl-vllm");
    assert_eq!(record["providerUsage"]["total_tokens"], 18);
}

#[tokio::test]
async fn streamed_chat_is_billed_from_the_usage_chunk_the_client_never_sees() {
    let upstream = FakeVllm::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    let body =
        json!({"model": "llama", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let response = world
        .post(&server, "/v1/vllm/chat/completions", "vllm-stream", body)
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains("\"Hello\"") && text.contains("\" from vLLM\""),
        "{text}"
    );
    assert!(!text.contains("\"usage\""), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(
        upstream.last().json()["stream_options"]["include_usage"],
        true
    );
    let record = world
        .assert_record(
            &server,
            "vllm-stream",
            (PROMPT_TOKENS, COMPLETION_TOKENS, CHAT_COST),
        )
        .await;
    assert_eq!(record["stream"], true);

    // A client that asks (Odock's top-level convention) receives the usage chunk.
    let body = json!({"model": "llama", "stream": true, "include_usage": true, "messages": []});
    let text = world
        .post(
            &server,
            "/v1/vllm/chat/completions",
            "vllm-stream-usage",
            body,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"usage\""), "{text}");
    assert!(upstream.last().json().get("include_usage").is_none());
    world
        .assert_record(
            &server,
            "vllm-stream-usage",
            (PROMPT_TOKENS, COMPLETION_TOKENS, CHAT_COST),
        )
        .await;
}

#[tokio::test]
async fn audio_is_forwarded_as_multipart_with_the_model_field_swapped() {
    let upstream = FakeVllm::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    for route in ["audio/transcriptions", "audio/translations"] {
        let request_id = format!("vllm-{}", route.replace('/', "-"));
        let response = server
            .client
            .post(server.url(&format!("/v1/vllm/{route}")))
            .bearer_auth(&world.key)
            .header("x-request-id", &request_id)
            .multipart(audio_form("whisper"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{route}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["text"], "bonjour le monde");

        let received = upstream.last();
        assert_eq!(received.path, format!("/v1/{route}"));
        assert_eq!(
            received.header_str("authorization"),
            format!("Bearer {UPSTREAM_SECRET}")
        );
        let content_type = received.header_str("content-type");
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("the client's multipart content type is forwarded");
        let text = received.text();
        assert!(text.starts_with(&format!("--{boundary}\r\n")), "{text}");
        assert!(
            text.contains(&format!("name=\"model\"\r\n\r\n{WHISPER_SLUG}\r\n")),
            "{text}"
        );
        assert!(text.contains("name=\"language\"\r\n\r\nfr\r\n"));
        assert!(
            received.body.windows(WAV.len()).any(|w| w == WAV),
            "the audio file passes byte for byte"
        );

        let record = world.assert_record(&server, &request_id, (0, 0, 0)).await;
        assert_eq!(record["endpoint"], format!("/v1/vllm/{route}"));
        assert_eq!(record["providerUsage"]["seconds"], 2);
    }
}

#[tokio::test]
async fn the_family_routes_refuse_other_families_and_list_only_vllm_models() {
    let upstream = FakeVllm::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    assert_eq!(
        world.model_names(&server, "/v1/vllm/models").await,
        ["broken", "llama", "whisper"]
    );

    for route in [
        "chat/completions",
        "completions",
        "responses",
        "embeddings",
        "tokenize",
        "detokenize",
        "pooling",
        "classify",
        "score",
        "rerank",
    ] {
        let request_id = format!("vllm-deny-{}", route.replace('/', "-"));
        let response = world
            .post(
                &server,
                &format!("/v1/vllm/{route}"),
                &request_id,
                json!({"model": "other-family", "input": "x"}),
            )
            .await;
        assert_provider_not_allowed(response).await;
        let record = server.usage_record(&world.org, &request_id).await;
        assert_eq!(record["errorCode"], "provider_not_allowed");
        assert_eq!(record["costNanosUsd"], 0);
    }
    for route in ["audio/transcriptions", "audio/translations"] {
        let response = server
            .client
            .post(server.url(&format!("/v1/vllm/{route}")))
            .bearer_auth(&world.key)
            .multipart(audio_form("other-family"))
            .send()
            .await
            .unwrap();
        assert_provider_not_allowed(response).await;
    }
    // And a vLLM model is not served on the OpenAI routes.
    let response = world
        .post(
            &server,
            "/v1/chat/completions",
            "vllm-on-openai",
            json!({"model": "llama", "messages": []}),
        )
        .await;
    assert_provider_not_allowed(response).await;
    assert!(
        upstream.received().is_empty(),
        "no refused request reaches vLLM"
    );
}

#[tokio::test]
async fn upstream_errors_are_relayed_natively_and_typed_on_the_unified_route() {
    let upstream = FakeVllm::start().await;
    let server = TestServer::start().await;
    let world = world(&server, &upstream).await;

    let body = json!({"model": "broken", "messages": [{"role": "user", "content": "Hi"}]});
    let response = world
        .post(
            &server,
            "/v1/vllm/chat/completions",
            "vllm-500",
            body.clone(),
        )
        .await;
    assert_eq!(response.status(), 500);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["message"], "CUDA out of memory",
        "vLLM's own body is relayed"
    );
    let record = server.usage_record(&world.org, "vllm-500").await;
    assert_eq!(record["httpStatus"], 500);
    assert_eq!(record["errorCode"], "upstream_error");
    assert_eq!(record["costNanosUsd"], 0);

    let response = world
        .post(&server, "/v1/llm/chat", "vllm-unified-500", body)
        .await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CUDA out of memory"),
        "{error}"
    );

    let response = world
        .post(
            &server,
            "/v1/llm/chat",
            "vllm-unified",
            json!({"model": "llama", "provider": "vllm", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["provider"], "vllm");
    assert_eq!(answer["model"], "llama");
    assert_eq!(answer["content"], "Hello from vLLM");
    assert_eq!(answer["input_tokens"], PROMPT_TOKENS);
    let received = upstream.last();
    assert_eq!(received.path, "/v1/chat/completions");
    assert!(received.json().get("provider").is_none());
    let record = world
        .assert_record(
            &server,
            "vllm-unified",
            (PROMPT_TOKENS, COMPLETION_TOKENS, CHAT_COST),
        )
        .await;
    assert_eq!(record["endpoint"], "/v1/llm/chat");
}
