//! SSE (legacy HTTP+SSE) transport against the in-process fake legacy MCP server, offered to the
//! client as streamable HTTP with gateway-minted sessions.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use odock_core::{McpError, McpMessage, McpTransport, Secret};
use odock_mcp::testing::{FakeOptions, FakeSseMcpServer};
use odock_mcp::{McpAuth, SseOptions, SseTransport};
use serde_json::json;

use crate::support::*;

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
async fn a_session_runs_initialize_list_call_and_progress_over_the_event_stream() {
    let fake = FakeSseMcpServer::start().await;
    let transport = SseTransport::new(&fake.url(), McpAuth::None, sse_options()).unwrap();

    let reply = post(&transport, None, &initialize(1), true).await;
    assert_eq!(status(&reply), StatusCode::OK);
    let session = session_of(&reply);
    assert_eq!(
        json_body(reply)["result"]["serverInfo"]["name"],
        "odock-fake-mcp"
    );
    assert_eq!(fake.open_streams(), 1);

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(
        status(&post(&transport, Some(&session), &initialized, true).await),
        StatusCode::ACCEPTED
    );
    let list = json_body(
        post(
            &transport,
            Some(&session),
            &request(2, "tools/list", json!({})),
            true,
        )
        .await,
    );
    assert_eq!(tool_names(&list).len(), 5);
    let add = json_body(
        post(
            &transport,
            Some(&session),
            &call(3, "add", json!({"a": 1, "b": 2})),
            false,
        )
        .await,
    );
    assert_eq!(tool_text(&add), "3");
    let messages = stream_messages(
        post(
            &transport,
            Some(&session),
            &call(4, "slow_progress", json!({"steps": 2})),
            true,
        )
        .await,
    )
    .await;
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["method"], "notifications/progress");
    assert_eq!(messages[2]["id"], 4);

    // Messages went to the announced endpoint of this session's stream.
    let posts: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::POST)
        .map(|r| r.path)
        .collect();
    assert_eq!(posts.len(), 5);
    assert!(
        posts.iter().all(|p| p == "/messages?sessionId=legacy-1"),
        "{posts:?}"
    );

    assert_eq!(
        status(&delete(&transport, &session).await),
        StatusCode::NO_CONTENT
    );
    assert_eq!(transport.session_count(), 0);
    wait_until("the upstream event stream is closed", || {
        fake.open_streams() == 0
    })
    .await;
    let gone = post(
        &transport,
        Some(&session),
        &request(5, "ping", json!({})),
        false,
    )
    .await;
    assert_eq!(status(&gone), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn upstream_auth_is_injected_on_the_stream_and_the_posts() {
    let fake = FakeSseMcpServer::start_with(FakeOptions {
        require_authorization: Some("Bearer legacy-token".into()),
        ..FakeOptions::default()
    })
    .await;
    let transport = SseTransport::new(
        &fake.url(),
        McpAuth::Bearer {
            token: Secret::new("legacy-token"),
        },
        sse_options(),
    )
    .unwrap();
    let session = session_of(&post(&transport, None, &initialize(1), false).await);
    json_body(
        post(
            &transport,
            Some(&session),
            &call(2, "echo", json!({"text": "x"})),
            false,
        )
        .await,
    );
    let requests = fake.requests();
    assert_eq!(requests[0].method, Method::GET);
    assert_eq!(requests[0].header("accept"), Some("text/event-stream"));
    for seen in &requests {
        assert_eq!(seen.header("authorization"), Some("Bearer legacy-token"));
        assert_eq!(seen.header("x-api-key"), None);
        assert_eq!(
            seen.header("mcp-session-id"),
            None,
            "our session id is ours"
        );
    }

    // Without the right credentials the upstream's refusal is relayed.
    let refused = SseTransport::new(&fake.url(), McpAuth::None, sse_options()).unwrap();
    let reply = post(&refused, None, &initialize(1), false).await;
    assert_eq!(status(&reply), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.session_count(), 0);
}

#[tokio::test]
async fn an_upstream_that_announces_no_endpoint_is_an_upstream_error() {
    // An event stream that opens and then says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sse", listener.local_addr().unwrap());
    let _server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut sockets = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            sockets.push(socket);
        }
    });
    let options = SseOptions {
        endpoint_timeout: Duration::from_millis(200),
        ..sse_options()
    };
    let transport = SseTransport::new(&url, McpAuth::None, options).unwrap();
    let error = transport
        .send(McpMessage {
            method: Method::POST,
            headers: client_headers(None, false),
            body: initialize(1).to_string().into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, McpError::Upstream(_)), "{error:?}");
    assert_eq!(transport.session_count(), 0);
}
