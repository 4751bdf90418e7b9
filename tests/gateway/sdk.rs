//! The unmodified OpenAI Python SDK against the gateway (chat unary and streaming with usage,
//! embeddings, the Responses API unary and streaming, and an authentication error it must parse). Runs when `python3` can import `openai`; CI installs it and
//! sets `ODOCK_REQUIRE_SDK_TESTS=1` so a missing SDK fails there instead of skipping.

use serde_json::Value;

use crate::support::{FakeOpenAi, TestServer, World};

fn sdk_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn the_openai_python_sdk_works_unmodified() {
    if !sdk_available() {
        assert!(
            std::env::var("ODOCK_REQUIRE_SDK_TESTS").is_err(),
            "ODOCK_REQUIRE_SDK_TESTS is set but the openai Python package is missing"
        );
        eprintln!("skipped: python3 cannot import openai (pip install openai to run this test)");
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/openai_sdk.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &server.url("/v1"), &world.key, "gpt-4o", "embedder"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
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
