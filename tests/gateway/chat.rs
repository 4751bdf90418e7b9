//! The OpenAI-compatible chat path end to end: forwarding, streaming, metering, pricing.

use serde_json::json;

use crate::support::{FakeOpenAi, TestServer, World, UPSTREAM_SECRET};

#[tokio::test]
async fn unary_chat_is_forwarded_with_the_slug_and_provider_key_and_recorded_with_exact_cost() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;

    let response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("x-request-id", "client-req-0001")
        .header("content-type", "application/json")
        // Unknown fields and their exact formatting must reach the upstream untouched.
        .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"x_vendor_flag":{"keep":[1, 2.50, "me"]}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "client-req-0001");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello world");

    let received = upstream.last();
    assert_eq!(
        received.headers["authorization"],
        format!("Bearer {UPSTREAM_SECRET}")
    );
    let raw = String::from_utf8(received.body.to_vec()).unwrap();
    assert!(raw.contains(r#""model":"gpt-4o-upstream""#), "{raw}");
    assert!(
        raw.contains(r#""x_vendor_flag":{"keep":[1, 2.50, "me"]}"#),
        "{raw}"
    );
    for (name, value) in received.headers.iter() {
        assert!(
            !value.to_str().unwrap_or_default().contains(&world.key),
            "virtual key leaked in {name}"
        );
    }
    assert!(!raw.contains(&world.key));

    let record = server.usage_record(&world.org, "client-req-0001").await;
    assert_eq!(record["httpStatus"], 200);
    assert_eq!(record["apiKeyId"], world.key_id);
    assert_eq!(record["organisationId"], world.org);
    assert_eq!(record["model"], "gpt-4o");
    assert_eq!(record["modelId"], world.model);
    assert_eq!(record["provider"], "openai");
    assert_eq!(record["stream"], false);
    assert_eq!(record["tokens"]["input"], 15);
    assert_eq!(record["tokens"]["output"], 644);
    // 15 × $2/1M + 644 × $8/1M = 30,000 + 5,152,000 nanos.
    assert_eq!(record["costNanosUsd"], 5_182_000);
    assert_eq!(record["providerRequestId"], "chatcmpl-fake");
    let text = record.to_string();
    assert!(!text.contains(&world.key) && !text.contains(UPSTREAM_SECRET));
}

#[tokio::test]
async fn streamed_chat_is_relayed_and_billed_from_the_stream_usage() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;

    let response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("x-request-id", "stream-req-1")
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    assert!(
        text.contains("\"Hello\"") && text.contains("\" world\""),
        "{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // The gateway asked for usage to bill exactly, but the client did not: the chunk is hidden.
    assert!(!text.contains("\"usage\""), "{text}");
    let sent = upstream.last().json();
    assert_eq!(sent["stream_options"]["include_usage"], true);

    let record = server.usage_record(&world.org, "stream-req-1").await;
    assert_eq!(record["stream"], true);
    assert_eq!(record["tokens"]["output"], 644);
    assert_eq!(record["costNanosUsd"], 5_182_000);
}

#[tokio::test]
async fn a_client_asking_for_stream_usage_receives_it() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    for body in [
        json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}}),
        json!({"model": "gpt-4o", "stream": true, "include_usage": true}),
    ] {
        let text = server.chat(&world.key, body).await.text().await.unwrap();
        assert!(text.contains("\"usage\""), "{text}");
        // Odock's top-level convention is not forwarded (OpenAI would reject it).
        assert!(upstream.last().json().get("include_usage").is_none());
    }
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_still_leaves_a_billed_record() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    let endless = server
        .create_model(&world.org, &world.provider, "endless-model", "endless")
        .await;
    server.grant(&world.org, &world.key_id, &endless).await;

    let mut response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("x-request-id", "abort-req-1")
        .json(&json!({"model": "endless-model", "stream": true, "messages": [{"role": "user", "content": "Tell me everything"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0;
    while received < 5 {
        let chunk = response.chunk().await.unwrap().expect("stream continues");
        received += usize::from(!chunk.is_empty());
    }
    drop(response);

    let record = server.usage_record(&world.org, "abort-req-1").await;
    assert_eq!(record["stream"], true);
    assert_eq!(record["errorCode"], "client_disconnected");
    assert_eq!(record["metadata"]["outcome"], "client_aborted");
    assert!(record["tokens"]["output"].as_u64().unwrap() > 0, "{record}");
    assert!(record["costNanosUsd"].as_i64().unwrap() > 0, "{record}");
}

#[tokio::test]
async fn upstream_errors_are_relayed_and_unreachable_or_slow_upstreams_become_gateway_errors() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    let failing = server
        .create_model(&world.org, &world.provider, "failing", "fail-500")
        .await;
    let slow = server
        .create_model(&world.org, &world.provider, "sleepy", "slow")
        .await;
    server.grant(&world.org, &world.key_id, &failing).await;
    server.grant(&world.org, &world.key_id, &slow).await;

    let response = server
        .chat(&world.key, json!({"model": "failing", "messages": []}))
        .await;
    assert_eq!(response.status(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "upstream exploded");

    let response = server
        .chat(&world.key, json!({"model": "sleepy", "messages": []}))
        .await;
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");

    // A provider whose upstream refuses connections.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let dead = server
        .admin_ok(
            reqwest::Method::POST,
            &format!("/api/organisations/{}/providers", world.org),
            Some(json!({"type": "CUSTOM", "name": "down", "baseUrl": dead_url})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin_ok(
            reqwest::Method::POST,
            &format!("/api/organisations/{}/providers/{dead}/keys", world.org),
            Some(json!({"name": "k", "key": "sk-dead-upstream-key-000"})),
        )
        .await;
    let unreachable = server
        .create_model(&world.org, &dead, "unreachable", "gpt-x")
        .await;
    server.grant(&world.org, &world.key_id, &unreachable).await;
    let response = server
        .chat(&world.key, json!({"model": "unreachable", "messages": []}))
        .await;
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_error");
    assert!(!body.to_string().contains("sk-dead-upstream-key-000"));
}

/// A stream dropped right after its first chunk (the role delta, no text yet) is still billed:
/// the prompt reached the provider, which charges it (DECISIONS: a stream is never free).
#[tokio::test]
async fn a_stream_aborted_after_its_first_chunk_is_billed_for_its_prompt() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    let hesitant = server
        .create_model(&world.org, &world.provider, "hesitant-model", "hesitant")
        .await;
    server.grant(&world.org, &world.key_id, &hesitant).await;

    let mut response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("x-request-id", "abort-first-chunk")
        .json(&json!({"model": "hesitant-model", "stream": true,
                      "messages": [{"role": "user", "content": "A prompt of exactly forty bytes, okay!!!"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("the role delta");
    assert!(String::from_utf8_lossy(&first).contains("\"role\":\"assistant\""));
    drop(response);

    let record = server.usage_record(&world.org, "abort-first-chunk").await;
    assert_eq!(record["errorCode"], "client_disconnected");
    assert_eq!(record["metadata"]["usageEstimated"], true, "{record}");
    assert_eq!(
        record["tokens"]["input"], 10,
        "⌈40 prompt bytes / 4⌉: {record}"
    );
    assert_eq!(record["tokens"]["output"], 0);
    // 10 input tokens at $2/1M.
    assert_eq!(record["costNanosUsd"], 20_000, "{record}");
}
