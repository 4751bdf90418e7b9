//! Test doubles for embedders and benchmarks: a provider that answers every chat request locally in
//! the OpenAI wire format, with usage, without any network.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use crate::error::ProviderError;
use crate::provider::{Provider, ProviderBody, ProviderRequest, ProviderResponse, StreamChunk};
use crate::usage::{ReportedUsage, TokenUsage};

/// Answers `reply` to every request, reporting `prompt_tokens` / `completion_tokens` as usage.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    /// The assistant message every answer carries.
    pub reply: String,
    /// Input tokens reported as usage.
    pub prompt_tokens: u64,
    /// Output tokens reported as usage.
    pub completion_tokens: u64,
}

impl Default for StaticProvider {
    fn default() -> Self {
        Self {
            reply: "Hello from Odock.".to_owned(),
            prompt_tokens: 12,
            completion_tokens: 5,
        }
    }
}

impl StaticProvider {
    fn usage(&self) -> ReportedUsage {
        let raw = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        });
        ReportedUsage {
            tokens: TokenUsage {
                input: self.prompt_tokens,
                output: self.completion_tokens,
                ..TokenUsage::default()
            },
            raw,
        }
    }
}

#[async_trait]
impl Provider for StaticProvider {
    async fn call(&self, request: ProviderRequest) -> Result<ProviderResponse, ProviderError> {
        let id = format!("chatcmpl-{}", request.request_id);
        let model = request.model.slug.clone();
        let mut headers = HeaderMap::new();
        if request.stream {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            let delta = json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"content": self.reply}, "finish_reason": null}]});
            let stop = json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            let mut chunks = vec![
                StreamChunk {
                    bytes: Bytes::from(format!("data: {delta}\n\n")),
                    usage: None,
                    output_text_bytes: self.reply.len() as u64,
                },
                StreamChunk {
                    bytes: Bytes::from(format!("data: {stop}\n\n")),
                    ..StreamChunk::default()
                },
            ];
            let usage = self.usage();
            let usage_chunk = json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [], "usage": usage.raw});
            chunks.push(StreamChunk {
                bytes: if request.client_wants_usage {
                    Bytes::from(format!("data: {usage_chunk}\n\n"))
                } else {
                    Bytes::new()
                },
                usage: Some(usage),
                output_text_bytes: 0,
            });
            chunks.push(StreamChunk {
                bytes: Bytes::from_static(b"data: [DONE]\n\n"),
                ..StreamChunk::default()
            });
            return Ok(ProviderResponse {
                status: StatusCode::OK,
                headers,
                body: ProviderBody::Stream(Box::pin(stream::iter(chunks.into_iter().map(Ok)))),
                provider_request_id: Some(id),
            });
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let usage = self.usage();
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply}, "finish_reason": "stop"}],
            "usage": usage.raw,
        });
        Ok(ProviderResponse {
            status: StatusCode::OK,
            headers,
            body: ProviderBody::Full {
                bytes: Bytes::from(body.to_string()),
                usage: Some(usage),
            },
            provider_request_id: Some(id),
        })
    }
}

/// Runs the calling test alone, in a child process of the test binary, and returns `true` in the
/// parent once the child passed (the caller then returns); returns `false` in the child, which runs
/// the test's body. For tests that capture logs with a thread-local subscriber: while other tests
/// register the same tracing callsites on other threads, a callsite can cache "no interest" and
/// the capture misses lines.
///
/// `test_path` is the test's full name in its binary (`module::test_name`).
pub fn run_alone(test_path: &str) -> bool {
    const CHILD: &str = "ODOCK_TEST_RUN_ALONE";
    if std::env::var_os(CHILD).is_some() {
        return false;
    }
    let binary = std::env::current_exe().unwrap_or_else(|e| panic!("test binary: {e}"));
    let output = std::process::Command::new(binary)
        .args([test_path, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap_or_else(|e| panic!("running {test_path} alone: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test_path} failed in its own process:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    true
}
