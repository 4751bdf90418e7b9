//! A fake OpenAI (and Azure OpenAI) upstream on loopback speaking the real wire formats of every
//! OpenAI route. It records every request (path, query, headers, body) and answers by path:
//!
//! - `/v1/chat/completions` (and Azure's `/openai/deployments/{deployment}/chat/completions`):
//!   behaviour chosen by the model slug the gateway sends —
//!   - `fail-500`: HTTP 500 with an OpenAI error body (`upstream exploded`);
//!   - `fail-429`: HTTP 429 with an OpenAI rate-limit error body (`Rate limit reached for requests`);
//!   - `slow`: answers after 5 s (longer than the test provider timeout);
//!   - `endless`: streams a content chunk every 5 ms, up to 2,000 chunks (for client-abort tests);
//!   - `hesitant`: streams the role delta (no text), then nothing for 10 s;
//!   - anything else: a normal answer with usage (15 prompt / 644 completion tokens), streamed
//!     when asked, with the usage-only final chunk when `stream_options.include_usage` is set.
//! - `/v1/responses` (and Azure's `/openai/v1/responses`): a `response` object, or its typed event
//!   stream, with usage 20 input / 30 output tokens.
//! - `/v1/embeddings`: one vector per input, usage 8 prompt tokens.
//! - `/v1/images/generations` (JSON) and `/v1/images/edits`, `/v1/images/variations` (multipart):
//!   `n` images (default 1); model `gpt-image-1` also reports token usage
//!   ([`GPT_IMAGE_USAGE`]).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::upstream::fake_upstream;
pub use super::upstream::Received;

fake_upstream!(
    /// A fake OpenAI; its base URL includes `/v1` (OpenAI style).
    FakeOpenAi,
    route,
    base_path: "/v1"
);

impl FakeOpenAi {
    /// What an Azure OpenAI provider's `baseUrl` should be (the resource root).
    pub fn azure_base_url(&self) -> String {
        self.0.root()
    }
}

const PROMPT_TOKENS: u64 = 15;
const COMPLETION_TOKENS: u64 = 644;

/// Usage of every Responses API answer.
pub const RESPONSE_INPUT_TOKENS: u64 = 20;
pub const RESPONSE_OUTPUT_TOKENS: u64 = 30;

/// Usage of every embeddings answer.
pub const EMBEDDING_TOKENS: u64 = 8;

/// Token usage `gpt-image-1` reports per request: 50 input (10 text, 40 image), 4,160 output.
pub fn gpt_image_usage() -> Value {
    json!({"total_tokens": 4210, "input_tokens": 50, "output_tokens": 4160,
           "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}})
}

/// The slug that makes image answers carry [`gpt_image_usage`].
pub const GPT_IMAGE_USAGE: &str = "gpt-image-1";

async fn route(received: Received) -> Response {
    let path = received.path.as_str();
    // Azure addresses deployments: `/openai/deployments/{deployment}/{operation}`.
    let operation = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix("/openai/v1/"))
        .or_else(|| {
            let rest = path.strip_prefix("/openai/deployments/")?;
            Some(rest.split_once('/')?.1)
        })
        .unwrap_or_default();
    match operation {
        "chat/completions" => chat(&received.body).await,
        "responses" => responses(&received.json()),
        "embeddings" => embeddings(&received.json()),
        "images/generations" => {
            let request = received.json();
            images(
                request["model"].as_str().unwrap_or_default(),
                request["n"].as_u64().unwrap_or(1),
            )
        }
        "images/edits" | "images/variations" => {
            let fields = received.form_fields();
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            images(
                &field("model").unwrap_or_default(),
                field("n").and_then(|n| n.parse().ok()).unwrap_or(1),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            json!({"error": {"message": format!("no route {path}"), "type": "invalid_request_error"}})
                .to_string(),
        )
            .into_response(),
    }
}

async fn chat(body: &Bytes) -> Response {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    let include_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    match model.as_str() {
        "fail-500" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "application/json")],
            json!({"error": {"message": "upstream exploded", "type": "server_error", "code": null}}).to_string(),
        )
            .into_response(),
        "fail-429" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("content-type", "application/json")],
            json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}).to_string(),
        )
            .into_response(),
        "slow" => {
            // Never answers: the gateway's timeout ends the wait (and drops this connection).
            std::future::pending::<()>().await;
            (StatusCode::OK, "late").into_response()
        }
        "hesitant" => {
            let first = chunk(&model, json!({"role": "assistant", "content": ""}), None);
            sse(stream::once(async move { first })
                .chain(stream::once(async move {
                    // Silent after its first chunk until the gateway's idle timeout closes it.
                    std::future::pending::<()>().await;
                    chunk(&model, json!({"content": "finally"}), None)
                }))
                .boxed())
        }
        "endless" => sse(
            stream::iter(0..2000)
                .then(move |i| {
                    let model = model.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        chunk(&model, json!({"content": format!("word{i} ")}), None)
                    }
                })
                .boxed(),
        ),
        _ if stream => {
            let mut events = vec![
                chunk(&model, json!({"role": "assistant", "content": ""}), None),
                chunk(&model, json!({"content": "Hello"}), None),
                chunk(&model, json!({"content": " world"}), None),
                chunk(&model, json!({}), Some("stop")),
            ];
            if include_usage {
                let usage = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [], "usage": usage()});
                events.push(format!("data: {usage}\n\n"));
            }
            events.push("data: [DONE]\n\n".to_owned());
            sse(stream::iter(events).boxed())
        }
        _ => (
            StatusCode::OK,
            [("content-type", "application/json"), ("x-request-id", "req-upstream-1")],
            json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world"}, "finish_reason": "stop"}],
                "usage": usage(),
                "system_fingerprint": "fp_fake"
            })
            .to_string(),
        )
            .into_response(),
    }
}

fn usage() -> Value {
    json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
           "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}})
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let event = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {event}\n\n")
}

/// A Responses API `response` object in `status`, with `output` and `usage`.
fn response_object(model: &str, status: &str, output: Value, usage: Value) -> Value {
    json!({
        "id": "resp_fake", "object": "response", "created_at": 1, "status": status,
        "error": null, "incomplete_details": null, "model": model, "output": output,
        "parallel_tool_calls": true, "store": true, "temperature": 1.0, "tool_choice": "auto",
        "tools": [], "top_p": 1.0, "usage": usage, "metadata": {}
    })
}

fn responses(request: &Value) -> Response {
    let model = request["model"].as_str().unwrap_or_default();
    let message = |text: &str, status: &str| {
        json!({"id": "msg_fake", "type": "message", "status": status, "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]})
    };
    let usage = json!({
        "input_tokens": RESPONSE_INPUT_TOKENS, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": RESPONSE_OUTPUT_TOKENS, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": RESPONSE_INPUT_TOKENS + RESPONSE_OUTPUT_TOKENS
    });
    if !request["stream"].as_bool().unwrap_or(false) {
        let body = response_object(
            model,
            "completed",
            json!([message("Hello world", "completed")]),
            usage,
        );
        return (
            StatusCode::OK,
            [("content-type", "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let mut sequence = 0;
    let mut event = |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(sequence);
        sequence += 1;
        format!("event: {kind}\ndata: {data}\n\n")
    };
    let in_progress = response_object(model, "in_progress", json!([]), Value::Null);
    let delta = |text: &str| json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": text, "logprobs": []});
    let events = vec![
        event("response.created", json!({"response": in_progress})),
        event(
            "response.output_item.added",
            json!({"output_index": 0, "item": {"id": "msg_fake", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
        event("response.output_text.delta", delta("Hello")),
        event("response.output_text.delta", delta(" world")),
        event(
            "response.output_text.done",
            json!({"item_id": "msg_fake", "output_index": 0, "content_index": 0, "text": "Hello world"}),
        ),
        event(
            "response.completed",
            json!({"response": response_object(model, "completed", json!([message("Hello world", "completed")]), usage)}),
        ),
    ];
    sse(stream::iter(events).boxed())
}

fn embeddings(request: &Value) -> Response {
    let inputs = match &request["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.0023064255, -0.009327292, 0.015797347]}))
        .collect();
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"object": "list", "data": data, "model": request["model"],
               "usage": {"prompt_tokens": EMBEDDING_TOKENS, "total_tokens": EMBEDDING_TOKENS}})
        .to_string(),
    )
        .into_response()
}

fn images(model: &str, n: u64) -> Response {
    let data: Vec<Value> = (0..n)
        .map(|i| json!({"url": format!("https://images.example/{i}.png"), "revised_prompt": "a cat"}))
        .collect();
    let mut body = json!({"created": 1_713_833_628, "data": data});
    if model == GPT_IMAGE_USAGE {
        body["usage"] = gpt_image_usage();
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn sse(events: futures::stream::BoxStream<'static, String>) -> Response {
    let body = Body::from_stream(events.map(|e| Ok::<_, Infallible>(Bytes::from(e))));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap_or_default()
}
