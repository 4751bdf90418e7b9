//! A fake Mistral API on loopback (base URL `…/v1`), strict like the real one: a request carrying
//! `stream_options` is refused with 422. Usage it reports:
//! - chat and FIM: 10 prompt / 4 completion tokens — in streams on the last content chunk, next
//!   to `finish_reason`, without being asked;
//! - embeddings: 5 prompt tokens; moderations: 3 prompt tokens;
//! - OCR: `usage_info.pages_processed` = 3.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

pub use super::upstream::Received;
use super::upstream::{fake_upstream, json_response, sse_event, sse_response};

pub const PROMPT_TOKENS: u64 = 10;
pub const COMPLETION_TOKENS: u64 = 4;
pub const OCR_PAGES: u64 = 3;

fake_upstream!(
    /// A fake Mistral; its base URL includes `/v1` (Mistral style).
    FakeMistral,
    |request| async move { answer(&request) },
    base_path: "/v1"
);

fn usage() -> Value {
    json!({"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
           "completion_tokens": COMPLETION_TOKENS})
}

fn answer(request: &Received) -> Response {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    if body.get("stream_options").is_some() || body.get("include_usage").is_some() {
        let field = if body.get("stream_options").is_some() {
            "stream_options"
        } else {
            "include_usage"
        };
        return json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"object": "error", "type": "invalid_request_error",
                "message": {"detail": [{"type": "extra_forbidden", "loc": ["body", field], "msg": "Extra inputs are not permitted"}]}}),
        );
    }
    let model = body["model"].clone();
    match request.path.as_str() {
        "/v1/chat/completions" | "/v1/fim/completions" if body["stream"] == true => {
            let events = [
                sse_event(
                    &json!({"id": "mistral-cmpl", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Bon"}, "finish_reason": null}]}),
                ),
                sse_event(
                    &json!({"id": "mistral-cmpl", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {"content": "jour"}, "finish_reason": "stop"}], "usage": usage()}),
                ),
                "data: [DONE]\n\n".to_owned(),
            ];
            sse_response(&events)
        }
        "/v1/chat/completions" | "/v1/fim/completions" => json_response(
            StatusCode::OK,
            json!({"id": "mistral-cmpl", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "return a + b"}, "finish_reason": "stop"}],
                "usage": usage()}),
        ),
        "/v1/embeddings" => json_response(
            StatusCode::OK,
            json!({"id": "mistral-embd", "object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
                "usage": {"prompt_tokens": 5, "total_tokens": 5, "completion_tokens": 0}}),
        ),
        "/v1/moderations" => json_response(
            StatusCode::OK,
            json!({"id": "mistral-mod", "model": model,
                "results": [{"categories": {"sexual": false, "hate_and_discrimination": false}, "category_scores": {"sexual": 0.01}}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3, "completion_tokens": 0}}),
        ),
        "/v1/ocr" => json_response(
            StatusCode::OK,
            json!({"model": model,
                "pages": (0..OCR_PAGES).map(|i| json!({"index": i, "markdown": format!("page {i}"), "images": []})).collect::<Vec<_>>(),
                "usage_info": {"pages_processed": OCR_PAGES, "doc_size_bytes": 48213},
                "document_annotation": null}),
        ),
        _ => json_response(StatusCode::NOT_FOUND, json!({"detail": "Not Found"})),
    }
}
