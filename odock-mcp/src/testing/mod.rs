//! **Test fixtures:** in-process fake MCP servers on loopback, for this crate's tests and the
//! gateway's. They speak the real wire formats and record what they received (method, path,
//! headers — `Authorization` included — and body) so tests can assert forwarding, header stripping
//! and auth injection.
//!
//! - [`FakeHttpMcpServer`]: a streamable-HTTP MCP server at `/mcp` (sessions via `Mcp-Session-Id`,
//!   JSON or SSE replies, GET stream, DELETE) plus an OAuth2 token endpoint at `/token`.
//! - [`FakeSseMcpServer`]: a legacy HTTP+SSE MCP server (`GET /sse` announces
//!   `/messages?sessionId=…`, answers arrive on the event stream).
//!
//! Both serve the tools of [`fake_tools`]: `echo`, `add`, `secret_tool`, `slow_progress` (progress
//! notifications before its result; with `{"gate": true}` the HTTP fake holds the result until
//! [`FakeHttpMcpServer::release_gate`]) and `crash`.

pub mod fake_tools;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::framing::SseEvent;

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request's method (POST, GET or DELETE on the MCP endpoint).
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// The headers as received, `Authorization` included, so tests can assert stripping and
    /// injection.
    pub headers: HeaderMap,
    /// The request body as received.
    pub body: Bytes,
}

impl Recorded {
    /// A header's value, when present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How a fake behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// When set, MCP requests whose `Authorization` differs are refused with 401.
    pub require_authorization: Option<String>,
    /// `expires_in` of the tokens `/token` issues (omitted when `None`).
    pub token_expires_in: Option<u64>,
    /// The status `/token` answers with (non-200 = a failing token endpoint).
    pub token_status: StatusCode,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            require_authorization: None,
            token_expires_in: Some(3600),
            token_status: StatusCode::OK,
        }
    }
}

#[derive(Default)]
struct Shared {
    options: Mutex<FakeOptions>,
    requests: Mutex<Vec<Recorded>>,
    token_requests: Mutex<Vec<Recorded>>,
    sessions: Mutex<HashSet<String>>,
    next_id: AtomicUsize,
    gate: Notify,
    /// Legacy SSE sessions: id → the channel feeding that session's event stream.
    streams: Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>,
    open_streams: Arc<AtomicUsize>,
}

impl Shared {
    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Recorded {
        let recorded = Recorded {
            method: method.clone(),
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers: headers.clone(),
            body: body.clone(),
        };
        self.requests.lock().push(recorded.clone());
        recorded
    }

    fn unauthorized(&self, headers: &HeaderMap) -> Option<Response> {
        let required = self.options.lock().require_authorization.clone()?;
        let presented = headers.get("authorization").and_then(|v| v.to_str().ok());
        if presented == Some(required.as_str()) {
            return None;
        }
        Some(
            Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("www-authenticate", "Bearer realm=\"fake\"")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"error":"unauthorized"}"#))
                .unwrap_or_default(),
        )
    }

    fn mint(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{}",
            self.next_id.fetch_add(1, Ordering::SeqCst) + 1
        )
    }
}

/// Shared handle of a running fake; the server stops when it is dropped.
struct Running {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(router: Router, shared: Arc<Shared>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|error| panic!("fake MCP server cannot bind: {error}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|error| panic!("fake MCP server has no address: {error}"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Running { addr, shared, task }
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-fake-upstream", "1")
        .body(body.into())
        .unwrap_or_default()
}

fn sse_response(events: BoxStream<'static, Bytes>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("x-fake-upstream", "1")
        .body(Body::from_stream(events.map(Ok::<_, std::io::Error>)))
        .unwrap_or_default()
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    crate::headers::accepts_event_stream(headers)
}

fn event(message: &Value) -> Bytes {
    SseEvent::message(message.to_string()).to_bytes()
}

/// A streamable-HTTP fake MCP server (see the module docs).
pub struct FakeHttpMcpServer(Running);

impl std::fmt::Debug for FakeHttpMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FakeHttpMcpServer({})", self.0.addr)
    }
}

impl FakeHttpMcpServer {
    /// Starts the fake on a loopback port with default behaviour.
    pub async fn start() -> Self {
        Self::start_with(FakeOptions::default()).await
    }

    /// Starts the fake on a loopback port with `options`.
    pub async fn start_with(options: FakeOptions) -> Self {
        let shared = Arc::new(Shared::default());
        *shared.options.lock() = options;
        let router = Router::new()
            .route("/mcp", any(http_mcp))
            .route("/token", any(token))
            .with_state(shared.clone());
        Self(serve(router, shared).await)
    }

    /// The MCP endpoint (`http://127.0.0.1:PORT/mcp`).
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.0.addr)
    }

    /// The OAuth2 token endpoint (`http://127.0.0.1:PORT/token`).
    pub fn token_url(&self) -> String {
        format!("http://{}/token", self.0.addr)
    }

    /// Requests the MCP endpoint received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.0.shared.requests.lock().clone()
    }

    /// Requests the token endpoint received, in order.
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.0.shared.token_requests.lock().clone()
    }

    /// Changes the fake's behaviour while it runs.
    pub fn set_options(&self, options: FakeOptions) {
        *self.0.shared.options.lock() = options;
    }

    /// Lets one gated `slow_progress` call send its result.
    pub fn release_gate(&self) {
        self.0.shared.gate.notify_one();
    }

    /// Sessions initialised and not yet deleted.
    pub fn session_count(&self) -> usize {
        self.0.shared.sessions.lock().len()
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
    };
    let fetch = {
        let mut requests = shared.token_requests.lock();
        requests.push(recorded);
        requests.len()
    };
    let options = shared.options.lock().clone();
    if options.token_status != StatusCode::OK {
        return json_response(options.token_status, r#"{"error":"invalid_client"}"#);
    }
    let mut body = json!({"access_token": format!("tok-{fetch}"), "token_type": "Bearer"});
    if let Some(expires_in) = options.token_expires_in {
        body["expires_in"] = json!(expires_in);
    }
    json_response(StatusCode::OK, body.to_string())
}

async fn http_mcp(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record(&method, &uri, &headers, &body);
    if let Some(refused) = shared.unauthorized(&headers) {
        return refused;
    }
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let known = session
        .as_ref()
        .is_some_and(|id| shared.sessions.lock().contains(id));
    match method {
        Method::GET => {
            if !known {
                return json_response(StatusCode::NOT_FOUND, "{}");
            }
            if !accepts_sse(&headers) {
                return json_response(StatusCode::METHOD_NOT_ALLOWED, "{}");
            }
            let last = headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {"lastEventId": last}});
            let event = SseEvent {
                id: Some("ev-1".into()),
                ..SseEvent::message(note.to_string())
            };
            sse_response(stream::iter(vec![event.to_bytes()]).boxed())
        }
        Method::DELETE => {
            let removed = session.is_some_and(|id| shared.sessions.lock().remove(&id));
            let status = if removed {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            json_response(status, "{}")
        }
        Method::POST => http_post(shared, &headers, &body, session, known).await,
        _ => json_response(StatusCode::METHOD_NOT_ALLOWED, "{}"),
    }
}

async fn http_post(
    shared: Arc<Shared>,
    headers: &HeaderMap,
    body: &Bytes,
    session: Option<String>,
    known: bool,
) -> Response {
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        let error = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}});
        return json_response(StatusCode::BAD_REQUEST, error.to_string());
    };
    let batch = parsed.is_array();
    let messages = match parsed {
        Value::Array(items) => items,
        one => vec![one],
    };
    let initialize = messages.iter().any(|m| m["method"] == "initialize");
    let session = if initialize {
        let id = shared.mint("fake-session");
        shared.sessions.lock().insert(id.clone());
        id
    } else if !known {
        let status = if session.is_some() {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        return json_response(
            status,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad session"}}"#,
        );
    } else {
        session.unwrap_or_default()
    };
    let gated = messages
        .iter()
        .any(|m| m["method"] == "tools/call" && m["params"]["arguments"]["gate"] == json!(true));
    let mut interim = Vec::new();
    let mut responses = Vec::new();
    for message in &messages {
        for out in fake_tools::handle(message).messages {
            if out.get("method").is_some() {
                interim.push(out);
            } else {
                responses.push(out);
            }
        }
    }
    let mut response = if responses.is_empty() {
        json_response(StatusCode::ACCEPTED, "")
    } else if accepts_sse(headers) && (!interim.is_empty() || gated) {
        let first: Vec<Bytes> = interim.iter().map(event).collect();
        let rest = stream::once(async move {
            if gated {
                shared.gate.notified().await;
            }
            stream::iter(responses.iter().map(event).collect::<Vec<_>>())
        })
        .flatten();
        sse_response(stream::iter(first).chain(rest).boxed())
    } else if batch {
        json_response(StatusCode::OK, Value::Array(responses).to_string())
    } else {
        json_response(StatusCode::OK, responses.swap_remove(0).to_string())
    };
    if let Ok(value) = HeaderValue::from_str(&session) {
        response.headers_mut().insert("mcp-session-id", value);
    }
    response
}

/// A legacy HTTP+SSE fake MCP server (see the module docs).
pub struct FakeSseMcpServer(Running);

impl std::fmt::Debug for FakeSseMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FakeSseMcpServer({})", self.0.addr)
    }
}

impl FakeSseMcpServer {
    /// Starts the fake on a loopback port with default behaviour.
    pub async fn start() -> Self {
        Self::start_with(FakeOptions::default()).await
    }

    /// Starts the fake on a loopback port with `options`.
    pub async fn start_with(options: FakeOptions) -> Self {
        let shared = Arc::new(Shared::default());
        *shared.options.lock() = options;
        let router = Router::new()
            .route("/sse", any(sse_stream))
            .route("/messages", any(sse_message))
            .with_state(shared.clone());
        Self(serve(router, shared).await)
    }

    /// The event-stream endpoint (`http://127.0.0.1:PORT/sse`), the server's `endpointUrl`.
    pub fn url(&self) -> String {
        format!("http://{}/sse", self.0.addr)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.0.shared.requests.lock().clone()
    }

    /// Event streams currently open (a closed client session closes its stream).
    pub fn open_streams(&self) -> usize {
        self.0.shared.open_streams.load(Ordering::SeqCst)
    }
}

/// Counts an open event stream until the stream is dropped.
struct StreamGuard(Arc<AtomicUsize>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn sse_stream(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.record(&method, &uri, &headers, &Bytes::new());
    if let Some(refused) = shared.unauthorized(&headers) {
        return refused;
    }
    if method != Method::GET {
        return json_response(StatusCode::METHOD_NOT_ALLOWED, "{}");
    }
    let session = shared.mint("legacy");
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    shared.streams.lock().insert(session.clone(), tx);
    shared.open_streams.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard(shared.open_streams.clone());
    let endpoint = SseEvent {
        event: Some("endpoint".into()),
        ..SseEvent::message(format!("/messages?sessionId={session}"))
    };
    let messages = stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let message = rx.recv().await?;
        let event = SseEvent {
            event: Some("message".into()),
            ..SseEvent::message(message.to_string())
        };
        Some((event.to_bytes(), (rx, guard)))
    });
    sse_response(
        stream::iter(vec![endpoint.to_bytes()])
            .chain(messages)
            .boxed(),
    )
}

async fn sse_message(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.record(&method, &uri, &headers, &body);
    if let Some(refused) = shared.unauthorized(&headers) {
        return refused;
    }
    let session = uri
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("sessionId="))
        })
        .unwrap_or_default()
        .to_owned();
    let Some(tx) = shared.streams.lock().get(&session).cloned() else {
        return json_response(StatusCode::NOT_FOUND, r#"{"error":"unknown session"}"#);
    };
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return json_response(StatusCode::BAD_REQUEST, r#"{"error":"parse error"}"#);
    };
    let messages = match parsed {
        Value::Array(items) => items,
        one => vec![one],
    };
    for message in &messages {
        for out in fake_tools::handle(message).messages {
            let _ = tx.send(out);
        }
    }
    json_response(StatusCode::ACCEPTED, "Accepted")
}
