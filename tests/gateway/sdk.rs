//! The unmodified OpenAI Python SDK against the gateway (chat unary and streaming with usage,
//! embeddings, the Responses API unary and streaming, and an authentication error it must parse). Runs when `python3` can import `openai`; CI installs it and
//! sets `ODOCK_REQUIRE_SDK_TESTS=1` so a missing SDK fails there instead of skipping.

use crate::support::{python_module_available, run_python_script, FakeOpenAi, TestServer, World};

#[tokio::test]
async fn the_openai_python_sdk_works_unmodified() {
    if !python_module_available("openai", "openai") {
        return;
    }
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    let embedder = server
        .create_priced_model(
            &world.org,
            &world.provider,
            "embedder",
            "text-embedding-3-small",
            "embeddings",
            serde_json::json!({"embeddings": 20_000_000}),
        )
        .await;
    server.grant(&world.org, &world.key_id, &embedder).await;
    let result = run_python_script(
        "openai_sdk.py",
        &[&server.url("/v1"), &world.key, "gpt-4o", "embedder"],
    )
    .await;
    assert_eq!(result["unary"], "Hello world");
    assert_eq!(result["unary_usage"], 659);
    assert_eq!(result["stream"], "Hello world");
    assert_eq!(result["stream_usage"], 659);
    assert_eq!(result["embeddings"]["count"], 2);
    assert_eq!(result["embeddings"]["dimensions"], 3);
    assert_eq!(result["embeddings"]["usage"], 8);
    assert_eq!(result["response"]["text"], "Hello world");
    assert_eq!(result["response"]["usage"], 50);
    assert_eq!(result["response"]["stream_text"], "Hello world");
    assert_eq!(result["response"]["stream_usage"], 50);
    assert_eq!(result["response"]["last_event"], "response.completed");
    assert_eq!(result["error"]["status"], 401);
    assert_eq!(result["error"]["code"], "unauthorized");
}
