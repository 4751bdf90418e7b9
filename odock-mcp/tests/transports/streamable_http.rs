//! STREAMABLE_HTTP transport against the in-process fake streamable-HTTP MCP server.

use std::time::Duration;

use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode};
use odock_core::{GatewayError, McpError, McpMessage, McpReply, McpTransport, Secret};
use odock_mcp::framing::SseEvent;
use odock_mcp::testing::{FakeHttpMcpServer, FakeOptions};
use odock_mcp::{HttpOptions, McpAuth, StreamableHttpTransport};
use serde_json::{json, Value};

use crate::support::*;

fn transport(url: &str, auth: McpAuth) -> StreamableHttpTransport {
    StreamableHttpTransport::new(url, auth, http_options()).unwrap()
}

#[tokio::test]
async fn initialize_list_call_progress_get_and_delete_are_relayed() {
    let fake = FakeHttpMcpServer::start().await;
    let transport = transport(&fake.url(), McpAuth::None);

    let reply = post(&transport, None, &initialize(1), true).await;
    assert_eq!(status(&reply), StatusCode::OK);
    let session = session_of(&reply);
    assert_eq!(
        session, "fake-session-1",
        "the upstream's session id is relayed"
    );
    assert_eq!(
        json_body(reply)["result"]["serverInfo"]["name"],
        "odock-fake-mcp"
    );

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
    let echo = json_body(
        post(
            &transport,
            Some(&session),
            &call(3, "echo", json!({"text": "over http"})),
            true,
        )
        .await,
    );
    assert_eq!(tool_text(&echo), "over http");

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
    assert_eq!(messages[1]["params"]["progress"], 2);
    assert_eq!(tool_text(&messages[2]), "done after 2 steps");

    // GET: the server stream, with event ids kept and Last-Event-ID passed through.
    let mut headers = client_headers(Some(&session), true);
    headers.insert("last-event-id", HeaderValue::from_static("ev-0"));
    let reply = transport
        .send(McpMessage {
            method: Method::GET,
            headers,
            body: Default::default(),
        })
        .await
        .unwrap();
    let McpReply::Stream { events, .. } = reply else {
        panic!("GET is a stream")
    };
    let events: Vec<_> = events.collect().await;
    let event = SseEvent::parse(events[0].as_ref().unwrap()).unwrap();
    assert_eq!(event.id.as_deref(), Some("ev-1"));
    let note: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(note["params"]["lastEventId"], "ev-0");

    assert_eq!(status(&delete(&transport, &session).await), StatusCode::OK);
    assert_eq!(fake.session_count(), 0);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.header("authorization").is_none() && r.header("x-api-key").is_none()),
        "with auth NONE the upstream sees no credentials at all"
    );
    let methods: Vec<Method> = fake.requests().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods.iter().filter(|m| **m == Method::DELETE).count(), 1);
}

#[tokio::test]
async fn events_are_relayed_as_they_arrive_not_after_the_stream_ends() {
    let fake = FakeHttpMcpServer::start().await;
    let transport = transport(&fake.url(), McpAuth::None);
    let session = session_of(&post(&transport, None, &initialize(1), true).await);
    let gated = call(2, "slow_progress", json!({"steps": 1, "gate": true}));
    let McpReply::Stream { mut events, .. } = post(&transport, Some(&session), &gated, true).await
    else {
        panic!("a progress reply is a stream");
    };
    // The upstream holds its result until the gate opens: the progress event must already be here.
    let first = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("the first event arrives before the upstream finishes")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("notifications/progress"));
    fake.release_gate();
    let result = events.next().await.unwrap().unwrap();
    let result: Value = serde_json::from_str(&SseEvent::parse(&result).unwrap().data).unwrap();
    assert_eq!(result["id"], 2);
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn only_allow_listed_headers_reach_the_upstream_and_bearer_auth_is_injected() {
    let fake = FakeHttpMcpServer::start_with(FakeOptions {
        require_authorization: Some("Bearer upstream-token".into()),
        ..FakeOptions::default()
    })
    .await;
    let transport = transport(
        &fake.url(),
        McpAuth::Bearer {
            token: Secret::new("upstream-token"),
        },
    );
    let mut headers = client_headers(None, true);
    for (name, value) in [
        ("cookie", "odock_session=abc"),
        ("x-goog-api-key", "sk_odock_client_key"),
        ("host", "gateway.example"),
        ("connection", "keep-alive"),
        ("accept-encoding", "gzip"),
        ("x-trace", "t-1"),
        ("metadata-flavor", "Google"),
        ("x-aws-ec2-metadata-token", "imds-token"),
        ("x-forwarded-for", "10.0.0.1"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let reply = transport
        .send(McpMessage {
            method: Method::POST,
            headers,
            body: initialize(1).to_string().into(),
        })
        .await
        .unwrap();
    assert_eq!(status(&reply), StatusCode::OK);
    let McpReply::Json {
        headers: reply_headers,
        ..
    } = &reply
    else {
        panic!("JSON reply")
    };
    // Back to the client: the MCP headers, not the upstream's own.
    assert!(reply_headers.get("x-fake-upstream").is_none());
    assert!(reply_headers.get("mcp-session-id").is_some());

    let seen = &fake.requests()[0];
    assert_eq!(seen.header("authorization"), Some("Bearer upstream-token"));
    for stripped in [
        "x-api-key",
        "x-goog-api-key",
        "cookie",
        "accept-encoding",
        "x-trace",
        "metadata-flavor",
        "x-aws-ec2-metadata-token",
        "x-forwarded-for",
    ] {
        assert_eq!(
            seen.header(stripped),
            None,
            "{stripped} must not be forwarded"
        );
    }
    assert_ne!(seen.header("host"), Some("gateway.example"));
    assert_eq!(seen.header("mcp-protocol-version"), Some("2025-06-18"));
    assert_eq!(
        seen.header("accept"),
        Some("application/json, text/event-stream")
    );
    assert_eq!(seen.json().unwrap()["method"], "initialize");
}

#[tokio::test]
async fn basic_auth_is_injected_and_upstream_refusals_are_relayed() {
    let fake = FakeHttpMcpServer::start_with(FakeOptions {
        require_authorization: Some("Basic YWxpY2U6czNjcmV0".into()),
        ..FakeOptions::default()
    })
    .await;
    let good = transport(
        &fake.url(),
        McpAuth::Basic {
            username: "alice".into(),
            password: Secret::new("s3cret"),
        },
    );
    assert_eq!(
        status(&post(&good, None, &initialize(1), false).await),
        StatusCode::OK
    );

    let wrong = transport(
        &fake.url(),
        McpAuth::Basic {
            username: "alice".into(),
            password: Secret::new("nope"),
        },
    );
    let refused = post(&wrong, None, &initialize(1), false).await;
    let McpReply::Json {
        status,
        headers,
        body,
    } = refused
    else {
        panic!("JSON reply")
    };
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(&body[..], br#"{"error":"unauthorized"}"#);
    assert!(
        headers.get("www-authenticate").is_none(),
        "the upstream's challenge is not relayed"
    );
}

#[tokio::test]
async fn connection_failures_and_timeouts_are_upstream_errors() {
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let error = transport(&url, McpAuth::None)
        .send(McpMessage {
            method: Method::POST,
            headers: client_headers(None, false),
            body: initialize(1).to_string().into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, McpError::Upstream(_)), "{error:?}");
    assert_eq!(GatewayError::from(error).code(), "mcp_upstream_error");

    // A server that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let options = HttpOptions {
        request_timeout: Duration::from_millis(200),
        ..http_options()
    };
    let error = StreamableHttpTransport::new(&url, McpAuth::None, options)
        .unwrap()
        .send(McpMessage {
            method: Method::POST,
            headers: client_headers(None, false),
            body: initialize(1).to_string().into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, McpError::Upstream(_)), "{error:?}");
}

#[tokio::test]
async fn malformed_bodies_are_relayed_to_the_upstream_which_answers() {
    let fake = FakeHttpMcpServer::start().await;
    let transport = transport(&fake.url(), McpAuth::None);
    let reply = transport
        .send(McpMessage {
            method: Method::POST,
            headers: client_headers(None, false),
            body: "{not json".into(),
        })
        .await
        .unwrap();
    assert_eq!(status(&reply), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(reply)["error"]["code"], -32700);
}
