//! A fake Anthropic upstream on loopback speaking the real Messages wire format
//! (`POST /v1/messages`, `x-api-key` + `anthropic-version`). Behaviour is chosen by the model slug
//! the gateway sends:
//! - `fail-400`: HTTP 400 with an Anthropic `invalid_request_error` body;
//! - `fail-429`: HTTP 429 with an Anthropic `rate_limit_error` body;
//! - `tool-call`: calls `get_weather` for Zürich (a text block, then a `tool_use` block);
//! - anything else: answers "Hello world".
//!
//! Every answer reports [`INPUT_TOKENS`] uncached input, [`CACHE_READ_TOKENS`] read from and
//! [`CACHE_WRITE_TOKENS`] written to the prompt cache, and [`OUTPUT_TOKENS`]; streamed when the
//! request says `"stream": true`, with the usage split between `message_start` and
//! `message_delta` as the real API does.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream;
use serde_json::{json, Value};

use super::upstream::fake_upstream;
pub use super::upstream::Received;

pub const INPUT_TOKENS: u64 = 20;
pub const CACHE_READ_TOKENS: u64 = 100;
pub const CACHE_WRITE_TOKENS: u64 = 30;
pub const OUTPUT_TOKENS: u64 = 40;
/// The `id` of every message the fake answers.
pub const MESSAGE_ID: &str = "msg_01FakeAnthropic0000000001";
/// The `request-id` header of every answer.
pub const REQUEST_ID: &str = "req_01FakeAnthropicRequest01";
pub const TOOL_USE_ID: &str = "toolu_01FakeWeatherCall00001";
pub const RATE_LIMIT_MESSAGE: &str =
    "Number of request tokens has exceeded your per-minute rate limit";

fake_upstream!(
    /// A fake Anthropic; its base URL is the server root (Anthropic style).
    FakeAnthropic,
    messages,
    base_path: ""
);

/// The usage a non-streamed answer reports.
pub fn usage() -> Value {
    json!({
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
        "cache_read_input_tokens": CACHE_READ_TOKENS,
        "cache_creation": {"ephemeral_5m_input_tokens": CACHE_WRITE_TOKENS, "ephemeral_1h_input_tokens": 0},
        "output_tokens": OUTPUT_TOKENS,
        "service_tier": "standard"
    })
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("content-type", "application/json"),
            ("request-id", REQUEST_ID),
        ],
        json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": REQUEST_ID})
            .to_string(),
    )
        .into_response()
}

/// Answers `POST /v1/messages`; any other path is 404 and any other method 405.
async fn messages(received: Received) -> Response {
    if received.path != "/v1/messages" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if received.method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let request: Value = serde_json::from_slice(&received.body).unwrap_or(Value::Null);
    let model = request["model"].as_str().unwrap_or_default().to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    match model.as_str() {
        "fail-400" => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "messages: at least one message is required",
            )
        }
        "fail-429" => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                RATE_LIMIT_MESSAGE,
            )
        }
        _ => {}
    }
    let tool_call = model == "tool-call";
    if stream {
        sse(stream_events(&model, tool_call))
    } else {
        let mut content = vec![
            json!({"type": "text", "text": if tool_call { "Let me check." } else { "Hello world" }}),
        ];
        if tool_call {
            content.push(
                json!({"type": "tool_use", "id": TOOL_USE_ID, "name": "get_weather",
                                "input": {"location": "Zürich"}}),
            );
        }
        (
            StatusCode::OK,
            [
                ("content-type", "application/json"),
                ("request-id", REQUEST_ID),
            ],
            json!({
                "id": MESSAGE_ID,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": if tool_call { "tool_use" } else { "end_turn" },
                "stop_sequence": null,
                "usage": usage()
            })
            .to_string(),
        )
            .into_response()
    }
}

/// The events of a streamed answer, as the real API sends them.
pub fn stream_events(model: &str, tool_call: bool) -> Vec<String> {
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": MESSAGE_ID, "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
                          "cache_read_input_tokens": CACHE_READ_TOKENS, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned(),
    ];
    let texts: &[&str] = if tool_call {
        &["Let me check."]
    } else {
        &["Hello", " world"]
    };
    for text in texts {
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    if tool_call {
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use",
                "id": TOOL_USE_ID, "name": "get_weather", "input": {}}}),
        ));
        for part in ["{\"location\":", " \"Zürich\"}"] {
            events.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ));
    }
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": if tool_call { "tool_use" } else { "end_turn" },
            "stop_sequence": null}, "usage": {"output_tokens": OUTPUT_TOKENS}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}

fn sse(events: Vec<String>) -> Response {
    let body = Body::from_stream(stream::iter(
        events
            .into_iter()
            .map(|e| Ok::<_, Infallible>(Bytes::from(e))),
    ));
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("request-id", REQUEST_ID)
        .body(body)
        .unwrap_or_default()
}
