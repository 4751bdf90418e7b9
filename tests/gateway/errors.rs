//! Every rejection is a JSON error with the right status and a stable code, and authenticated
//! rejections leave a usage record.

use serde_json::{json, Value};

use crate::support::{FakeOpenAi, TestServer, World};

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-request-id"));
    (status, response.json().await.expect("JSON error body"))
}

#[tokio::test]
async fn authentication_failures_are_401_json() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    World::create(&server, &upstream).await;
    let url = server.url("/v1/chat/completions");
    let body = json!({"model": "gpt-4o"});

    let (status, error) =
        error_of(server.client.post(&url).json(&body).send().await.unwrap()).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(error["error"]["type"], "authentication_error");

    let (status, error) = error_of(server.chat("sk_not_a_real_key", body.clone()).await).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let (status, error) = error_of(
        server
            .client
            .post(&url)
            .header("authorization", "Basic abc")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn every_key_carrier_is_accepted() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    let url = server.url("/v1/chat/completions");
    let body = json!({"model": "gpt-4o", "messages": []});
    let requests = [
        server.client.post(&url).header("x-api-key", &world.key),
        server.client.post(&url).header("X-API-Key", &world.key),
        server
            .client
            .post(&url)
            .header("x-goog-api-key", &world.key),
        server.client.post(format!("{url}?key={}", world.key)),
    ];
    for request in requests {
        let response = request.json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn resolution_failures_are_json_and_recorded() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;

    // A model of another family (Anthropic), granted: this OpenAI route refuses it.
    let anthropic = server
        .admin_ok(
            reqwest::Method::POST,
            &format!("/api/organisations/{}/providers", world.org),
            Some(
                json!({"type": "ANTHROPIC", "name": "Anthropic", "baseUrl": "http://127.0.0.1:9"}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin_ok(
            reqwest::Method::POST,
            &format!(
                "/api/organisations/{}/providers/{anthropic}/keys",
                world.org
            ),
            Some(json!({"name": "k", "key": "sk-ant-secret-0000000"})),
        )
        .await;
    let claude = server
        .create_model(&world.org, &anthropic, "claude", "claude-3-5")
        .await;
    server.grant(&world.org, &world.key_id, &claude).await;
    // A model that exists but is not granted to the key.
    server
        .create_model(&world.org, &world.provider, "not-granted", "gpt-x")
        .await;

    let cases: Vec<(&str, &[u8], u16, &str)> = vec![
        (
            "deny-1",
            br#"{"model":"gpt-4o","messages":["#,
            400,
            "invalid_request_body",
        ),
        ("deny-2", b"not json at all", 400, "invalid_request_body"),
        ("deny-3", br#"{"messages":[]}"#, 400, "invalid_request"),
        (
            "deny-4",
            br#"{"model":"no-such-model"}"#,
            400,
            "model_not_found",
        ),
        (
            "deny-5",
            br#"{"model":"not-granted"}"#,
            403,
            "model_not_allowed",
        ),
        (
            "deny-6",
            br#"{"model":"claude"}"#,
            400,
            "provider_not_allowed",
        ),
    ];
    for (request_id, body, status, code) in &cases {
        let response = server
            .client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&world.key)
            .header("x-request-id", *request_id)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let (got_status, error) = error_of(response).await;
        assert_eq!(got_status, *status, "{request_id}");
        assert_eq!(error["error"]["code"], *code, "{request_id}");
    }
    for (request_id, _, status, code) in &cases {
        let record = server.usage_record(&world.org, request_id).await;
        assert_eq!(record["httpStatus"], *status);
        assert_eq!(record["errorCode"], *code);
        assert_eq!(record["costNanosUsd"], 0);
    }
    assert!(
        upstream.received().is_empty(),
        "no denied request reaches the upstream"
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_json() {
    let server = TestServer::start().await;
    let response = server
        .client
        .get(server.url("/v1/nope"))
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let response = server
        .client
        .get(server.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start_with(|config| config.max_body_bytes = 1024).await;
    let world = World::create(&server, &upstream).await;
    let big = "x".repeat(4096);
    let (status, error) = error_of(
        server
            .chat(
                &world.key,
                json!({"model": "gpt-4o", "messages": [{"role": "user", "content": big}]}),
            )
            .await,
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}
