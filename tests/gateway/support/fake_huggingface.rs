//! A fake Hugging Face router on loopback (base URL = root). Chat at `/v1/chat/completions`
//! (9 prompt / 3 completion tokens, usage chunk only when asked); tasks at
//! `/{provider}/models/{model}`, answering by model slug (case-insensitively), like the real
//! per-model endpoints:
//! - `…bge…`: feature-extraction vectors (JSON);
//! - `…flux…`: a PNG image ([`PNG`], binary, `image/png`);
//! - `…video…`: an MP4 ([`MP4`], `video/mp4`);
//! - `…whisper…`: `{"text": …}`.
//!
//! Task requests must not carry `model` (the URL names it); one that does gets 400.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub use super::upstream::Received;
use super::upstream::{fake_upstream, json_response, sse_event, sse_response};

pub const PROMPT_TOKENS: u64 = 9;
pub const COMPLETION_TOKENS: u64 = 3;

/// Not UTF-8, so a lossy relay would show.
pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00";
pub const MP4: &[u8] = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00\xff";

fake_upstream!(
    /// A fake Hugging Face router; its base URL is the server root.
    FakeHuggingFace,
    |request| async move { answer(&request) },
    base_path: ""
);

fn answer(request: &Received) -> Response {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    if request.path == "/v1/chat/completions" {
        return chat(&body);
    }
    if !request.path.contains("/models/") {
        return json_response(StatusCode::NOT_FOUND, json!({"error": "Not Found"}));
    }
    if body.get("model").is_some() || body.get("inputs").is_none() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "expected {inputs, parameters?}"}),
        );
    }
    let path = request.path.to_lowercase();
    if path.contains("bge") {
        json_response(StatusCode::OK, json!([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    } else if path.contains("flux") {
        (StatusCode::OK, [("content-type", "image/png")], PNG).into_response()
    } else if path.contains("video") {
        (StatusCode::OK, [("content-type", "video/mp4")], MP4).into_response()
    } else if path.contains("whisper") {
        json_response(StatusCode::OK, json!({"text": "hello from the audio"}))
    } else {
        json_response(StatusCode::NOT_FOUND, json!({"error": "Model not found"}))
    }
}

fn chat(body: &Value) -> Response {
    let usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                       "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS});
    let model = body["model"].clone();
    if body["stream"] == true {
        let mut events = vec![sse_event(
            &json!({"id": "hf-chat", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}]}),
        )];
        if body["stream_options"]["include_usage"] == true {
            events.push(sse_event(
                &json!({"id": "hf-chat", "object": "chat.completion.chunk",
                "model": model, "choices": [], "usage": usage}),
            ));
        }
        events.push("data: [DONE]\n\n".to_owned());
        return sse_response(&events);
    }
    json_response(
        StatusCode::OK,
        json!({"id": "hf-chat", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
            "usage": usage}),
    )
}
