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

#[path = "../../examples/governed_handler.rs"]
#[allow(dead_code)]
mod own_handler;

/// `examples/governed_handler.rs`: Odock's stack in front of the embedder's own handler. The
/// handler is reached only with a valid, granted key; what it reports is billed; the budget holds.
#[tokio::test]
async fn governance_wraps_an_embedders_own_handler() {
    let usage = odock::core::InMemoryUsageSink::new();
    let app = own_handler::app(usage.clone());
    let call = |key: &'static str, model: &'static str| {
        let app = app.clone();
        async move {
            let request = http::Request::post("/v1/chat/completions")
                .header("authorization", format!("Bearer {key}"))
                .body(axum::body::Body::from(
                    json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "one two three four"}]})
                        .to_string(),
                ))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = call("sk_team", "echo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "one two three four"
    );
    // Refusals come from the stack, before the handler: no key, an ungranted model.
    assert_eq!(call("sk_nobody", "echo").await.0, 401);
    let (status, body) = call("sk_team", "gpt-4o").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("model_not_found"))
    );

    let records = usage.records();
    let served: Vec<_> = records.iter().filter(|r| r.http_status == 200).collect();
    assert_eq!(served.len(), 1);
    // 4 words in, 4 out, at $1 per 1M tokens each: 8,000 nanos.
    assert_eq!((served[0].tokens.input, served[0].tokens.output), (4, 4));
    assert_eq!(served[0].cost_nanos_usd, 8_000);

    // The $0.001 budget: the handler's own usage fills it and the stack refuses with 402.
    let mut answered = 1;
    let refusal = loop {
        let (status, body) = call("sk_team", "echo").await;
        if status != 200 {
            break (status, body);
        }
        answered += 1;
        assert!(answered < 10_000, "the budget never refused");
    };
    assert_eq!(refusal.0, 402, "{}", refusal.1);
    let billed: i64 = usage.records().iter().map(|r| r.cost_nanos_usd).sum();
    assert!(billed <= 1_000_000, "never over the budget: {billed}");
}
