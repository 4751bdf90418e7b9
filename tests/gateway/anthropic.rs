//! The Anthropic family end to end: `/v1/messages` forwarded natively, `/v1/llm/chat` translated,
//! metering with prompt-cache tokens, and the official `anthropic` Python SDK through the gateway.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::fake_anthropic::{
    self, FakeAnthropic, CACHE_READ_TOKENS, CACHE_WRITE_TOKENS, INPUT_TOKENS, MESSAGE_ID,
    OUTPUT_TOKENS, RATE_LIMIT_MESSAGE, TOOL_USE_ID,
};
use crate::support::{python_module_available, run_python_script, TestServer, UPSTREAM_SECRET};

/// Every input token, cached or not (the OpenAI convention usage records follow).
const ALL_INPUT: u64 = INPUT_TOKENS + CACHE_READ_TOKENS + CACHE_WRITE_TOKENS;

/// $3/1M input, $15/1M output, cached input 90 % off:
/// 50 uncached × 3,000 + 100 cached × 300 + 40 output × 15,000 = 150,000 + 30,000 + 600,000 nanos.
const COST_NANOS: i64 = 780_000;

/// An organisation with an ANTHROPIC provider at the fake upstream and one key granted to models
/// `claude` (→ a normal answer), `claude-tools` (→ a tool call), `claude-429` and `claude-400`.
struct Claude {
    org: String,
    key: String,
}

impl Claude {
    async fn create(server: &TestServer, upstream: &FakeAnthropic) -> Self {
        let org = server.create_org().await;
        let provider = server
            .create_provider(&org, "ANTHROPIC", &upstream.base_url(), json!({}))
            .await;
        let (key_id, key) = server.create_key(&org).await;
        for (name, slug) in [
            ("claude", "claude-upstream"),
            ("claude-tools", "tool-call"),
            ("claude-429", "fail-429"),
            ("claude-400", "fail-400"),
        ] {
            let model = server
                .admin_ok(
                    Method::POST,
                    &format!("/api/organisations/{org}/models"),
                    Some(json!({
                        "name": name, "slug": slug, "type": "chat", "providerId": provider,
                        "config": {"maxOutputTokens": 512},
                        "pricing": {"input": {"text": 3_000_000_000i64}, "output": {"text": 15_000_000_000i64},
                                    "cachedInputDiscountPercent": 90}
                    })),
                )
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            server.grant(&org, &key_id, &model).await;
        }
        Self { org, key }
    }
}

async fn post(
    server: &TestServer,
    path: &str,
    key: &str,
    request_id: &str,
    body: Value,
) -> reqwest::Response {
    server
        .client
        .post(server.url(path))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The upstream got the provider's credential, never the client's.
fn assert_upstream_auth(received: &fake_anthropic::Received, virtual_key: &str) {
    assert_eq!(received.header("x-api-key"), Some(UPSTREAM_SECRET));
    assert_eq!(received.header("anthropic-version"), Some("2023-06-01"));
    assert!(received.header("authorization").is_none());
    for (name, value) in received.headers.iter() {
        assert!(
            !value.to_str().unwrap_or_default().contains(virtual_key),
            "virtual key leaked in {name}"
        );
    }
    assert!(!String::from_utf8_lossy(&received.body).contains(virtual_key));
}

/// The record carries the exact upstream usage, cache tokens included, and its exact cost.
fn assert_billed(record: &Value, stream: bool) {
    assert_eq!(record["httpStatus"], 200, "{record}");
    assert_eq!(record["provider"], "anthropic");
    assert_eq!(record["stream"], stream);
    assert_eq!(record["tokens"]["input"], ALL_INPUT);
    assert_eq!(record["tokens"]["cached"], CACHE_READ_TOKENS);
    assert_eq!(record["tokens"]["output"], OUTPUT_TOKENS);
    assert_eq!(record["costNanosUsd"], COST_NANOS);
    assert_eq!(
        record["providerUsage"]["cache_creation_input_tokens"],
        CACHE_WRITE_TOKENS
    );
    let text = record.to_string();
    assert!(!text.contains(UPSTREAM_SECRET));
}

#[tokio::test]
async fn native_messages_are_forwarded_with_the_slug_and_billed_with_cache_tokens() {
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;

    let response = server
        .client
        .post(server.url("/v1/messages"))
        .header("x-api-key", &claude.key)
        .header("anthropic-version", "2023-06-01")
        .header("x-request-id", "anthropic-unary-1")
        .header("content-type", "application/json")
        // Unknown fields and their exact formatting reach the upstream untouched.
        .body(r#"{"model":"claude","max_tokens":256,"messages":[{"role":"user","content":"Hi"}],"x_vendor":{"keep":[1, 2.50]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["id"], MESSAGE_ID);
    assert_eq!(body["content"][0]["text"], "Hello world");
    assert_eq!(
        body["model"], "claude-upstream",
        "the upstream body, relayed"
    );
    assert_eq!(body["usage"]["cache_read_input_tokens"], CACHE_READ_TOKENS);

    let received = upstream.last();
    assert_upstream_auth(&received, &claude.key);
    let raw = String::from_utf8(received.body.to_vec()).unwrap();
    assert_eq!(
        raw,
        r#"{"model":"claude-upstream","max_tokens":256,"messages":[{"role":"user","content":"Hi"}],"x_vendor":{"keep":[1, 2.50]}}"#
    );

    let record = server.usage_record(&claude.org, "anthropic-unary-1").await;
    assert_billed(&record, false);
    assert_eq!(record["model"], "claude");
    assert_eq!(record["endpoint"], "/v1/messages");
    assert_eq!(record["providerRequestId"], MESSAGE_ID);
}

#[tokio::test]
async fn native_message_streams_are_relayed_event_for_event_and_billed() {
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;

    let response = post(
        &server,
        "/v1/messages",
        &claude.key,
        "anthropic-stream-1",
        json!({"model": "claude", "max_tokens": 256, "stream": true,
               "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        fake_anthropic::stream_events("claude-upstream", false).concat(),
        "the upstream's events, unchanged"
    );
    assert_upstream_auth(&upstream.last(), &claude.key);

    let record = server.usage_record(&claude.org, "anthropic-stream-1").await;
    assert_billed(&record, true);
}

#[tokio::test]
async fn errors_on_messages_are_shaped_for_anthropic_clients() {
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;

    // A gateway error: top-level `"type":"error"` beside the usual error object.
    let response = post(
        &server,
        "/v1/messages",
        "sk_wrong",
        "anthropic-err-1",
        json!({"model": "claude", "max_tokens": 8, "messages": []}),
    )
    .await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(body["error"]["type"], "authentication_error");

    let response = post(
        &server,
        "/v1/messages",
        &claude.key,
        "anthropic-err-2",
        json!({"model": "no-such-model", "max_tokens": 8, "messages": []}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["code"], "model_not_found");

    // An upstream error on the native route: relayed with its status and body.
    let response = post(
        &server,
        "/v1/messages",
        &claude.key,
        "anthropic-err-3",
        json!({"model": "claude-400", "max_tokens": 8, "messages": []}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(
        body["error"]["message"],
        "messages: at least one message is required"
    );
    let record = server.usage_record(&claude.org, "anthropic-err-3").await;
    assert_eq!(record["httpStatus"], 400);
}

#[tokio::test]
async fn unified_chat_returns_the_normalised_object_for_an_anthropic_model() {
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;

    let response = post(
        &server,
        "/v1/llm/chat",
        &claude.key,
        "unified-unary-1",
        json!({"model": "claude", "provider": "anthropic", "temperature": 0.3,
               "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["provider"], "anthropic", "{body}");
    assert_eq!(body["model"], "claude");
    assert_eq!(body["content"], "Hello world");
    assert_eq!(body["stop_reason"], "stop");
    assert_eq!(body["tool_calls"], json!([]));
    assert_eq!(body["input_tokens"], ALL_INPUT);
    assert_eq!(body["output_tokens"], OUTPUT_TOKENS);

    let sent = upstream.last();
    assert_upstream_auth(&sent, &claude.key);
    assert_eq!(
        sent.json(),
        json!({"model": "claude-upstream", "system": "Be brief.",
               "messages": [{"role": "user", "content": "Hi"}],
               // No max_tokens in the request: the model's configured output cap.
               "max_tokens": 512, "temperature": 0.3})
    );

    let record = server.usage_record(&claude.org, "unified-unary-1").await;
    assert_billed(&record, false);
    assert_eq!(record["endpoint"], "/v1/llm/chat");
}

#[tokio::test]
async fn unified_chat_streams_openai_chunks_ending_in_done() {
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;

    for (request_id, include_usage) in [("unified-stream-1", false), ("unified-stream-2", true)] {
        let response = post(
            &server,
            "/v1/llm/chat",
            &claude.key,
            request_id,
            json!({"model": "claude", "stream": true, "include_usage": include_usage,
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
        assert!(!text.contains("event:"), "OpenAI chunks only: {text}");
        let chunks: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).unwrap())
            .collect();
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "claude"));
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
            assert_eq!(usage[0]["prompt_tokens"], ALL_INPUT);
            assert_eq!(usage[0]["completion_tokens"], OUTPUT_TOKENS);
            assert_eq!(
                usage[0]["prompt_tokens_details"]["cached_tokens"],
                CACHE_READ_TOKENS
            );
        } else {
            assert!(usage.is_empty(), "{text}");
        }
        assert_eq!(upstream.last().json()["stream"], true);

        let record = server.usage_record(&claude.org, request_id).await;
        assert_billed(&record, true);
    }
}

#[tokio::test]
async fn a_tool_call_round_trip_through_unified_chat() {
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]);
    let question = json!({"role": "user", "content": "Weather in Zürich?"});

    // 1. The model asks for the tool.
    let response = post(
        &server,
        "/v1/llm/chat",
        &claude.key,
        "tool-round-1",
        json!({"model": "claude-tools", "messages": [question], "tools": tools, "tool_choice": "auto"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["stop_reason"], "tool_calls", "{body}");
    assert_eq!(body["content"], "Let me check.");
    let call = &body["tool_calls"][0];
    assert_eq!(call["id"], TOOL_USE_ID);
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments = call["function"]["arguments"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"location": "Zürich"})
    );
    let sent = upstream.last().json();
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "auto"}));

    // 2. The client answers with the tool's result: both reach the upstream as Anthropic blocks.
    let response = post(
        &server,
        "/v1/llm/chat",
        &claude.key,
        "tool-round-2",
        json!({"model": "claude", "tools": tools, "messages": [
            question,
            {"role": "assistant", "content": body["content"], "tool_calls": body["tool_calls"]},
            {"role": "tool", "tool_call_id": TOOL_USE_ID, "content": "18°C, sunny"}
        ]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["content"],
        "Hello world"
    );
    let sent = upstream.last().json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Zürich?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": TOOL_USE_ID, "name": "get_weather", "input": {"location": "Zürich"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": TOOL_USE_ID, "content": "18°C, sunny"}
            ]}
        ])
    );

    // 3. Streamed, the call arrives as OpenAI tool-call deltas.
    let text = post(
        &server,
        "/v1/llm/chat",
        &claude.key,
        "tool-round-3",
        json!({"model": "claude-tools", "stream": true, "messages": [question], "tools": tools}),
    )
    .await
    .text()
    .await
    .unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], TOOL_USE_ID);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: String = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, "{\"location\": \"Zürich\"}");
    assert!(calls.iter().all(|c| c["index"] == 0));
    assert!(text.contains("\"finish_reason\":\"tool_calls\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn unified_chat_turns_an_upstream_rate_limit_into_upstream_rate_limited() {
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;

    let response = post(
        &server,
        "/v1/llm/chat",
        &claude.key,
        "unified-429",
        json!({"model": "claude-429", "messages": [{"role": "user", "content": "Hi"}]}),
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

    let response = post(
        &server,
        "/v1/llm/chat",
        &claude.key,
        "unified-400",
        json!({"model": "claude-400", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_error", "{body}");
}

/// The unmodified `anthropic` Python SDK (base URL = the gateway root, API key = the virtual key):
/// unary, streaming, and an authentication error it must parse. Runs when `python3` can import
/// `anthropic`; CI sets `ODOCK_REQUIRE_SDK_TESTS=1` so a missing SDK fails there.
#[tokio::test]
async fn the_anthropic_python_sdk_works_unmodified() {
    if !python_module_available("anthropic", "anthropic") {
        return;
    }
    let upstream = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let claude = Claude::create(&server, &upstream).await;
    let result =
        run_python_script("anthropic_sdk.py", &[&server.base, &claude.key, "claude"]).await;
    assert_eq!(result["unary"], "Hello world");
    assert_eq!(result["unary_stop_reason"], "end_turn");
    assert_eq!(result["unary_usage"]["input_tokens"], INPUT_TOKENS);
    assert_eq!(
        result["unary_usage"]["cache_read_input_tokens"],
        CACHE_READ_TOKENS
    );
    assert_eq!(result["unary_usage"]["output_tokens"], OUTPUT_TOKENS);
    assert_eq!(result["stream"], "Hello world");
    assert_eq!(result["stream_stop_reason"], "end_turn");
    assert_eq!(result["stream_usage"]["input_tokens"], INPUT_TOKENS);
    assert_eq!(result["stream_usage"]["output_tokens"], OUTPUT_TOKENS);
    assert_eq!(result["error"]["status"], 401);
    assert_eq!(result["error"]["class"], "AuthenticationError");
    assert_eq!(result["error"]["code"], "unauthorized");

    // What the SDK sent reached the upstream with the provider's credential only.
    let received = upstream.received();
    assert_eq!(
        received.len(),
        2,
        "the failed call never reached the upstream"
    );
    for request in &received {
        assert_upstream_auth(request, &claude.key);
        assert_eq!(request.json()["model"], "claude-upstream");
    }
}
