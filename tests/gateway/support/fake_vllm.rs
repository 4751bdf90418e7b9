//! A fake vLLM server on loopback.
//!
//! vLLM answers by path, like the real server: the OpenAI-compatible routes under `/v1`, vLLM's
//! own `tokenize`, `detokenize`, `pooling`, `classify`, `score` and `rerank` at the root, 404
//! anywhere else. The model slug `fail-500` gets an HTTP 500. Usage it reports:
//! - chat and completions: 11 prompt / 7 completion tokens (streamed when asked, with the
//!   usage-only chunk only when `stream_options.include_usage` is set);
//! - responses: 13 input / 5 output tokens;
//! - embeddings, pooling, classify, score: 6 prompt tokens; rerank: `total_tokens` 21;
//! - audio: `{"type":"duration","seconds":2}` (no tokens); tokenize/detokenize: none.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

pub use super::upstream::Received;
use super::upstream::{fake_upstream, json_response, sse_event, sse_response};

pub const PROMPT_TOKENS: u64 = 11;
pub const COMPLETION_TOKENS: u64 = 7;

fake_upstream!(
    /// A fake vLLM server; its base URL is the server root.
    FakeVllm,
    |request| async move { answer(&request) },
    base_path: ""
);

fn chat_usage() -> Value {
    json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
           "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS})
}

fn pooling_usage() -> Value {
    json!({"prompt_tokens": 6, "total_tokens": 6, "completion_tokens": 0})
}

fn answer(request: &Received) -> Response {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    if body["model"] == "fail-500" {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"object": "error", "message": "CUDA out of memory", "type": "InternalServerError", "code": 500}),
        );
    }
    let model = body["model"].clone();
    let streaming = body["stream"] == true;
    let include_usage = body["stream_options"]["include_usage"] == true;
    match request.path.as_str() {
        "/v1/chat/completions" if streaming => {
            let chunk = |delta: Value, finish: Value| {
                sse_event(
                    &json!({"id": "chatcmpl-vllm", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                )
            };
            let mut events = vec![
                chunk(
                    json!({"role": "assistant", "content": "Hello"}),
                    Value::Null,
                ),
                chunk(json!({"content": " from vLLM"}), json!("stop")),
            ];
            if include_usage {
                events.push(sse_event(
                    &json!({"id": "chatcmpl-vllm", "object": "chat.completion.chunk",
                    "model": model, "choices": [], "usage": chat_usage()}),
                ));
            }
            events.push("data: [DONE]\n\n".to_owned());
            sse_response(&events)
        }
        "/v1/chat/completions" => json_response(
            StatusCode::OK,
            json!({"id": "chatcmpl-vllm", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from vLLM"}, "finish_reason": "stop"}],
                "usage": chat_usage()}),
        ),
        "/v1/completions" => json_response(
            StatusCode::OK,
            json!({"id": "cmpl-vllm", "object": "text_completion", "model": model,
                "choices": [{"index": 0, "text": " upon a time", "finish_reason": "length"}], "usage": chat_usage()}),
        ),
        "/v1/responses" => json_response(
            StatusCode::OK,
            json!({"id": "resp-vllm", "object": "response", "model": model, "status": "completed",
                "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]}],
                "usage": {"input_tokens": 13, "output_tokens": 5, "total_tokens": 18}}),
        ),
        "/v1/embeddings" => json_response(
            StatusCode::OK,
            json!({"id": "embd-vllm", "object": "list", "model": model,
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}], "usage": pooling_usage()}),
        ),
        "/pooling" => json_response(
            StatusCode::OK,
            json!({"id": "pool-vllm", "object": "list", "model": model,
                "data": [{"object": "pooling", "index": 0, "data": [[0.1, 0.2]]}], "usage": pooling_usage()}),
        ),
        "/classify" => json_response(
            StatusCode::OK,
            json!({"id": "classify-vllm", "object": "list", "model": model,
                "data": [{"index": 0, "label": "positive", "probs": [0.1, 0.9], "num_classes": 2}], "usage": pooling_usage()}),
        ),
        "/score" => json_response(
            StatusCode::OK,
            json!({"id": "score-vllm", "object": "list", "model": model,
                "data": [{"index": 0, "object": "score", "score": 0.87}], "usage": pooling_usage()}),
        ),
        "/rerank" => json_response(
            StatusCode::OK,
            json!({"id": "rerank-vllm", "model": model,
                "results": [{"index": 1, "relevance_score": 0.93, "document": {"text": "Paris"}}],
                "usage": {"total_tokens": 21}}),
        ),
        "/tokenize" => json_response(
            StatusCode::OK,
            json!({"count": 3, "max_model_len": 8192, "tokens": [9906, 1917, 0]}),
        ),
        "/detokenize" => json_response(StatusCode::OK, json!({"prompt": "Hello world"})),
        "/v1/audio/transcriptions" | "/v1/audio/translations" => {
            let multipart = request
                .header_str("content-type")
                .starts_with("multipart/form-data; boundary=");
            if !multipart {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"message": "expected multipart"}),
                );
            }
            json_response(
                StatusCode::OK,
                json!({"text": "bonjour le monde", "usage": {"type": "duration", "seconds": 2}}),
            )
        }
        _ => json_response(StatusCode::NOT_FOUND, json!({"detail": "Not Found"})),
    }
}
