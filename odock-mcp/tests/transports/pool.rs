//! The transport pool: one transport per server, rebuilt on config change, sessions ended on
//! replacement and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use odock_core::{McpError, McpTransportKind};
use odock_mcp::testing::FakeHttpMcpServer;
use odock_mcp::{McpTransports, McpUpstream};
use serde_json::json;

use crate::support::*;

const FAKE: &str = env!("CARGO_BIN_EXE_odock-fake-mcp-stdio");

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn stdio_sessions_live_across_requests_and_end_when_the_config_changes() {
    let pool = McpTransports::new(pool_options());
    let mut upstream = McpUpstream::stdio(FAKE, vec![]);
    upstream
        .stdio_env
        .insert("ODOCK_POOL_VAR".into(), "pooled".into());

    let transport = pool.transport("srv-1", &upstream).unwrap();
    let session = session_of(&post(transport.as_ref(), None, &initialize(1), false).await);
    assert_eq!(pool.stdio_process_count(), 1);
    assert!(pool.has_session("srv-1", &session));
    assert!(!pool.has_session("srv-1", "someone-elses"));
    assert!(!pool.has_session("srv-2", &session));

    // The next request finds the same transport, hence the same session and process.
    let again = pool.transport("srv-1", &upstream).unwrap();
    assert!(Arc::ptr_eq(&transport, &again));
    let env = json_body(
        post(
            again.as_ref(),
            Some(&session),
            &call(2, "env", json!({"name": "ODOCK_POOL_VAR"})),
            false,
        )
        .await,
    );
    assert_eq!(tool_text(&env), "pooled");

    // A config change replaces the transport: the old session's process is killed and reaped.
    upstream.stdio_args.push("--tag=changed".into());
    let replaced = pool.transport("srv-1", &upstream).unwrap();
    assert!(!Arc::ptr_eq(&transport, &replaced));
    wait_until("the replaced transport's process is gone", || {
        pool.stdio_process_count() == 0
    })
    .await;
    let gone = post(
        replaced.as_ref(),
        Some(&session),
        &request(3, "ping", json!({})),
        false,
    )
    .await;
    assert_eq!(status(&gone), StatusCode::NOT_FOUND);

    post(replaced.as_ref(), None, &initialize(1), false).await;
    assert_eq!(pool.stdio_process_count(), 1);
    pool.shutdown().await;
    assert_eq!(pool.stdio_process_count(), 0);
}

#[tokio::test]
async fn the_pool_validates_configs_and_serves_http_servers() {
    let pool = McpTransports::new(pool_options());
    let missing = McpUpstream::http(McpTransportKind::StreamableHttp, "");
    assert_eq!(
        pool.transport("a", &missing).err(),
        Some(McpError::MissingEndpoint)
    );
    let no_command = McpUpstream::stdio(" ", vec![]);
    assert_eq!(
        pool.transport("b", &no_command).err(),
        Some(McpError::MissingStdioCommand)
    );

    let fake = FakeHttpMcpServer::start().await;
    let http = pool
        .transport(
            "c",
            &McpUpstream::http(McpTransportKind::StreamableHttp, fake.url()),
        )
        .unwrap();
    let reply = post(http.as_ref(), None, &initialize(1), false).await;
    assert_eq!(status(&reply), StatusCode::OK);
    assert!(
        !pool.has_session("c", &session_of(&reply)),
        "streamable HTTP sessions live upstream"
    );
    pool.remove("c");
    assert_eq!(fake.requests().len(), 1);
}
