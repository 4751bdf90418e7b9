//! Upstream auth injection: OAuth2 client-credentials tokens fetched, cached and refetched, against
//! the fake server's token endpoint.

use std::sync::Arc;

use chrono::Utc;
use http::StatusCode;
use odock_core::{GatewayError, ManualClock, McpError, Secret};
use odock_mcp::testing::{FakeHttpMcpServer, FakeOptions};
use odock_mcp::{McpAuth, StreamableHttpTransport, UpstreamAuth};
use serde_json::json;

use crate::support::*;

fn oauth(fake: &FakeHttpMcpServer) -> McpAuth {
    McpAuth::OAuth2ClientCredentials {
        token_url: fake.token_url(),
        client_id: "odock-client".into(),
        client_secret: Secret::new("client-secret-value"),
        scope: Some("mcp:tools".into()),
        audience: Some("https://mcp.example".into()),
    }
}

fn transport(fake: &FakeHttpMcpServer, auth: Arc<UpstreamAuth>) -> StreamableHttpTransport {
    StreamableHttpTransport::with_client(&fake.url(), reqwest::Client::new(), auth, http_options())
        .unwrap()
}

#[tokio::test]
async fn oauth2_tokens_are_cached_until_expiry_then_refetched() {
    let fake = FakeHttpMcpServer::start_with(FakeOptions {
        token_expires_in: Some(3600),
        ..FakeOptions::default()
    })
    .await;
    let clock = ManualClock::new(Utc::now());
    let auth = Arc::new(
        UpstreamAuth::with_clock(
            oauth(&fake),
            reqwest::Client::new(),
            Arc::new(clock.clone()),
        )
        .with_egress(loopback()),
    );
    let transport = transport(&fake, auth.clone());

    let session = session_of(&post(&transport, None, &initialize(1), false).await);
    for id in 2..5 {
        json_body(
            post(
                &transport,
                Some(&session),
                &request(id, "ping", json!({})),
                false,
            )
            .await,
        );
    }
    assert_eq!(
        auth.token_fetches(),
        1,
        "one token serves every call while valid"
    );
    assert_eq!(fake.token_requests().len(), 1);
    let token_request = &fake.token_requests()[0];
    let form = String::from_utf8_lossy(&token_request.body).into_owned();
    for field in [
        "grant_type=client_credentials",
        "client_id=odock-client",
        "client_secret=client-secret-value",
        "scope=mcp%3Atools",
        "audience=https%3A%2F%2Fmcp.example",
    ] {
        assert!(form.contains(field), "{field} missing from {form}");
    }
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer tok-1")));

    // Still inside the safety margin: cached. Past it: refetched.
    clock.advance(chrono::Duration::seconds(3500));
    json_body(
        post(
            &transport,
            Some(&session),
            &request(5, "ping", json!({})),
            false,
        )
        .await,
    );
    assert_eq!(auth.token_fetches(), 1);
    clock.advance(chrono::Duration::seconds(80));
    json_body(
        post(
            &transport,
            Some(&session),
            &request(6, "ping", json!({})),
            false,
        )
        .await,
    );
    assert_eq!(auth.token_fetches(), 2);
    assert_eq!(
        fake.requests().last().unwrap().header("authorization"),
        Some("Bearer tok-2")
    );
}

#[tokio::test]
async fn concurrent_calls_share_one_token_fetch() {
    let fake = FakeHttpMcpServer::start().await;
    let auth =
        Arc::new(UpstreamAuth::new(oauth(&fake), reqwest::Client::new()).with_egress(loopback()));
    let mut calls = Vec::new();
    for _ in 0..10 {
        let auth = auth.clone();
        calls.push(tokio::spawn(async move {
            auth.authorization().await.unwrap().unwrap()
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), "Bearer tok-1");
    }
    assert_eq!(auth.token_fetches(), 1);
}

#[tokio::test]
async fn an_upstream_401_drops_the_cached_token() {
    let fake = FakeHttpMcpServer::start().await;
    let auth =
        Arc::new(UpstreamAuth::new(oauth(&fake), reqwest::Client::new()).with_egress(loopback()));
    let transport = transport(&fake, auth.clone());
    assert_eq!(
        status(&post(&transport, None, &initialize(1), false).await),
        StatusCode::OK
    );
    // The upstream now wants the next token: the stale one is refused once, then replaced.
    fake.set_options(FakeOptions {
        require_authorization: Some("Bearer tok-2".into()),
        ..FakeOptions::default()
    });
    assert_eq!(
        status(&post(&transport, None, &initialize(1), false).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&post(&transport, None, &initialize(1), false).await),
        StatusCode::OK
    );
    assert_eq!(auth.token_fetches(), 2);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_an_auth_error_that_leaks_no_secret() {
    let fake = FakeHttpMcpServer::start_with(FakeOptions {
        token_status: StatusCode::UNAUTHORIZED,
        ..FakeOptions::default()
    })
    .await;
    let auth =
        Arc::new(UpstreamAuth::new(oauth(&fake), reqwest::Client::new()).with_egress(loopback()));
    let transport = transport(&fake, auth);
    let error = odock_core::McpTransport::send(
        &transport,
        odock_core::McpMessage {
            method: http::Method::POST,
            headers: client_headers(None, false),
            body: initialize(1).to_string().into(),
        },
    )
    .await
    .unwrap_err();
    let McpError::Auth(message) = &error else {
        panic!("expected an auth error, got {error:?}")
    };
    assert!(!message.contains("client-secret-value"));
    assert_eq!(GatewayError::from(error.clone()).code(), "mcp_auth_error");
    assert_eq!(GatewayError::from(error).status(), StatusCode::BAD_GATEWAY);
    assert!(
        fake.requests().is_empty(),
        "nothing reaches the MCP server without credentials"
    );

    // An unreachable token endpoint too.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token_url = format!("http://{}/token", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = UpstreamAuth::new(
        McpAuth::OAuth2ClientCredentials {
            token_url,
            client_id: "c".into(),
            client_secret: Secret::new("client-secret-value"),
            scope: None,
            audience: None,
        },
        reqwest::Client::new(),
    )
    .with_egress(loopback());
    let error = unreachable.authorization().await.unwrap_err();
    assert!(matches!(&error, McpError::Auth(m) if !m.contains("client-secret-value")));
}
