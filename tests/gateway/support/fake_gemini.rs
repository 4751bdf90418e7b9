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
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::stream;
use serde_json::{json, Value};

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

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `{slug}:{method}`.
    pub resource: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream received JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct FakeGemini {
    addr: std::net::SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGemini {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGemini {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/v1beta/models/{*resource}", post(generate))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// What a GOOGLE provider's `baseUrl` should be: the server root.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("upstream received a request")
    }
}

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

async fn generate(
    State(shared): State<Shared>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.received.lock().unwrap().push(Received {
        resource: resource.clone(),
        query: query.clone(),
        headers,
        body,
    });
    let Some((slug, method)) = resource.rsplit_once(':') else {
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
