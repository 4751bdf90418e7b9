//! Rate-limit policies on keys, organisations and models, through the real server and the admin API.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{FakeOpenAi, TestServer, World};

async fn set_key_policy(server: &TestServer, world: &World, policies: Value) {
    server
        .admin_ok(
            reqwest::Method::PATCH,
            &format!("/api/organisations/{}/apikeys/{}", world.org, world.key_id),
            Some(json!({"policies": policies})),
        )
        .await;
}

fn chat_body() -> Value {
    json!({"model": "gpt-4o", "max_tokens": 644, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test]
async fn requests_per_minute_on_a_key_admit_the_limit_then_say_when_to_retry() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    set_key_policy(&server, &world, json!({"requestsPerMinute": 3})).await;

    for expected_remaining in ["2", "1", "0"] {
        let response = server.chat(&world.key, chat_body()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit-requests"], "3");
        assert_eq!(
            response.headers()["x-ratelimit-remaining-requests"],
            expected_remaining
        );
    }
    let response = server.chat(&world.key, chat_body()).await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["scope"], "api_key");
    assert_eq!(body["error"]["limit"], "requests_per_minute");
    assert_eq!(upstream.received().len(), 3);
    // The refused request's record names the rule (records are written in batches).
    let path = format!("/api/organisations/{}/usage-records?status=429", world.org);
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let list = server.admin_ok(reqwest::Method::GET, &path, None).await;
        if let Some(record) = list["data"].get(0) {
            break record.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the refused request was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        record["metadata"]["deniedBy"],
        "rate limit `requests_per_minute` on scope `api_key`"
    );
}

#[tokio::test]
async fn an_organisation_ip_blocklist_refuses_the_client() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    assert_eq!(server.chat(&world.key, chat_body()).await.status(), 200);
    server
        .admin_ok(
            reqwest::Method::PATCH,
            &format!("/api/organisations/{}/settings", world.org),
            Some(json!({"policies": {"ipBlocklist": ["127.0.0.0/8"]}})),
        )
        .await;
    let response = server.chat(&world.key, chat_body()).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ip_not_allowed");
}

/// Behind a trusted proxy the client is the first untrusted `X-Forwarded-For` hop; anyone else's
/// `X-Forwarded-For` is ignored, so a client cannot claim an allowed address.
#[tokio::test]
async fn an_allowlist_sees_the_client_behind_a_trusted_proxy_and_ignores_spoofed_headers() {
    let upstream = FakeOpenAi::start().await;
    let behind_proxy =
        TestServer::start_with(|config| config.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let direct = TestServer::start().await;
    for (server, forwarded_client_counts) in [(&behind_proxy, true), (&direct, false)] {
        let world = World::create(server, &upstream).await;
        set_key_policy(server, &world, json!({"ipAllowlist": ["198.51.100.7"]})).await;
        let send = |forwarded: Option<&'static str>| {
            let mut request = server
                .client
                .post(server.url("/v1/chat/completions"))
                .bearer_auth(&world.key)
                .json(&chat_body());
            if let Some(forwarded) = forwarded {
                request = request.header("x-forwarded-for", forwarded);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        // A spoofed leftmost entry never counts; the hop the proxy appended does.
        let allowed = if forwarded_client_counts { 200 } else { 403 };
        assert_eq!(send(Some("6.6.6.6, 198.51.100.7")).await, allowed);
        assert_eq!(send(Some("198.51.100.7, 6.6.6.6")).await, 403);
        assert_eq!(send(None).await, 403);
    }
}

#[tokio::test]
async fn a_model_byte_limit_is_413_and_a_token_cap_is_429() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    server
        .admin_ok(
            reqwest::Method::PATCH,
            &format!("/api/organisations/{}/models/{}", world.org, world.model),
            Some(json!({"policies": {"maxRequestBytes": 300, "maxTokensPerRequest": 1000}})),
        )
        .await;
    let long = json!({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "x".repeat(400)}]});
    let response = server.chat(&world.key, long).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let greedy = json!({"model": "gpt-4o", "max_tokens": 5000, "messages": [{"role": "user", "content": "Hi"}]});
    let response = server.chat(&world.key, greedy).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["scope"], "model");
    assert_eq!(body["error"]["limit"], "max_tokens_per_request");
    assert_eq!(server.chat(&world.key, chat_body()).await.status(), 200);
}

#[tokio::test]
async fn tokens_per_minute_count_the_estimate_and_reconcile_to_actual_usage() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    set_key_policy(&server, &world, json!({"tokensPerMinute": 1000})).await;
    // Estimate 1 + 644 tokens: admitted; actual usage 15 + 644 = 659 stays in the window.
    let response = server.chat(&world.key, chat_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit-tokens"], "1000");
    let response = server.chat(&world.key, chat_body()).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["limit"], "tokens_per_minute");
    // A small request still fits in what is left.
    let small = json!({"model": "gpt-4o", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(server.chat(&world.key, small).await.status(), 200);
}

#[tokio::test]
async fn concurrent_requests_are_capped_and_the_slot_returns_when_the_stream_ends() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    let endless = server
        .create_model(&world.org, &world.provider, "endless-model", "endless")
        .await;
    server.grant(&world.org, &world.key_id, &endless).await;
    set_key_policy(&server, &world, json!({"maxConcurrentRequests": 1})).await;

    let mut stream = server
        .chat(
            &world.key,
            json!({"model": "endless-model", "stream": true, "messages": []}),
        )
        .await;
    assert_eq!(stream.status(), 200);
    stream.chunk().await.unwrap().expect("stream started");
    let response = server.chat(&world.key, chat_body()).await;
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["limit"], "max_concurrent_requests");
    drop(stream);

    // The slot comes back once the aborted stream is recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.chat(&world.key, chat_body()).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(
            Instant::now() < deadline,
            "the concurrency slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
