//! Added latency of an MCP `tools/call` through the gateway over streamable HTTP: the same JSON-RPC
//! call sent straight to a fake MCP server on loopback, and through the real `odock-server`
//! (authentication, grant, tool rules, rate-limit gate, reservation, metering with the MCP usage
//! record, SQLite usage writer) to that server. The difference is the gateway's cost.
//!
//! `cargo bench --bench mcp`

use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use odock::core::Secret;
use odock_mcp::testing::FakeHttpMcpServer;
use odock_server::{App, Config};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdefghij";

struct Setup {
    gateway_url: String,
    upstream_url: String,
    key: String,
    /// MCP sessions opened with `initialize` (the fake requires one), direct and through Odock.
    upstream_session: String,
    gateway_session: String,
    _upstream: FakeHttpMcpServer,
    _dir: tempfile::TempDir,
}

async fn admin(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("admin {path}: {e}"));
    assert!(
        response.status().is_success(),
        "admin {path}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

async fn setup(client: &reqwest::Client) -> Setup {
    let upstream = FakeHttpMcpServer::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = Config {
        listen: "127.0.0.1:0"
            .parse()
            .unwrap_or_else(|e| panic!("addr: {e}")),
        database_url: format!("sqlite://{}", dir.path().join("odock.db").display()),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        // The fake MCP server lives on loopback, which the default egress policy refuses.
        egress_allow: vec!["127.0.0.0/8".to_owned()],
        ..Config::default()
    };
    let app = App::build(&config)
        .await
        .unwrap_or_else(|e| panic!("app: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr: SocketAddr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    tokio::spawn(app.serve(listener, std::future::pending()));
    let base = format!("http://{addr}");

    let org = admin(
        client,
        &base,
        "/api/admin/organisations",
        json!({"name": "Bench"}),
    )
    .await;
    let org = org["id"].as_str().unwrap_or_default().to_owned();
    let key = admin(
        client,
        &base,
        &format!("/api/organisations/{org}/apikeys"),
        json!({"name": "bench", "type": "ORGANISATION"}),
    )
    .await;
    let server = admin(
        client,
        &base,
        &format!("/api/organisations/{org}/mcp-servers"),
        json!({"name": "tools", "slug": "tools", "transport": "STREAMABLE_HTTP",
               "endpointUrl": upstream.url(), "blockedTools": ["secret_tool"],
               "pricing": {"callNanosUsd": 1000, "inputNanosUsdPerMillionBytes": 1000000}}),
    )
    .await;
    admin(
        client,
        &base,
        &format!(
            "/api/organisations/{org}/apikeys/{}/mcp-access",
            key["id"].as_str().unwrap_or_default()
        ),
        json!({"mcpServerIds": [server["id"]]}),
    )
    .await;
    let gateway_url = format!("{base}/v1/mcp/tools");
    let key = key["key"].as_str().unwrap_or_default().to_owned();
    let upstream_session = initialize(client, &upstream.url(), None).await;
    let gateway_session = initialize(client, &gateway_url, Some(&key)).await;
    Setup {
        gateway_url,
        upstream_url: upstream.url(),
        key,
        upstream_session,
        gateway_session,
        _upstream: upstream,
        _dir: dir,
    }
}

/// Opens an MCP session at `url`; returns its `Mcp-Session-Id`.
async fn initialize(client: &reqwest::Client, url: &str, key: Option<&str>) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"}}});
    let mut request = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("initialize: {e}"));
    assert!(
        response.status().is_success(),
        "initialize: {}",
        response.status()
    );
    response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn call_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"text": "hello"}}})
    .to_string()
}

async fn post(client: &reqwest::Client, url: &str, session: &str, key: Option<&str>, body: &str) {
    let mut request = client
        .post(url)
        .header("mcp-session-id", session)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("call: {e}"));
    assert!(response.status().is_success(), "{}", response.status());
    criterion::black_box(response.bytes().await.unwrap_or_default());
}

fn tools_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let client = reqwest::Client::new();
    let setup = runtime.block_on(setup(&client));
    let body = call_body();

    let mut group = c.benchmark_group("mcp_tools_call");
    group.bench_function("direct_to_upstream", |b| {
        b.to_async(&runtime).iter(|| {
            post(
                &client,
                &setup.upstream_url,
                &setup.upstream_session,
                None,
                &body,
            )
        });
    });
    group.bench_function("through_gateway", |b| {
        b.to_async(&runtime).iter(|| {
            post(
                &client,
                &setup.gateway_url,
                &setup.gateway_session,
                Some(&setup.key),
                &body,
            )
        });
    });
    group.finish();
}

criterion_group!(benches, tools_call);
criterion_main!(benches);
