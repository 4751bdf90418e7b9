//! The Gemini family end to end: `/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent` forwarded natively, `/v1/llm/chat` translated, metering with cached and
//! thinking tokens, and the official `google-genai` Python SDK through the gateway.

use serde_json::{json, Value};

use crate::support::fake_gemini::{
    self, final_usage, FakeGemini, CACHED_TOKENS, CANDIDATES_TOKENS, INVALID_ARGUMENT_MESSAGE,
    PROMPT_TOKENS, RATE_LIMIT_MESSAGE, RESPONSE_ID, THOUGHTS_TOKENS, THOUGHT_SIGNATURE,
};
use crate::support::{python_module_available, run_python_script, TestServer, UPSTREAM_SECRET};

/// Gemini counts thinking outside the candidates; Odock's output includes it.
const OUTPUT_TOKENS: u64 = CANDIDATES_TOKENS + THOUGHTS_TOKENS;

/// $2/1M input, $8/1M output, cached input 50 % off:
/// 20 uncached × 2,000 + 100 cached × 1,000 + 40 output × 8,000 = 40,000 + 100,000 + 320,000.
const COST_NANOS: i64 = 460_000;

/// An organisation with a GOOGLE provider at the fake upstream and one key granted to models
/// `gemini` (→ "Hello world"), `gemini-tools` (→ a function call), `gemini-429`, `gemini-400`, and
/// `gpt`, a model of an OpenAI provider.
struct Gemini {
    org: String,
    key: String,
}

impl Gemini {
    async fn create(server: &TestServer, upstream: &FakeGemini) -> Self {
        let org = server.create_org().await;
        let google = server
            .create_provider(&org, "GOOGLE", &upstream.base_url(), json!({}))
            .await;
        let openai = server
            .create_provider(&org, "OPENAI", "http://127.0.0.1:9/v1", json!({}))
            .await;
        let (key_id, key) = server.create_key(&org).await;
        let pricing = json!({"input": {"text": 2_000_000_000i64}, "output": {"text": 8_000_000_000i64},
                             "cachedInputDiscountPercent": 50});
        for (provider, name, slug) in [
            (&google, "gemini", "gemini-upstream"),
            (&google, "gemini-tools", "tool-call"),
            (&google, "gemini-429", "fail-429"),
            (&google, "gemini-400", "fail-400"),
            (&openai, "gpt", "gpt-4o"),
        ] {
            let model = server
                .create_priced_model(&org, provider, name, slug, "chat", pricing.clone())
                .await;
            server.grant(&org, &key_id, &model).await;
        }
        Self { org, key }
    }
}

/// How the client presents its virtual key.
#[derive(Clone, Copy)]
enum KeyIn {
    Header,
    Query,
}

async fn post(
    server: &TestServer,
    path: &str,
    key: (&str, KeyIn),
    request_id: &str,
    body: &str,
) -> reqwest::Response {
    let (key, carrier) = key;
    let mut request = server
        .client
        .post(server.url(path))
        .header("x-request-id", request_id)
        .header("content-type", "application/json")
        .body(body.to_owned());
    request = match carrier {
        KeyIn::Header => request.header("x-goog-api-key", key),
        KeyIn::Query => request.query(&[("key", key)]),
    };
    request.send().await.unwrap()
}

async fn chat(server: &TestServer, key: &str, request_id: &str, body: Value) -> reqwest::Response {
    server
        .client
        .post(server.url("/v1/llm/chat"))
        .bearer_auth(key)
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The upstream got the provider's credential, never the client's, wherever the client put it.
fn assert_upstream_auth(received: &fake_gemini::Received, virtual_key: &str) {
    assert_eq!(received.header("x-goog-api-key"), Some(UPSTREAM_SECRET));
    assert!(received.header("authorization").is_none());
    for (name, value) in received.headers.iter() {
        assert!(
            !value.to_str().unwrap_or_default().contains(virtual_key),
            "virtual key leaked in {name}"
        );
    }
    assert!(!received
        .query
        .as_deref()
        .unwrap_or_default()
        .contains(virtual_key));
    assert!(!received
        .query
        .as_deref()
        .unwrap_or_default()
        .contains("key="));
    assert!(!String::from_utf8_lossy(&received.body).contains(virtual_key));
}

/// The record carries the exact upstream usage, cached and thinking tokens included, and its cost.
fn assert_billed(record: &Value, stream: bool) {
    assert_eq!(record["httpStatus"], 200, "{record}");
    assert_eq!(record["provider"], "gemini");
    assert_eq!(record["stream"], stream);
    assert_eq!(record["tokens"]["input"], PROMPT_TOKENS);
    assert_eq!(record["tokens"]["cached"], CACHED_TOKENS);
    assert_eq!(record["tokens"]["output"], OUTPUT_TOKENS);
    assert_eq!(record["tokens"]["reasoning"], THOUGHTS_TOKENS);
    assert_eq!(record["costNanosUsd"], COST_NANOS);
    assert_eq!(record["providerUsage"], final_usage());
    let text = record.to_string();
    assert!(!text.contains(UPSTREAM_SECRET));
}

/// The `data:` payloads of an SSE body, JSON-decoded where they are JSON.
fn sse_payloads(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|_| json!(data)))
        .collect()
}

#[tokio::test]
async fn generate_content_is_forwarded_as_sent_and_billed_with_cached_and_thinking_tokens() {
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;
    // Unknown fields and their exact formatting reach the upstream untouched.
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"Hi"}]}],"generationConfig":{"temperature":0.50},"x_vendor":{"keep":[1, 2.50]}}"#;

    for (request_id, carrier) in [
        ("gemini-unary-header", KeyIn::Header),
        ("gemini-unary-query", KeyIn::Query),
    ] {
        let response = post(
            &server,
            "/v1beta/models/gemini:generateContent",
            (&gemini.key, carrier),
            request_id,
            body,
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-request-id"], request_id);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["candidates"][0]["content"]["parts"][0]["text"],
            "Hello world"
        );
        assert_eq!(
            answer["modelVersion"], "gemini-upstream",
            "the upstream body, relayed"
        );
        assert_eq!(answer["usageMetadata"], final_usage());

        let received = upstream.last();
        assert_eq!(received.resource(), "gemini-upstream:generateContent");
        assert_eq!(
            received.query, None,
            "nothing of the client's query travels"
        );
        assert_eq!(received.body, body.as_bytes());
        assert_upstream_auth(&received, &gemini.key);

        let record = server.usage_record(&gemini.org, request_id).await;
        assert_billed(&record, false);
        assert_eq!(record["model"], "gemini");
        assert_eq!(record["endpoint"], "/v1beta/models/{model}:generateContent");
        assert_eq!(record["providerRequestId"], RESPONSE_ID);
        assert!(!record.to_string().contains(&gemini.key));
    }
}

#[tokio::test]
async fn stream_generate_content_relays_sse_events_and_bills_the_last_usage() {
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;

    let response = post(
        &server,
        "/v1beta/models/gemini:streamGenerateContent?alt=sse",
        (&gemini.key, KeyIn::Query),
        "gemini-stream-1",
        r#"{"contents":[{"parts":[{"text":"Hi"}]}]}"#,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    let events = sse_payloads(&text);
    assert_eq!(events.len(), 2, "{text}");
    let streamed: String = events
        .iter()
        .filter_map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(streamed, "Hello world");
    assert_eq!(events[1]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(events[1]["usageMetadata"], final_usage());
    assert!(!text.contains("[DONE]"), "Gemini streams have no [DONE]");

    let received = upstream.last();
    assert_eq!(received.resource(), "gemini-upstream:streamGenerateContent");
    assert_eq!(received.query.as_deref(), Some("alt=sse"));
    assert_upstream_auth(&received, &gemini.key);

    let record = server.usage_record(&gemini.org, "gemini-stream-1").await;
    assert_billed(&record, true);
    assert_eq!(
        record["endpoint"],
        "/v1beta/models/{model}:streamGenerateContent"
    );
}

#[tokio::test]
async fn gemini_routes_refuse_models_of_other_families_and_relay_upstream_errors() {
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;
    let body = r#"{"contents":[{"parts":[{"text":"Hi"}]}]}"#;

    for method in ["generateContent", "streamGenerateContent"] {
        let response = post(
            &server,
            &format!("/v1beta/models/gpt:{method}"),
            (&gemini.key, KeyIn::Header),
            &format!("gemini-family-{method}"),
            body,
        )
        .await;
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "provider_not_allowed", "{error}");
    }

    let response = post(
        &server,
        "/v1beta/models/gemini-400:generateContent",
        (&gemini.key, KeyIn::Header),
        "gemini-upstream-400",
        body,
    )
    .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"error": {"code": 400, "message": INVALID_ARGUMENT_MESSAGE, "status": "INVALID_ARGUMENT"}}),
        "Google's own error body, relayed"
    );
    assert_eq!(upstream.received().len(), 1, "the refused calls never left");
    let record = server
        .usage_record(&gemini.org, "gemini-upstream-400")
        .await;
    assert_eq!(record["httpStatus"], 400);
    assert_eq!(record["costNanosUsd"], 0);
}

#[tokio::test]
async fn unified_chat_returns_the_normalised_object_for_a_gemini_model() {
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;

    let response = chat(
        &server,
        &gemini.key,
        "gemini-unified-1",
        json!({"model": "gemini", "provider": "gemini", "temperature": 0.3, "max_tokens": 100,
               "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["provider"], "gemini", "{body}");
    assert_eq!(body["model"], "gemini");
    assert_eq!(body["content"], "Hello world");
    assert_eq!(body["stop_reason"], "stop");
    assert_eq!(body["tool_calls"], json!([]));
    assert_eq!(body["input_tokens"], PROMPT_TOKENS);
    assert_eq!(body["output_tokens"], OUTPUT_TOKENS);

    let sent = upstream.last();
    assert_upstream_auth(&sent, &gemini.key);
    assert_eq!(sent.resource(), "gemini-upstream:generateContent");
    assert_eq!(
        sent.json(),
        json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
               "systemInstruction": {"parts": [{"text": "Be brief."}]},
               "generationConfig": {"maxOutputTokens": 100, "temperature": 0.3}})
    );

    let record = server.usage_record(&gemini.org, "gemini-unified-1").await;
    assert_billed(&record, false);
    assert_eq!(record["endpoint"], "/v1/llm/chat");
}

#[tokio::test]
async fn unified_chat_streams_openai_chunks_ending_in_done() {
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;

    for (request_id, include_usage) in [("gemini-ustream-1", false), ("gemini-ustream-2", true)] {
        let response = chat(
            &server,
            &gemini.key,
            request_id,
            json!({"model": "gemini", "stream": true, "stream_options": {"include_usage": include_usage},
                   "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let text = response.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let chunks: Vec<Value> = sse_payloads(&text)
            .into_iter()
            .filter(|c| c != "[DONE]")
            .collect();
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "gemini"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let content: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(content, "Hello world");
        let finish: Vec<&Value> = chunks
            .iter()
            .map(|c| &c["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, vec![&json!("stop")]);
        let usage: Vec<&Value> = chunks
            .iter()
            .filter(|c| c["choices"] == json!([]))
            .map(|c| &c["usage"])
            .collect();
        if include_usage {
            assert_eq!(usage.len(), 1, "{text}");
            assert_eq!(usage[0]["prompt_tokens"], PROMPT_TOKENS);
            assert_eq!(usage[0]["completion_tokens"], OUTPUT_TOKENS);
            assert_eq!(
                usage[0]["prompt_tokens_details"]["cached_tokens"],
                CACHED_TOKENS
            );
        } else {
            assert!(usage.is_empty(), "{text}");
        }
        let sent = upstream.last();
        assert_eq!(sent.resource(), "gemini-upstream:streamGenerateContent");
        assert_eq!(sent.query.as_deref(), Some("alt=sse"));

        let record = server.usage_record(&gemini.org, request_id).await;
        assert_billed(&record, true);
    }
}

#[tokio::test]
async fn a_tool_call_round_trip_through_unified_chat() {
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                       "additionalProperties": false}}}]);
    let question = json!({"role": "user", "content": "Weather in Zürich?"});

    // 1. The model asks for the tool.
    let response = chat(
        &server,
        &gemini.key,
        "gemini-tools-1",
        json!({"model": "gemini-tools", "messages": [question], "tools": tools, "tool_choice": "required"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_calls", "{body}");
    assert_eq!(body["content"], "Checking.");
    let call = body["tool_calls"][0].clone();
    assert_eq!(call["id"], "call_0");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Zürich"}"#);
    assert_eq!(
        call["extra_content"]["google"]["thought_signature"],
        THOUGHT_SIGNATURE
    );
    let sent = upstream.last().json();
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}])
    );
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );

    // 2. The client answers with the tool's results: a JSON object, and plain text.
    let response = chat(
        &server,
        &gemini.key,
        "gemini-tools-2",
        json!({"model": "gemini", "tools": tools, "messages": [
            question,
            {"role": "assistant", "content": "Checking.", "tool_calls": [call,
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp_c\": 18, \"sky\": \"rain\"}"},
            {"role": "tool", "tool_call_id": "call_1", "content": "14:05"}
        ]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"], "Hello world");
    let sent = upstream.last().json();
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Zürich?"}]},
            {"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Zürich"}},
                 "thoughtSignature": THOUGHT_SIGNATURE},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18, "sky": "rain"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}}
            ]}
        ])
    );

    // 3. Streamed, the call arrives as one tool_calls delta.
    let response = chat(
        &server,
        &gemini.key,
        "gemini-tools-3",
        json!({"model": "gemini-tools", "stream": true, "messages": [question], "tools": tools}),
    )
    .await;
    let text = response.text().await.unwrap();
    let chunks = sse_payloads(&text);
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert_eq!(calls.len(), 1, "{text}");
    assert_eq!(calls[0][0]["index"], 0);
    assert_eq!(calls[0][0]["id"], "call_0");
    assert_eq!(calls[0][0]["function"]["arguments"], r#"{"city":"Zürich"}"#);
    assert!(text.contains(r#""finish_reason":"tool_calls""#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let record = server.usage_record(&gemini.org, "gemini-tools-3").await;
    assert_billed(&record, true);
}

#[tokio::test]
async fn unified_chat_maps_upstream_failures_and_refuses_untranslatable_requests() {
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;
    let hi = json!([{"role": "user", "content": "Hi"}]);

    let response = chat(
        &server,
        &gemini.key,
        "gemini-unified-429",
        json!({"model": "gemini-429", "messages": hi}),
    )
    .await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_rate_limited", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(RATE_LIMIT_MESSAGE),
        "{body}"
    );

    for stream in [false, true] {
        let response = chat(
            &server,
            &gemini.key,
            &format!("gemini-unified-400-{stream}"),
            json!({"model": "gemini-400", "stream": stream, "messages": hi}),
        )
        .await;
        assert_eq!(response.status(), 502);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "upstream_error", "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(INVALID_ARGUMENT_MESSAGE));
    }

    let calls_before = upstream.received().len();
    let response = chat(
        &server,
        &gemini.key,
        "gemini-unified-invalid",
        json!({"model": "gemini", "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}
        ]}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(upstream.received().len(), calls_before);
}

/// The unmodified `google-genai` Python SDK (base URL = the gateway root, API key = the virtual
/// key): generate_content, generate_content_stream, a function call, and an authentication error
/// it must parse. Runs when `python3` can import `google.genai`; CI sets
/// `ODOCK_REQUIRE_SDK_TESTS=1` so a missing SDK fails there.
#[tokio::test]
async fn the_google_genai_python_sdk_works_unmodified() {
    if !python_module_available("google.genai", "google-genai") {
        return;
    }
    let upstream = FakeGemini::start().await;
    let server = TestServer::start().await;
    let gemini = Gemini::create(&server, &upstream).await;
    let result = run_python_script(
        "gemini_sdk.py",
        &[&server.base, &gemini.key, "gemini", "gemini-tools"],
    )
    .await;
    let total = PROMPT_TOKENS + CANDIDATES_TOKENS + THOUGHTS_TOKENS;
    assert_eq!(result["unary"], "Hello world");
    assert_eq!(result["unary_usage"], total);
    assert_eq!(result["unary_thoughts"], THOUGHTS_TOKENS);
    assert_eq!(result["stream"], "Hello world");
    assert_eq!(result["stream_usage"], total);
    assert_eq!(
        result["call"],
        json!({"name": "get_weather", "args": {"city": "Zürich"}})
    );
    assert_eq!(result["error"]["code"], 401);
    assert!(result["error"]["message"].is_string(), "{result}");

    // What the SDK sent reached the upstream with the provider's credential only.
    let received = upstream.received();
    assert_eq!(
        received.len(),
        3,
        "the failed call never reached the upstream"
    );
    for request in &received {
        assert_upstream_auth(request, &gemini.key);
    }
    assert_eq!(received[0].resource(), "gemini-upstream:generateContent");
    assert_eq!(
        received[1].resource(),
        "gemini-upstream:streamGenerateContent"
    );
    assert_eq!(received[1].query.as_deref(), Some("alt=sse"));
    assert_eq!(received[2].resource(), "tool-call:generateContent");
    assert_eq!(
        received[2].json()["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
}
