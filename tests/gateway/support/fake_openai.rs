//! A fake OpenAI upstream on loopback speaking the real chat-completions wire format. Behaviour is
//! chosen by the model slug the gateway sends:
//! - `fail-500`: HTTP 500 with an OpenAI error body;
//! - `slow`: answers after 5 s (longer than the test provider timeout);
//! - `endless`: streams a content chunk every 5 ms, up to 2,000 chunks (for client-abort tests);
//! - anything else: a normal answer with usage (15 prompt / 644 completion tokens), streamed when
//!   asked, with the usage-only final chunk when `stream_options.include_usage` is set.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::stream::{self, StreamExt};
use std::sync::Mutex;

use serde_json::{json, Value};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream received JSON")
    }
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
}

pub struct FakeOpenAi {
    addr: std::net::SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
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

    /// What a provider's `baseUrl` should be (OpenAI style: includes `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("upstream received a request")
    }
}

const PROMPT_TOKENS: u64 = 15;
const COMPLETION_TOKENS: u64 = 644;

async fn chat(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    shared.received.lock().unwrap().push(Received {
        headers,
        body: body.clone(),
    });
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
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
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (StatusCode::OK, "late").into_response()
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

fn sse(events: futures::stream::BoxStream<'static, String>) -> Response {
    let body = Body::from_stream(events.map(|e| Ok::<_, Infallible>(Bytes::from(e))));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap_or_default()
}
