//! Observability end to end: traces exported over OTLP/HTTP to an in-test receiver (decoded from
//! protobuf), W3C trace context from the client through Odock to the upstream (LLM and MCP), the
//! usage record's `traceId`, metric families, and alerts delivered to a local webhook receiver
//! (signature verified, retried on 500, never twice) and a local SMTP sink (alerts, invitations).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use odock_mcp::testing::FakeHttpMcpServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::mcp::McpWorld;
use crate::support::{FakeOpenAi, TestServer, World};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP receiver on loopback: every span of every export request.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

impl Receiver {
    async fn start(&self) -> String {
        async fn export(State(rx): State<Receiver>, body: Bytes) -> StatusCode {
            match ExportTraceServiceRequest::decode(body) {
                Ok(request) => {
                    let mut spans = rx.0.lock().unwrap();
                    for resource in request.resource_spans {
                        for scope in resource.scope_spans {
                            spans.extend(scope.spans);
                        }
                    }
                    StatusCode::OK
                }
                Err(_) => StatusCode::BAD_REQUEST,
            }
        }
        let app = axum::Router::new()
            .route("/v1/traces", post(export))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    /// The spans of `trace` (hex), by name.
    fn spans(&self, trace: &str) -> HashMap<String, Span> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex::encode(&s.trace_id) == trace)
            .map(|s| (s.name.clone(), s.clone()))
            .collect()
    }

    /// Waits (flushing) until `trace` has a span named `name`.
    async fn wait_for(
        &self,
        server: &TestServer,
        trace: &str,
        name: &str,
    ) -> HashMap<String, Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            server.flush_traces().await;
            let spans = self.spans(trace);
            if spans.contains_key(name) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no span {name} in {:?}",
                spans.keys()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An OTLP/gRPC receiver on loopback (HTTP/2 with prior knowledge, as the exporter speaks it):
/// `TraceService/Export` with length-prefixed protobuf frames, answered with an empty response and
/// `grpc-status: 0` in the trailers. Written by hand so the test needs no gRPC server framework.
impl Receiver {
    async fn start_grpc(&self) -> String {
        use http_body_util::{BodyExt, StreamBody};
        async fn export(
            State(rx): State<Receiver>,
            body: axum::body::Body,
        ) -> axum::response::Response {
            let bytes = body.collect().await.unwrap().to_bytes();
            // One gRPC message: compressed flag (0), big-endian length, the protobuf.
            let length = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
            assert_eq!(
                (bytes[0], bytes.len()),
                (0, 5 + length),
                "one uncompressed message"
            );
            let request = ExportTraceServiceRequest::decode(&bytes[5..]).unwrap();
            let mut spans = rx.0.lock().unwrap();
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    spans.extend(scope.spans);
                }
            }
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let frames = futures::stream::iter([
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from_static(&[
                    0, 0, 0, 0, 0,
                ]))),
                Ok(http_body::Frame::trailers(trailers)),
            ]);
            axum::response::Response::builder()
                .header("content-type", "application/grpc")
                .body(axum::body::Body::new(StreamBody::new(frames)))
                .unwrap()
        }
        let app = axum::Router::new()
            .route(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                post(export),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_exported_over_otlp_grpc_too() {
    let receiver = Receiver::default();
    let endpoint = receiver.start_grpc().await;
    let server = TestServer::start_with(|config| {
        config.observability.otel_endpoint = Some(endpoint);
        config.observability.otel_protocol = odock_server::telemetry::OtlpProtocol::Grpc;
    })
    .await;
    let upstream = FakeOpenAi::start().await;
    let world = World::create(&server, &upstream).await;
    let response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let spans = receiver
        .wait_for(&server, CLIENT_TRACE, "odock.usage.enqueue")
        .await;
    let root = &spans["POST /v1/chat/completions"];
    assert_eq!(id(&root.parent_span_id), CLIENT_SPAN);
    let call = &spans["chat gpt-4o"];
    assert_eq!(call.parent_span_id, root.span_id);
    assert_eq!(
        attribute(call, "gen_ai.request.model"),
        Some(json!("gpt-4o"))
    );
}

fn attribute(span: &Span, key: &str) -> Option<Value> {
    let kv = span.attributes.iter().find(|kv| kv.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => Some(json!(s)),
        AnyValue::IntValue(i) => Some(json!(i)),
        AnyValue::BoolValue(b) => Some(json!(b)),
        AnyValue::DoubleValue(d) => Some(json!(d)),
        _ => None,
    }
}

fn id(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The `00-<trace>-<span>-<flags>` parts of a traceparent.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    (fields[1].to_owned(), fields[2].to_owned())
}

async fn traced_server(receiver: &Receiver) -> TestServer {
    let endpoint = receiver.start().await;
    TestServer::start_with(|config| {
        config.observability.otel_endpoint = Some(endpoint);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_call_is_traced_from_the_clients_traceparent_to_the_upstream() {
    let receiver = Receiver::default();
    let server = traced_server(&receiver).await;
    let upstream = FakeOpenAi::start().await;
    let world = World::create(&server, &upstream).await;

    let response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("x-request-id", "traced-llm-1")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    // The upstream saw the same trace, with Odock's upstream span as its parent.
    let sent = upstream.last();
    let (trace, parent) = parts(sent.header_str("traceparent"));
    assert_eq!(trace, CLIENT_TRACE);
    assert_ne!(parent, CLIENT_SPAN);

    let spans = receiver
        .wait_for(&server, CLIENT_TRACE, "odock.usage.enqueue")
        .await;
    let root = &spans["POST /v1/chat/completions"];
    assert_eq!(
        id(&root.parent_span_id),
        CLIENT_SPAN,
        "server span's parent is the client's"
    );
    assert_eq!(root.kind, 2, "SERVER");
    assert_eq!(
        attribute(root, "http.response.status_code"),
        Some(json!(200))
    );
    assert_eq!(
        attribute(root, "odock.organisation_id"),
        Some(json!(world.org))
    );
    assert_eq!(
        attribute(root, "odock.api_key_id"),
        Some(json!(world.key_id))
    );
    assert_eq!(
        attribute(root, "odock.request_id"),
        Some(json!("traced-llm-1"))
    );
    assert!(attribute(root, "odock.cost_nanos_usd").is_some());
    for stage in [
        "odock.auth",
        "odock.resolve",
        "odock.routing",
        "odock.admission",
        "odock.usage.enqueue",
    ] {
        let span = spans
            .get(stage)
            .unwrap_or_else(|| panic!("no {stage} span"));
        assert_eq!(
            span.parent_span_id, root.span_id,
            "{stage} is a child of the server span"
        );
    }
    let call = &spans["chat gpt-4o"];
    assert_eq!(call.kind, 3, "CLIENT");
    assert_eq!(call.parent_span_id, root.span_id);
    assert_eq!(
        id(&call.span_id),
        parent,
        "the upstream's parent is the client span"
    );
    assert_eq!(
        attribute(call, "gen_ai.operation.name"),
        Some(json!("chat"))
    );
    assert_eq!(
        attribute(call, "gen_ai.provider.name"),
        Some(json!("openai"))
    );
    assert_eq!(
        attribute(call, "gen_ai.request.model"),
        Some(json!("gpt-4o"))
    );
    assert_eq!(
        attribute(call, "gen_ai.response.model"),
        Some(json!("gpt-4o-upstream"))
    );
    assert!(attribute(call, "gen_ai.usage.input_tokens").is_some());
    assert!(attribute(call, "gen_ai.usage.output_tokens").is_some());
    assert!(call.events.iter().any(|e| e.name == "odock.first_byte"));
    // No content: the prompt is on no span.
    for span in spans.values() {
        for kv in &span.attributes {
            assert!(
                !format!("{:?}", kv.value).contains("hello"),
                "{} carries content",
                kv.key
            );
        }
    }

    server.flush_usage().await;
    let record = server.usage_record(&world.org, "traced-llm-1").await;
    assert_eq!(record["traceId"], CLIENT_TRACE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_call_is_traced_to_the_mcp_server() {
    let receiver = Receiver::default();
    let server = traced_server(&receiver).await;
    let fake = FakeHttpMcpServer::start().await;
    let world = McpWorld::create(&server).await;
    world
        .http_server(&server, "tools", &fake.url(), json!({}))
        .await;

    let response = server
        .client
        .post(server.url("/v1/mcp/tools"))
        .bearer_auth(&world.key)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    let sent = fake
        .requests()
        .last()
        .cloned()
        .expect("the MCP server was called");
    let (trace, parent) = parts(sent.header("traceparent").expect("traceparent upstream"));
    assert_eq!(trace, CLIENT_TRACE);

    let spans = receiver
        .wait_for(&server, CLIENT_TRACE, "odock.usage.enqueue")
        .await;
    let root = spans.values().find(|s| s.kind == 2).expect("a server span");
    assert_eq!(id(&root.parent_span_id), CLIENT_SPAN);
    let call = &spans["initialize tools"];
    assert_eq!(call.kind, 3, "CLIENT");
    assert_eq!(call.parent_span_id, root.span_id);
    assert_eq!(id(&call.span_id), parent);
    assert_eq!(
        attribute(call, "mcp.method.name"),
        Some(json!("initialize"))
    );
    assert_eq!(attribute(call, "gen_ai.provider.name"), Some(json!("mcp")));
}

#[tokio::test]
async fn without_tracing_the_clients_traceparent_is_recorded_and_passed_on() {
    let server = TestServer::start().await;
    let upstream = FakeOpenAi::start().await;
    let world = World::create(&server, &upstream).await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("traceparent", &traceparent)
        .header("x-request-id", "untraced-1")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    assert_eq!(upstream.last().header_str("traceparent"), traceparent);
    server.flush_usage().await;
    let record = server.usage_record(&world.org, "untraced-1").await;
    assert_eq!(record["traceId"], CLIENT_TRACE);

    // A malformed traceparent is neither recorded nor forwarded.
    server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("traceparent", "00-zz-yy-01")
        .header("x-request-id", "untraced-2")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    server.flush_usage().await;
    let record = server.usage_record(&world.org, "untraced-2").await;
    assert_eq!(record["traceId"], Value::Null);
}

#[tokio::test]
async fn metrics_expose_the_documented_families() {
    let server = TestServer::start().await;
    let upstream = FakeOpenAi::start().await;
    let world = World::create(&server, &upstream).await;
    let ok = server
        .chat(
            &world.key,
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();
    server.flush_usage().await;
    let text = server.metrics_text().await;
    for family in [
        "odock_requests_total{route=\"/v1/chat/completions\",status_class=\"2xx\"} 1",
        "odock_request_duration_seconds_bucket",
        "odock_upstream_duration_seconds_bucket{provider=\"openai\"",
        "odock_http_requests_in_flight",
        "odock_provider_errors_total{provider=\"openai\"} 0",
        "odock_tokens_total{provider=\"openai\",class=\"input\"}",
        "odock_cost_nanos_usd_total{provider=\"openai\"}",
        "odock_stream_sessions_total{provider=\"openai\"} 0",
        "odock_admission_decisions_total{decision=\"admitted\"} 1",
        "odock_budget_threshold_crossings_total",
        "odock_quota_threshold_crossings_total{threshold=\"80\"}",
        "odock_notifications_total{channel=\"webhook\",outcome=\"delivered\"}",
        "odock_alerts_raised_total{event=\"budget.threshold\"}",
        "odock_usage_queue_depth",
        "odock_cache_hits_total",
        "process_start_time_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(family), "missing {family}");
    }
    // Low cardinality: no ids as labels.
    assert!(!text.contains(&world.org) && !text.contains(&world.key_id));
}

/// A webhook receiver: answers 500 to the first `failures` calls, then 200; records every call.
#[derive(Clone)]
pub(crate) struct Webhook {
    calls: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    failures: Arc<Mutex<usize>>,
}

impl Webhook {
    pub(crate) async fn start(failures: usize) -> (Self, String) {
        let hook = Self {
            calls: Arc::default(),
            failures: Arc::new(Mutex::new(failures)),
        };
        async fn receive(
            State(hook): State<Webhook>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            hook.calls.lock().unwrap().push((headers, body));
            let mut failures = hook.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (hook, format!("http://{addr}/hook"))
    }

    pub(crate) fn calls(&self) -> Vec<(HeaderMap, Bytes)> {
        self.calls.lock().unwrap().clone()
    }
}

/// A minimal SMTP sink on loopback: accepts every message and keeps its DATA.
#[derive(Clone, Default)]
struct SmtpSink(Arc<Mutex<Vec<Mail>>>);

/// The recipients and DATA of one message.
type Mail = (Vec<String>, String);

impl SmtpSink {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut recipients = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            recipients.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
                            b"250 OK\r\n"
                        } else if upper.starts_with("DATA") {
                            let _ = write.write_all(b"354 go on\r\n").await;
                            let mut data = String::new();
                            while let Ok(Some(line)) = lines.next_line().await {
                                if line == "." {
                                    break;
                                }
                                data.push_str(&line);
                                data.push('\n');
                            }
                            sink.0
                                .lock()
                                .unwrap()
                                .push((std::mem::take(&mut recipients), data));
                            b"250 queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 OK\r\n"
                        };
                        let _ = write.write_all(reply).await;
                    }
                });
            }
        });
        format!("smtp://{addr}")
    }

    fn messages(&self) -> Vec<Mail> {
        self.0.lock().unwrap().clone()
    }
}

pub(crate) async fn wait_until<F: Fn() -> bool>(what: &str, ready: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-odock-signature"].to_str().unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossed_budget_threshold_reaches_a_webhook_and_an_inbox_exactly_once() {
    let (hook, hook_url) = Webhook::start(1).await;
    let smtp = SmtpSink::default();
    let smtp_url = smtp.start().await;
    let server = TestServer::start_with(|config| {
        config.observability.smtp_url = Some(odock::core::Secret::new(smtp_url));
        config.observability.smtp_from = Some("odock@example.test".to_owned());
        config.observability.notify_retry_base_ms = 20;
    })
    .await;
    let upstream = FakeOpenAi::start().await;
    let world = World::create(&server, &upstream).await;
    let org = &world.org;
    let secret = "whsec-0123456789abcdef";

    let channels = format!("/api/organisations/{org}/notification-channels");
    let webhook = server
        .admin_ok(
            Method::POST,
            &channels,
            Some(
                json!({"name": "ops", "type": "WEBHOOK", "url": hook_url, "secret": secret,
                         "events": ["budget.threshold"]}),
            ),
        )
        .await;
    assert_eq!(webhook["hasSecret"], true);
    assert!(webhook.get("secret").is_none(), "the secret is write-only");
    server
        .admin_ok(
            Method::POST,
            &channels,
            Some(json!({"name": "finance", "type": "EMAIL", "emails": ["cfo@example.test"]})),
        )
        .await;
    // Refusals are JSON with stable codes.
    let (status, body) = server
        .admin(
            Method::POST,
            &channels,
            Some(json!({"name": "x", "type": "WEBHOOK", "url": "http://10.1.2.3/hook"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _) = server
        .admin(
            Method::POST,
            &channels,
            Some(json!({"name": "x", "type": "EMAIL", "emails": []})),
        )
        .await;
    assert_eq!(status, 400);

    // A budget whose first request crosses 50% (a request costs more than half of it) .
    server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/budgets"),
            Some(
                json!({"name": "monthly", "ownerType": "ORG", "amountNanos": 1_000_000_000_000i64,
                         "period": "MONTHLY", "thresholds": [50]}),
            ),
        )
        .await;
    // Make the model expensive enough that one call ($30 per input token) crosses 50% of $1,000.
    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/organisations/{org}/models/{}", world.model),
            Some(json!({"pricing": {"input": {"text": 30_000_000_000_000_000i64}, "output": {"text": 0}}})),
        )
        .await;
    for _ in 0..3 {
        let response = server
            .chat(&world.key, json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}))
            .await;
        response.bytes().await.unwrap();
    }

    // The webhook: a 500, then one success; signed; never again.
    wait_until("two webhook calls", || hook.calls().len() >= 2).await;
    wait_until("one e-mail", || !smtp.messages().is_empty()).await;
    let alerts = format!("/api/organisations/{org}/alerts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let alert = loop {
        let list = server.admin_ok(Method::GET, &alerts, None).await;
        let data = list["data"].as_array().unwrap().clone();
        let done = data.len() == 1
            && data[0]["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["status"] == "DELIVERED");
        if done {
            break data[0].clone();
        }
        assert!(Instant::now() < deadline, "alert not delivered: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alert["event"], "budget.threshold");
    assert_eq!(alert["data"]["threshold"], 50);
    assert_eq!(alert["deliveries"].as_array().unwrap().len(), 2);

    let calls = hook.calls();
    assert_eq!(calls.len(), 2, "one failure, one success");
    for (headers, body) in &calls {
        verify(secret, headers, body);
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["id"], alert["id"]);
        assert_eq!(payload["event"], "budget.threshold");
        assert_eq!(payload["organisationId"], org.as_str());
        assert_eq!(payload["data"]["threshold"], 50);
    }
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, vec!["cfo@example.test".to_owned()]);
    assert!(messages[0].1.contains("monthly"));

    // More spend in the same window raises nothing new, and a restart-free wait sends nothing more.
    let response = server
        .chat(&world.key, json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}))
        .await;
    response.bytes().await.unwrap();
    server.flush_usage().await;
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("odock_alerts_raised_total{event=\"budget.threshold\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("odock_notifications_total{channel=\"webhook\",outcome=\"retried\"} 1")
    );
    assert!(
        metrics.contains("odock_notifications_total{channel=\"webhook\",outcome=\"delivered\"} 1")
    );
    assert_eq!(hook.calls().len(), 2);
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_mailed_when_smtp_is_configured_and_test_sends_work() {
    let smtp = SmtpSink::default();
    let smtp_url = smtp.start().await;
    let server = TestServer::start_with(|config| {
        config.observability.smtp_url = Some(odock::core::Secret::new(smtp_url));
        config.observability.smtp_from = Some("Odock <odock@example.test>".to_owned());
        config.public_url = Some("https://odock.example.test".to_owned());
    })
    .await;
    let org = server.create_org().await;
    let issued = server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/invitations"),
            Some(json!({"email": "new.user@example.test", "role": "USER"})),
        )
        .await;
    assert_eq!(issued["emailed"], true);
    let token = issued["token"].as_str().unwrap().to_owned();
    wait_until("the invitation e-mail", || !smtp.messages().is_empty()).await;
    let (to, data) = smtp.messages()[0].clone();
    assert_eq!(to, vec!["new.user@example.test".to_owned()]);
    let unfolded = data.replace("=\n", "");
    assert!(unfolded.contains(&format!("https://odock.example.test/invitations/{token}")));
    assert!(data.contains("text/plain") && data.contains("text/html"));

    // A test send to an EMAIL channel.
    let channel = server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/notification-channels"),
            Some(json!({"name": "ops", "type": "EMAIL", "emails": ["ops@example.test"]})),
        )
        .await;
    let alert = server
        .admin_ok(
            Method::POST,
            &format!(
                "/api/organisations/{org}/notification-channels/{}/test",
                channel["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(alert["event"], "notification.test");
    wait_until("the test e-mail", || smtp.messages().len() == 2).await;
    assert_eq!(smtp.messages()[1].0, vec!["ops@example.test".to_owned()]);
}

#[tokio::test]
async fn without_smtp_invitations_return_their_link_only() {
    let server = TestServer::start().await;
    let org = server.create_org().await;
    let issued = server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/invitations"),
            Some(json!({"email": "someone@example.test", "role": "USER"})),
        )
        .await;
    assert_eq!(issued["emailed"], false);
    assert!(issued["url"].as_str().unwrap().starts_with("/invitations/"));
}

/// A key that expires within the warning period raises `apikey.expiring` at the next scan (one runs
/// when the server starts), delivered once to a subscribed webhook and never again on later scans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_about_to_expire_is_announced_once() {
    let (hook, hook_url) = Webhook::start(0).await;
    // The first server only sets things up: with its scan on, a start-up scan that a loaded
    // machine delays past the key's creation would raise (and claim) the alert before the
    // channel exists, and the restarts below would have nothing left to announce.
    let mut first = TestServer::start_with(|config| {
        config.observability.key_expiry_warning_days = 0;
    })
    .await;
    let org = first.create_org().await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let key = first
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/apikeys"),
            Some(json!({"name": "ci deploy", "type": "ORGANISATION", "expiresAt": expires_at})),
        )
        .await;
    // A key far from its expiry and one without any: no alert for either.
    let later = (chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339();
    first
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/apikeys"),
            Some(json!({"name": "later", "type": "ORGANISATION", "expiresAt": later})),
        )
        .await;
    first.create_key(&org).await;
    first
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/notification-channels"),
            Some(json!({"name": "ops", "type": "WEBHOOK", "url": hook_url, "secret": "whsec-expiry-0123456789",
                        "events": ["apikey.expiring"]})),
        )
        .await;
    first.stop().await;

    // The scan runs when a server starts: restart on the same database, twice.
    let database_url = first.database_url.clone();
    let master_key = first.master_key_for_restart();
    for _ in 0..2 {
        let (database_url, master_key) = (database_url.clone(), master_key.clone());
        let mut server = TestServer::start_with(move |config| {
            config.database_url = database_url;
            config.master_key = master_key;
            config.observability.key_expiry_warning_days = 7;
        })
        .await;
        wait_until("the expiry alert", || !hook.calls().is_empty()).await;
        let alerts = server
            .admin_ok(
                Method::GET,
                &format!("/api/organisations/{org}/alerts"),
                None,
            )
            .await;
        let data = alerts["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "one alert per key and expiry: {alerts}");
        assert_eq!(data[0]["event"], "apikey.expiring");
        assert_eq!(data[0]["data"]["apiKeyId"], key["id"]);
        server.stop().await;
    }
    let calls = hook.calls();
    assert_eq!(calls.len(), 1, "delivered exactly once across restarts");
    verify("whsec-expiry-0123456789", &calls[0].0, &calls[0].1);
    let payload: Value = serde_json::from_slice(&calls[0].1).unwrap();
    assert_eq!(payload["event"], "apikey.expiring");
    assert_eq!(payload["data"]["apiKeyName"], "ci deploy");
    assert!(
        !String::from_utf8_lossy(&calls[0].1).contains("sk_"),
        "no key material in alerts"
    );
}
