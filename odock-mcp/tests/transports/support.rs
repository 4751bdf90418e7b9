//! Helpers shared by the transport tests: building client messages and reading replies.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use odock_core::egress::EgressPolicy;
use odock_core::{McpMessage, McpReply, McpTransport};
use odock_mcp::framing::SseEvent;
use odock_mcp::{HttpOptions, McpTransportOptions, SseOptions};
use serde_json::{json, Value};

/// The egress policy of tests against fake servers on loopback: `127.0.0.0/8` allowed
/// explicitly (the default refuses loopback, as it must in production).
pub fn loopback() -> Arc<EgressPolicy> {
    Arc::new(EgressPolicy::parse("127.0.0.0/8").unwrap())
}

pub fn http_options() -> HttpOptions {
    HttpOptions {
        egress: loopback(),
        ..HttpOptions::default()
    }
}

pub fn sse_options() -> SseOptions {
    SseOptions {
        http: http_options(),
        ..SseOptions::default()
    }
}

pub fn pool_options() -> McpTransportOptions {
    McpTransportOptions::default().with_egress(EgressPolicy::parse("127.0.0.0/8").unwrap())
}

pub fn request(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

pub fn initialize(id: i64) -> Value {
    request(
        id,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
    )
}

pub fn call(id: i64, tool: &str, arguments: Value) -> Value {
    request(
        id,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    )
}

/// Client headers as an MCP client sends them (plus an Odock key that must never go upstream).
pub fn client_headers(session: Option<&str>, accept_sse: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let accept = if accept_sse {
        "application/json, text/event-stream"
    } else {
        "application/json"
    };
    headers.insert("accept", HeaderValue::from_static(accept));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer sk_odock_client_key"),
    );
    headers.insert("x-api-key", HeaderValue::from_static("sk_odock_client_key"));
    headers.insert(
        "mcp-protocol-version",
        HeaderValue::from_static("2025-06-18"),
    );
    if let Some(session) = session {
        headers.insert("mcp-session-id", HeaderValue::from_str(session).unwrap());
    }
    headers
}

pub async fn post(
    transport: &dyn McpTransport,
    session: Option<&str>,
    body: &Value,
    accept_sse: bool,
) -> McpReply {
    transport
        .send(McpMessage {
            method: Method::POST,
            headers: client_headers(session, accept_sse),
            body: Bytes::from(body.to_string()),
        })
        .await
        .unwrap()
}

pub async fn delete(transport: &dyn McpTransport, session: &str) -> McpReply {
    transport
        .send(McpMessage {
            method: Method::DELETE,
            headers: client_headers(Some(session), false),
            body: Bytes::new(),
        })
        .await
        .unwrap()
}

pub fn status(reply: &McpReply) -> StatusCode {
    match reply {
        McpReply::Json { status, .. } | McpReply::Stream { status, .. } => *status,
    }
}

pub fn session_of(reply: &McpReply) -> String {
    let headers = match reply {
        McpReply::Json { headers, .. } | McpReply::Stream { headers, .. } => headers,
    };
    headers
        .get("mcp-session-id")
        .expect("reply carries Mcp-Session-Id")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The reply's JSON body (panics on a stream).
pub fn json_body(reply: McpReply) -> Value {
    match reply {
        McpReply::Json { body, .. } => serde_json::from_slice(&body).unwrap(),
        McpReply::Stream { .. } => panic!("expected a JSON reply, got a stream"),
    }
}

/// Every message of a stream reply, in order (panics on JSON).
pub async fn stream_messages(reply: McpReply) -> Vec<Value> {
    match reply {
        McpReply::Stream { events, .. } => {
            let events: Vec<_> = events.collect().await;
            events
                .into_iter()
                .map(|event| {
                    let event = SseEvent::parse(&event.unwrap()).unwrap();
                    serde_json::from_str(&event.data).unwrap()
                })
                .collect()
        }
        McpReply::Json { status, body, .. } => panic!(
            "expected a stream, got JSON {status}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// The text of a `tools/call` result.
pub fn tool_text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

pub fn tool_names(response: &Value) -> Vec<String> {
    response["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}
