//! Every OpenAI route through the real server: `/v1/responses`, `/v1/embeddings`,
//! `/v1/images/*`, chat on Azure OpenAI, `GET /v1/models` and `/v1/llm/chat` on an OpenAI model —
//! forwarding, billing and the usage record.

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

use crate::support::fake_openai::{
    gpt_image_usage, EMBEDDING_TOKENS, GPT_IMAGE_USAGE, RESPONSE_INPUT_TOKENS,
    RESPONSE_OUTPUT_TOKENS,
};
use crate::support::{FakeOpenAi, TestServer, UPSTREAM_SECRET};

/// $2 per 1M input tokens, $8 per 1M output tokens.
fn token_pricing() -> Value {
    json!({"input": {"text": 2_000_000_000i64}, "output": {"text": 8_000_000_000i64}})
}

/// $0.04 per image (nanos per 1,000 images).
fn per_image_pricing() -> Value {
    json!({"unitRate": 40_000_000_000i64, "unitKind": "images"})
}

/// An organisation with one provider at the fake upstream and an ORGANISATION key.
struct Org {
    server: TestServer,
    upstream: FakeOpenAi,
    org: String,
    provider: String,
    key_id: String,
    key: String,
}

impl Org {
    /// An OpenAI provider (`baseUrl` with `/v1`).
    async fn openai() -> Self {
        Self::with_provider("OPENAI", json!({})).await
    }

    async fn with_provider(provider_type: &str, config: Value) -> Self {
        let upstream = FakeOpenAi::start().await;
        let server = TestServer::start().await;
        let org = server.create_org().await;
        let base_url = if provider_type == "AZURE_OPENAI" {
            upstream.azure_base_url()
        } else {
            upstream.base_url()
        };
        let provider = server
            .create_provider(&org, provider_type, &base_url, config)
            .await;
        let (key_id, key) = server.create_key(&org).await;
        Self {
            server,
            upstream,
            org,
            provider,
            key_id,
            key,
        }
    }

    /// A model of this org's provider, granted to the key; returns its id.
    async fn model(&self, name: &str, slug: &str, model_type: &str, pricing: Value) -> String {
        let id = self
            .server
            .create_priced_model(&self.org, &self.provider, name, slug, model_type, pricing)
            .await;
        self.server.grant(&self.org, &self.key_id, &id).await;
        id
    }

    async fn post_json(&self, path: &str, request_id: &str, body: Value) -> reqwest::Response {
        self.server
            .client
            .post(self.server.url(path))
            .bearer_auth(&self.key)
            .header("x-request-id", request_id)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn post_form(&self, path: &str, request_id: &str, form: Form) -> reqwest::Response {
        self.server
            .client
            .post(self.server.url(path))
            .bearer_auth(&self.key)
            .header("x-request-id", request_id)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    async fn record(&self, request_id: &str) -> Value {
        self.server.usage_record(&self.org, request_id).await
    }
}

#[tokio::test]
async fn unary_responses_are_forwarded_and_billed_from_their_usage() {
    let org = Org::openai().await;
    org.model("assistant", "gpt-4.1-up", "chat", token_pricing())
        .await;

    let response = org
        .post_json(
            "/v1/responses",
            "resp-unary-1",
            json!({"model": "assistant", "input": "Say hello", "max_output_tokens": 64, "x_vendor": [1]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["output"][0]["content"][0]["text"], "Hello world");

    let sent = org.upstream.last();
    assert_eq!(sent.path, "/v1/responses");
    assert_eq!(
        sent.headers["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-4.1-up", "input": "Say hello", "max_output_tokens": 64, "x_vendor": [1]})
    );

    let record = org.record("resp-unary-1").await;
    assert_eq!(record["endpoint"], "/v1/responses");
    assert_eq!(record["httpStatus"], 200);
    assert_eq!(record["provider"], "openai");
    assert_eq!(record["providerRequestId"], "resp_fake");
    assert_eq!(record["tokens"]["input"], RESPONSE_INPUT_TOKENS);
    assert_eq!(record["tokens"]["output"], RESPONSE_OUTPUT_TOKENS);
    // 20 × $2/1M + 30 × $8/1M = 40,000 + 240,000 nanos.
    assert_eq!(record["costNanosUsd"], 280_000);
}

#[tokio::test]
async fn streamed_responses_relay_every_event_and_bill_from_response_completed() {
    let org = Org::openai().await;
    org.model("assistant", "gpt-4.1-up", "chat", token_pricing())
        .await;

    let response = org
        .post_json(
            "/v1/responses",
            "resp-stream-1",
            json!({"model": "assistant", "input": "Say hello", "stream": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.output_item.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.completed"
        ]
    );
    assert!(text.contains(r#""delta":"Hello""#), "{text}");
    assert!(text.contains(r#""usage":{"input_tokens":20"#), "{text}");

    let sent = org.upstream.last().json();
    assert!(
        sent.get("stream_options").is_none(),
        "the Responses API has no stream_options: {sent}"
    );

    let record = org.record("resp-stream-1").await;
    assert_eq!(record["stream"], true);
    assert_eq!(record["metadata"]["usageEstimated"], false);
    assert_eq!(record["tokens"]["input"], RESPONSE_INPUT_TOKENS);
    assert_eq!(record["tokens"]["output"], RESPONSE_OUTPUT_TOKENS);
    assert_eq!(record["costNanosUsd"], 280_000);
}

#[tokio::test]
async fn embeddings_are_billed_at_the_embeddings_rate() {
    let org = Org::openai().await;
    // The chat rates must not apply: $0.10 per 1M tokens at the embeddings rate.
    let pricing = json!({"input": {"text": 2_000_000_000i64}, "embeddings": 100_000_000i64});
    org.model("embedder", "text-embedding-3-small", "embeddings", pricing)
        .await;

    let response = org
        .post_json(
            "/v1/embeddings",
            "emb-1",
            json!({"model": "embedder", "input": ["The food was delicious", "and the waiter"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let sent = org.upstream.last();
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(sent.json()["model"], "text-embedding-3-small");

    let record = org.record("emb-1").await;
    assert_eq!(record["endpoint"], "/v1/embeddings");
    assert_eq!(record["tokens"]["input"], EMBEDDING_TOKENS);
    assert_eq!(record["tokens"]["output"], 0);
    // 8 tokens × $0.10/1M = 800 nanos (at the input text rate it would be 16,000).
    assert_eq!(record["costNanosUsd"], 800);
    assert_eq!(record["billing"]["mode"], "embeddings");
}

#[tokio::test]
async fn image_generations_are_billed_per_image_or_by_tokens_without_a_unit_rate() {
    let org = Org::openai().await;
    org.model("painter", "dall-e-3", "image", per_image_pricing())
        .await;
    // Priced by tokens only: $5/1M text in, $10/1M image in, $40/1M image out.
    let token_priced = json!({"input": {"text": 5_000_000_000i64, "image": 10_000_000_000i64},
                              "output": {"image": 40_000_000_000i64}});
    org.model("gpt-painter", GPT_IMAGE_USAGE, "image", token_priced)
        .await;

    let response = org
        .post_json(
            "/v1/images/generations",
            "img-gen-1",
            json!({"model": "painter", "prompt": "a cat in a hat", "n": 2, "size": "1024x1024"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let sent = org.upstream.last();
    assert_eq!(sent.path, "/v1/images/generations");
    assert_eq!(
        sent.json(),
        json!({"model": "dall-e-3", "prompt": "a cat in a hat", "n": 2, "size": "1024x1024"})
    );

    let record = org.record("img-gen-1").await;
    assert_eq!(record["endpoint"], "/v1/images/generations");
    assert_eq!(record["tokens"]["units"], 2);
    assert_eq!(record["tokens"]["unitKind"], "images");
    // 2 images × $0.04.
    assert_eq!(record["costNanosUsd"], 80_000_000);
    assert_eq!(record["billing"]["unitsCostNanosUsd"], 80_000_000);

    let response = org
        .post_json(
            "/v1/images/generations",
            "img-gen-2",
            json!({"model": "gpt-painter", "prompt": "a cat"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let record = org.record("img-gen-2").await;
    assert_eq!(record["tokens"]["units"], 1);
    assert_eq!(record["tokens"]["input"], gpt_image_usage()["input_tokens"]);
    assert_eq!(record["tokens"]["output"], 4160);
    // No unit rate: 10 × $5/1M + 40 × $10/1M + 4,160 × $40/1M = 50,000 + 400,000 + 166,400,000.
    assert_eq!(record["costNanosUsd"], 166_850_000);
}

/// Binary image bytes with a CRLF and boundary-like text inside, which must arrive untouched.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\r\n--not-a-boundary\r\n\x00end";

fn image_part() -> Part {
    Part::bytes(PNG.to_vec())
        .file_name("cat.png")
        .mime_str("image/png")
        .unwrap()
}

#[tokio::test]
async fn image_edits_are_forwarded_as_multipart_with_only_the_model_swapped() {
    let org = Org::openai().await;
    org.model("editor", "gpt-image-up", "image", per_image_pricing())
        .await;

    let form = Form::new()
        .part("image", image_part())
        .text("model", "editor")
        .text("prompt", "Add a party hat")
        .text("n", "1");
    let response = org.post_form("/v1/images/edits", "img-edit-1", form).await;
    assert_eq!(response.status(), 200);

    let sent = org.upstream.last();
    assert_eq!(sent.path, "/v1/images/edits");
    let content_type = sent.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    assert_eq!(
        sent.form_fields(),
        [
            ("model".to_owned(), "gpt-image-up".to_owned()),
            ("prompt".to_owned(), "Add a party hat".to_owned()),
            ("n".to_owned(), "1".to_owned()),
        ]
    );
    assert!(
        sent.body.windows(PNG.len()).any(|w| w == PNG),
        "the file bytes reach the upstream untouched"
    );
    assert!(!String::from_utf8_lossy(&sent.body).contains(&org.key));

    let record = org.record("img-edit-1").await;
    assert_eq!(record["endpoint"], "/v1/images/edits");
    assert_eq!(record["tokens"]["units"], 1);
    assert_eq!(record["costNanosUsd"], 40_000_000);
}

#[tokio::test]
async fn image_variations_are_forwarded_as_multipart_and_billed_per_image() {
    let org = Org::openai().await;
    org.model("varier", "dall-e-2", "image", per_image_pricing())
        .await;

    let form = Form::new()
        .text("model", "varier")
        .text("n", "2")
        .part("image", image_part());
    let response = org
        .post_form("/v1/images/variations", "img-var-1", form)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    let sent = org.upstream.last();
    assert_eq!(sent.path, "/v1/images/variations");
    assert_eq!(
        sent.form_fields()[0],
        ("model".to_owned(), "dall-e-2".to_owned())
    );
    assert!(sent.body.windows(PNG.len()).any(|w| w == PNG));

    let record = org.record("img-var-1").await;
    assert_eq!(record["tokens"]["units"], 2);
    assert_eq!(record["costNanosUsd"], 80_000_000);
}

#[tokio::test]
async fn chat_on_azure_openai_addresses_the_deployment_with_api_key_and_api_version() {
    let org = Org::with_provider("AZURE_OPENAI", json!({"apiVersion": "2024-10-21"})).await;
    org.model("gpt-4o", "gpt-4o-deployment", "chat", token_pricing())
        .await;

    let response = org
        .post_json(
            "/v1/chat/completions",
            "azure-chat-1",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello world");

    let sent = org.upstream.last();
    assert_eq!(
        sent.path,
        "/openai/deployments/gpt-4o-deployment/chat/completions"
    );
    assert_eq!(sent.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(sent.headers["api-key"], UPSTREAM_SECRET);
    assert!(sent.headers.get("authorization").is_none());
    for (name, value) in &sent.headers {
        assert!(
            !value.to_str().unwrap_or_default().contains(&org.key),
            "virtual key leaked in {name}"
        );
    }

    let record = org.record("azure-chat-1").await;
    assert_eq!(record["provider"], "azure");
    assert_eq!(record["tokens"]["input"], 15);
    assert_eq!(record["tokens"]["output"], 644);
    assert_eq!(record["costNanosUsd"], 5_182_000);

    // Streaming asks Azure for usage too, and hides the usage chunk from this client.
    let response = org
        .post_json(
            "/v1/chat/completions",
            "azure-chat-2",
            json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    let text = response.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("\"usage\""), "{text}");
    assert_eq!(
        org.upstream.last().json()["stream_options"],
        json!({"include_usage": true})
    );
    let record = org.record("azure-chat-2").await;
    assert_eq!(record["costNanosUsd"], 5_182_000);
}

#[tokio::test]
async fn the_model_list_shows_only_the_models_granted_to_the_key() {
    let org = Org::openai().await;
    org.model("granted-chat", "gpt-4o", "chat", token_pricing())
        .await;
    org.model(
        "granted-embedder",
        "text-embedding-3-small",
        "embeddings",
        json!({}),
    )
    .await;
    org.server
        .create_priced_model(
            &org.org,
            &org.provider,
            "not-granted",
            "gpt-4o-mini",
            "chat",
            json!({}),
        )
        .await;

    let response = org
        .server
        .client
        .get(org.server.url("/v1/models"))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let mut ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["granted-chat", "granted-embedder"]);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["object"] == "model"));

    let unauthenticated = org
        .server
        .client
        .get(org.server.url("/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn unified_chat_on_an_openai_model_answers_the_normalised_object() {
    let org = Org::openai().await;
    org.model("gpt-4o", "gpt-4o-upstream", "chat", token_pricing())
        .await;

    let response = org
        .post_json(
            "/v1/llm/chat",
            "llm-unary-1",
            json!({"model": "gpt-4o", "provider": "openai", "max_tokens": 100,
                   "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["provider"], "openai");
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["content"], "Hello world");
    assert_eq!(body["stop_reason"], "stop");
    assert_eq!(body["input_tokens"], 15);
    assert_eq!(body["output_tokens"], 644);
    assert_eq!(body["tool_calls"], json!([]));

    let sent = org.upstream.last();
    assert_eq!(sent.path, "/v1/chat/completions");
    let sent = sent.json();
    assert_eq!(sent["model"], "gpt-4o-upstream");
    assert!(
        sent.get("provider").is_none(),
        "Odock's provider member is not forwarded: {sent}"
    );

    let record = org.record("llm-unary-1").await;
    assert_eq!(record["endpoint"], "/v1/llm/chat");
    assert_eq!(record["provider"], "openai");
    assert_eq!(record["costNanosUsd"], 5_182_000);

    // A `provider` naming another family is refused before any upstream call.
    let calls = org.upstream.received().len();
    let response = org
        .post_json(
            "/v1/llm/chat",
            "llm-unary-2",
            json!({"model": "gpt-4o", "provider": "anthropic", "messages": []}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic"));
    assert_eq!(org.upstream.received().len(), calls);
}

#[tokio::test]
async fn unified_chat_streams_openai_chunks_ending_with_done() {
    let org = Org::openai().await;
    org.model("gpt-4o", "gpt-4o-upstream", "chat", token_pricing())
        .await;

    let response = org
        .post_json(
            "/v1/llm/chat",
            "llm-stream-1",
            json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello world");
    assert!(!text.contains("\"usage\""), "not asked for: {text}");

    let record = org.record("llm-stream-1").await;
    assert_eq!(record["stream"], true);
    assert_eq!(record["costNanosUsd"], 5_182_000);

    // The Odock convention `include_usage` gets the usage chunk.
    let text = org
        .post_json(
            "/v1/llm/chat",
            "llm-stream-2",
            json!({"model": "gpt-4o", "stream": true, "include_usage": true, "messages": []}),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"usage\""), "{text}");
    assert!(org.upstream.last().json().get("include_usage").is_none());
}

#[tokio::test]
async fn unified_chat_maps_upstream_failures_to_gateway_errors_with_the_upstream_message() {
    let org = Org::openai().await;
    org.model("limited", "fail-429", "chat", token_pricing())
        .await;
    org.model("broken", "fail-500", "chat", token_pricing())
        .await;

    for (model, request_id, status, code, message) in [
        (
            "limited",
            "llm-429",
            429,
            "upstream_rate_limited",
            "Rate limit reached for requests",
        ),
        (
            "broken",
            "llm-500",
            502,
            "upstream_error",
            "upstream exploded",
        ),
    ] {
        let response = org
            .post_json(
                "/v1/llm/chat",
                request_id,
                json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}),
            )
            .await;
        assert_eq!(response.status(), status, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{text}");

        let record = org.record(request_id).await;
        assert_eq!(record["httpStatus"], status);
        assert_eq!(record["errorCode"], code);
        assert_eq!(record["costNanosUsd"], 0);
    }

    // The same upstream failure on the native route is relayed as-is.
    let response = org
        .post_json(
            "/v1/chat/completions",
            "native-500",
            json!({"model": "broken", "messages": []}),
        )
        .await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "upstream exploded");
}
