//! A fake Gemini upstream on loopback speaking the real `generateContent` wire format
//! (`POST /v1beta/models/{slug}:generateContent` / `:streamGenerateContent`, `x-goog-api-key`).
//! Behaviour is chosen by the model slug in the path:
//! - `fail-400`: HTTP 400 with a Google `INVALID_ARGUMENT` error body;
//! - `fail-429`: HTTP 429 with a Google `RESOURCE_EXHAUSTED` error body;
//! - `tool-call`: says "Checking." and calls `get_weather` for Zürich (with a thought signature);
//! - anything else: answers "Hello world".
//!
//! Every answer reports [`PROMPT_TOKENS`] prompt tokens (of which [`CACHED_TOKENS`] cached),
//! [`CANDIDATES_TOKENS`] answer tokens and [`THOUGHTS_TOKENS`] thinking tokens. Streams are SSE
//! with `alt=sse` (events separated by CRLF, as Google sends them) and a JSON array without it;
//! every chunk carries the usage so far, the last one the final count and the finish reason.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream;
use serde_json::{json, Value};

use super::upstream::fake_upstream;
pub use super::upstream::Received;

pub const PROMPT_TOKENS: u64 = 120;
pub const CACHED_TOKENS: u64 = 100;
pub const CANDIDATES_TOKENS: u64 = 30;
pub const THOUGHTS_TOKENS: u64 = 10;
/// The `responseId` of every answer.
pub const RESPONSE_ID: &str = "fakeGeminiResp-0001";
pub const THOUGHT_SIGNATURE: &str = "CiQBVKhc7xYq3cJ9mNwR0ubzg5h2bA1TlLtu8e9yH3z0V5vQfGk=";
pub const RATE_LIMIT_MESSAGE: &str = "Resource has been exhausted (e.g. check quota).";
pub const INVALID_ARGUMENT_MESSAGE: &str =
    "* GenerateContentRequest.contents: contents is not specified";

const MODELS_PREFIX: &str = "/v1beta/models/";

impl Received {
    /// `{slug}:{method}`: the path after `/v1beta/models/`.
    pub fn resource(&self) -> &str {
        self.path.strip_prefix(MODELS_PREFIX).unwrap_or_default()
    }
}

fake_upstream!(
    /// A fake Gemini; its base URL (a GOOGLE provider's) is the server root.
    FakeGemini,
    generate,
    base_path: ""
);

/// `usageMetadata` as Gemini reports it once the answer is complete.
pub fn final_usage() -> Value {
    json!({
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": CANDIDATES_TOKENS,
        "totalTokenCount": PROMPT_TOKENS + CANDIDATES_TOKENS + THOUGHTS_TOKENS,
        "cachedContentTokenCount": CACHED_TOKENS,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": PROMPT_TOKENS}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": CACHED_TOKENS}],
        "thoughtsTokenCount": THOUGHTS_TOKENS
    })
}

/// The usage an early stream chunk reports: the prompt only.
fn early_usage() -> Value {
    json!({"promptTokenCount": PROMPT_TOKENS, "totalTokenCount": PROMPT_TOKENS,
           "cachedContentTokenCount": CACHED_TOKENS})
}

fn google_error(status: StatusCode, message: &str, code: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": code}});
    (
        status,
        [("content-type", "application/json; charset=UTF-8")],
        format!("{body:#}\n"),
    )
        .into_response()
}

fn chunk(slug: &str, parts: Value, finish: Option<&str>, usage: Value) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": slug,
           "responseId": RESPONSE_ID})
}

/// Answers `POST /v1beta/models/{resource}`; any other path is 404 and any other method 405.
async fn generate(received: Received) -> Response {
    if received.resource().is_empty() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if received.method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let query = received.query.clone();
    let Some((slug, method)) = received.resource().rsplit_once(':') else {
        return google_error(StatusCode::NOT_FOUND, "no method", "NOT_FOUND");
    };
    let slug = slug.to_owned();
    match slug.as_str() {
        "fail-400" => {
            return google_error(
                StatusCode::BAD_REQUEST,
                INVALID_ARGUMENT_MESSAGE,
                "INVALID_ARGUMENT",
            )
        }
        "fail-429" => {
            return google_error(
                StatusCode::TOO_MANY_REQUESTS,
                RATE_LIMIT_MESSAGE,
                "RESOURCE_EXHAUSTED",
            )
        }
        _ => {}
    }
    let (first, second) = if slug == "tool-call" {
        (
            json!([{"text": "Checking."}]),
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Zürich"}},
                    "thoughtSignature": THOUGHT_SIGNATURE}]),
        )
    } else {
        (json!([{"text": "Hello"}]), json!([{"text": " world"}]))
    };
    match method {
        "generateContent" => {
            let mut parts = first.as_array().cloned().unwrap_or_default();
            if slug == "tool-call" {
                parts.extend(second.as_array().cloned().unwrap_or_default());
            } else {
                parts = vec![json!({"text": "Hello world"})];
            }
            let answer = chunk(&slug, Value::Array(parts), Some("STOP"), final_usage());
            (
                StatusCode::OK,
                [("content-type", "application/json; charset=UTF-8")],
                format!("{answer:#}\n"),
            )
                .into_response()
        }
        "streamGenerateContent" => {
            let chunks = [
                chunk(&slug, first, None, early_usage()),
                chunk(&slug, second, Some("STOP"), final_usage()),
            ];
            if query.as_deref().is_some_and(|q| q.contains("alt=sse")) {
                let events: Vec<Result<Bytes, Infallible>> = chunks
                    .iter()
                    .map(|c| Ok(Bytes::from(format!("data: {c}\r\n\r\n"))))
                    .collect();
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream::iter(events)))
                    .unwrap_or_default()
            } else {
                (
                    StatusCode::OK,
                    [("content-type", "application/json; charset=UTF-8")],
                    Value::Array(chunks.to_vec()).to_string(),
                )
                    .into_response()
            }
        }
        _ => google_error(StatusCode::NOT_FOUND, "unknown method", "NOT_FOUND"),
    }
}
