//! `examples/embed_axum.rs` does what it says: the governed route authenticates, meters and
//! enforces the budget in someone else's axum app.

use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

#[path = "../../examples/embed_axum.rs"]
#[allow(dead_code)]
mod example;

async fn chat(app: &axum::Router, key: &str) -> (u16, Value) {
    let request = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(axum::body::Body::from(
            json!({"model": "demo", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
        ))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_embedding_example_governs_its_key_with_a_daily_budget() {
    let usage = odock::core::InMemoryUsageSink::new();
    let app = example::app(usage.clone());
    assert_eq!(chat(&app, "sk_wrong").await.0, 401);
    let mut answered = 0;
    let refusal = loop {
        let (status, body) = chat(&app, "sk_demo").await;
        if status != 200 {
            break (status, body);
        }
        answered += 1;
        assert!(answered < 1_000, "the budget never refused");
    };
    assert_eq!(refusal.0, 402, "{}", refusal.1);
    assert_eq!(refusal.1["error"]["code"], "budget_exceeded");
    assert!(answered >= 1);
    // Every answered request was recorded and billed; their cost fits the one-cent budget.
    let records = usage.records();
    let billed: i64 = records.iter().map(|r| r.cost_nanos_usd).sum();
    assert!(records.iter().filter(|r| r.http_status == 200).count() == answered);
    assert!(billed > 0 && billed <= 10_000_000, "{billed}");
    // The ordinary route is untouched.
    let hello = app
        .clone()
        .oneshot(
            http::Request::get("/hello")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
}
