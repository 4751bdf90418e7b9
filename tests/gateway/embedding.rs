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
    let (app, mut background) = example::app(usage.clone());
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
    // The library route table serves the other LLM routes too (here: the model list).
    let models = app
        .clone()
        .oneshot(
            http::Request::get("/v1/models")
                .header("authorization", "Bearer sk_demo")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    background.shutdown().await;
    assert_eq!(background.running_tasks(), 0);
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

#[path = "../../examples/custom_provider.rs"]
#[allow(dead_code)]
mod custom_provider;

#[path = "../../examples/custom_key_store.rs"]
#[allow(dead_code)]
mod custom_key_store;

/// A chat call to `app`; returns the status and JSON body.
async fn call(app: &axum::Router, key: &str, body: Value) -> (u16, Value) {
    let request = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {key}"))
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A fake of the in-house service `examples/custom_provider.rs` talks to: answers `/generate`
/// (the prompt upper-cased) to the right bearer token, 500 to a prompt of "fail".
async fn in_house_service() -> String {
    use axum::routing::post;
    let generate = |headers: http::HeaderMap, axum::Json(body): axum::Json<Value>| async move {
        let authorised = headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer token-for-the-service");
        let prompt = body["prompt"].as_str().unwrap_or_default().to_owned();
        match (authorised, prompt.as_str()) {
            (false, _) => (http::StatusCode::UNAUTHORIZED, axum::Json(json!({}))),
            (true, "fail") => (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": "boom"})),
            ),
            (true, _) => (
                http::StatusCode::OK,
                axum::Json(
                    json!({"text": prompt.to_uppercase(), "tokens_in": 10, "tokens_out": 4}),
                ),
            ),
        }
    };
    let app = axum::Router::new().route("/generate", post(generate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_custom_provider_translates_and_reports_what_is_billed() {
    let usage = odock::core::InMemoryUsageSink::new();
    let app = custom_provider::app(&in_house_service().await, usage.clone());
    let chat = |content: &str| json!({"model": "house-llm", "messages": [{"role": "user", "content": content}]});

    let (status, body) = call(&app, "sk_app", chat("hello house")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "HELLO HOUSE");
    assert_eq!(body["usage"]["prompt_tokens"], 10);
    let records = usage.records();
    assert_eq!(records.len(), 1);
    // 10 in × $0.50/1M + 4 out × $1.50/1M = 11,000 nanos.
    assert_eq!((records[0].tokens.input, records[0].tokens.output), (10, 4));
    assert_eq!(records[0].cost_nanos_usd, 11_000);
    assert_eq!(records[0].model.as_deref(), Some("house-llm"));

    // The service failing is a gateway error with a stable code, recorded, not billed.
    let (status, body) = call(&app, "sk_app", chat("fail")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("upstream_error")),
        "{body}"
    );
    // What the provider refuses before calling is the client's error.
    let mut stream = chat("hi");
    stream["stream"] = json!(true);
    let (status, body) = call(&app, "sk_app", stream).await;
    assert_eq!(status, 400, "{body}");
    let records = usage.records();
    assert_eq!(records.len(), 3);
    assert!(records[1..]
        .iter()
        .all(|r| r.cost_nanos_usd == 0 && r.http_status >= 400));
}

#[tokio::test]
async fn a_custom_key_store_decides_who_may_use_which_model() {
    let usage = odock::core::InMemoryUsageSink::new();
    let app = custom_key_store::app(usage.clone());
    let chat =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(call(&app, "sk_basic", chat("small")).await.0, 200);
    let (status, body) = call(&app, "sk_basic", chat("large")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed")),
        "{body}"
    );
    assert_eq!(call(&app, "sk_pro", chat("large")).await.0, 200);
    assert_eq!(call(&app, "sk_unknown", chat("small")).await.0, 401);
    // Usage is attributed to the team the store named.
    let served: Vec<_> = usage
        .records()
        .into_iter()
        .filter(|r| r.http_status == 200)
        .map(|r| r.api_key_id.to_string())
        .collect();
    assert_eq!(served, ["team-basic", "team-pro"]);
}
