//! The access log as an operator reads it: the real `odock-server` binary with
//! `ODOCK_LOG_FORMAT=json`, its stdout parsed line by line. One access event per request
//! with the documented fields, the governed line written from the usage record (tokens, cost), the
//! `errors` mode keeping only failures, and never a key or the prompt in any line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "access-log-admin-token-0123456789abcdef";
const UPSTREAM_SECRET: &str = "sk-upstream-never-logged-0123456789";
const PROMPT: &str = "the prompt that must never reach a log line";

/// A fake OpenAI upstream: one fixed chat completion with usage.
async fn upstream() -> SocketAddr {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            Json(json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m-upstream",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The server process and every line it printed so far.
struct Server {
    child: Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(access_log: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_odock-server"))
            .env_clear()
            .env("ODOCK_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "ODOCK_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("odock.db").display()),
            )
            .env("ODOCK_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("ODOCK_EGRESS_ALLOW", "127.0.0.0/8")
            .env("ODOCK_LOG_FORMAT", "json")
            .env("ODOCK_LOG", "warn,odock::access=info")
            .env("ODOCK_ACCESS_LOG", access_log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            lines,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client
            .get(format!("{}/v1/healthz", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// The parsed `odock::access` events printed so far.
    fn access_events(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            // The JSON format flattens the event: its message is `access`.
            .filter(|event| event["message"] == "access")
            .collect()
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Organisation, provider, priced model `m`, key and grant; returns (key id, key).
    async fn configure(&self, upstream: SocketAddr) -> (String, String) {
        let org = self
            .admin("/api/admin/organisations", json!({"name": "Logs"}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let root = format!("/api/organisations/{org}");
        let provider = self
            .admin(
                &format!("{root}/providers"),
                json!({"type": "OPENAI", "name": "up", "baseUrl": format!("http://{upstream}/v1")}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.admin(
            &format!("{root}/providers/{provider}/keys"),
            json!({"name": "k", "key": UPSTREAM_SECRET}),
        )
        .await;
        let model = self
            .admin(
                &format!("{root}/models"),
                json!({"name": "m", "slug": "m-upstream", "type": "chat", "providerId": provider,
                       "pricing": {"input": {"text": 2_000_000_000i64}, "output": {"text": 8_000_000_000i64}}}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let key = self
            .admin(
                &format!("{root}/apikeys"),
                json!({"name": "k", "type": "ORGANISATION"}),
            )
            .await;
        let key_id = key["id"].as_str().unwrap().to_owned();
        self.admin(
            &format!("{root}/apikeys/{key_id}/model-access"),
            json!({"modelIds": [model]}),
        )
        .await;
        (key_id, key["key"].as_str().unwrap().to_owned())
    }

    /// A chat call; returns its status and `x-request-id`.
    async fn chat(&self, key: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.base))
            .bearer_auth(key)
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": PROMPT}]}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        response.bytes().await.unwrap();
        (status, id)
    }

    async fn wait_for_event(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(event) = self
                .access_events()
                .into_iter()
                .find(|event| event["request_id"] == request_id)
            {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no access line for {request_id}: {:?}",
                self.lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// No line printed so far holds a secret or the prompt.
    fn assert_no_secrets(&self, key: &str) {
        for line in self.lines.lock().unwrap().iter() {
            for secret in [key, UPSTREAM_SECRET, ADMIN_TOKEN, PROMPT] {
                assert!(!line.contains(secret), "a log line leaks a secret: {line}");
            }
        }
    }
}

#[tokio::test]
async fn every_request_gets_one_structured_access_line_without_secrets() {
    let upstream = upstream().await;
    let server = Server::start("all").await;
    let (key_id, key) = server.configure(upstream).await;

    let (status, id) = server.chat(&key).await;
    assert_eq!(status, 200);
    let event = server.wait_for_event(&id).await;
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["api_key_id"], key_id.as_str());
    assert_eq!(event["status"], 200);
    assert_eq!(event["route"], "/v1/chat/completions", "{event}");
    assert_eq!(event["input_tokens"], 12);
    assert_eq!(event["output_tokens"], 3);
    // 12 × $2/1M + 3 × $8/1M = 48,000 nanos.
    assert_eq!(event["cost_nanos_usd"], 48_000);
    assert!(event["organisation_id"]
        .as_str()
        .is_some_and(|o| !o.is_empty()));
    assert!(event["latency_ms"].is_u64());

    let (status, refused) = server.chat("sk_not_a_key_0123456789").await;
    assert_eq!(status, 401);
    let event = server.wait_for_event(&refused).await;
    assert_eq!(event["status"], 401);

    // One line per request, never two.
    let lines_for = |id: &str| {
        server
            .access_events()
            .iter()
            .filter(|event| event["request_id"] == id)
            .count()
    };
    assert_eq!((lines_for(&id), lines_for(&refused)), (1, 1));
    server.assert_no_secrets(&key);
}

#[tokio::test]
async fn the_errors_mode_keeps_only_failures() {
    let upstream = upstream().await;
    let server = Server::start("errors").await;
    let (_, key) = server.configure(upstream).await;
    let (status, ok) = server.chat(&key).await;
    assert_eq!(status, 200);
    let (status, refused) = server.chat("sk_not_a_key_0123456789").await;
    assert_eq!(status, 401);
    server.wait_for_event(&refused).await;
    // The refusal's line was written after the success finished, so a success line would be there.
    assert!(server
        .access_events()
        .iter()
        .all(|event| event["request_id"] != ok.as_str() && event["status"] != 200));
    server.assert_no_secrets(&key);
}
