//! Smart routing end to end: per-key policies (`GET|PUT /apikeys/{id}/routing`) behind the
//! organisation's `routingEnabled` switch, each strategy's attempt order, the triggers (and what
//! never fails over), streams before and after their first byte, cross-family failover on
//! `/v1/llm/chat`, exact governance (one admission at the most expensive candidate's estimate, one
//! record priced at the answering model) and circuit breakers on a hand-moved clock.
//!
//! The fake upstream speaks OpenAI's chat wire format and behaves by the model slug it receives:
//! `fail-500…` (500), `fail-400…` (400), `fail-429…` (429 with `Retry-After: 7`), `hang…` (answers
//! after 5 s), `close-before…` (a 200 whose body breaks before the first byte), `close-after…` (one
//! content chunk, then the connection breaks), `toggle…` (500 while the shared switch says so),
//! anything else a normal answer whose content is `from <slug>` (10 prompt, 20 completion tokens).
//! A request presenting the provider key `…dead-upstream-key…` is answered 401.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::fake_anthropic::FakeAnthropic;
use crate::support::upstream::{json_response, FakeUpstream, Received};
use crate::support::{TestServer, UPSTREAM_SECRET};

const PROMPT_TOKENS: i64 = 10;
const COMPLETION_TOKENS: i64 = 20;

fn chunk(slug: &str, delta: Value, finish: Option<&str>) -> String {
    let event = json!({"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": slug,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {event}\n\n")
}

fn usage() -> Value {
    json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
           "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS})
}

fn sse(body: Body) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

fn answer(slug: &str, streamed: bool) -> Response {
    let text = format!("from {slug}");
    if !streamed {
        return json_response(
            StatusCode::OK,
            json!({"id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": slug,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                   "usage": usage()}),
        );
    }
    let usage_chunk = json!({"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1,
        "model": slug, "choices": [], "usage": usage()});
    let events = [
        chunk(slug, json!({"role": "assistant", "content": text}), None),
        chunk(slug, json!({}), Some("stop")),
        format!("data: {usage_chunk}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ];
    sse(Body::from(events.concat()))
}

fn broken(before: Option<String>) -> Body {
    let first = before.map(|event| Ok::<_, std::io::Error>(Bytes::from(event)));
    Body::from_stream(stream::iter(first).chain(stream::once(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(std::io::Error::other("connection reset by fake"))
    })))
}

async fn behave(received: Received, failing: Arc<AtomicBool>) -> Response {
    let request: Value = serde_json::from_slice(&received.body).unwrap_or(Value::Null);
    let slug = request["model"].as_str().unwrap_or_default().to_owned();
    let streamed = request["stream"].as_bool().unwrap_or(false);
    let error = |status: StatusCode, message: &str, kind: &str| {
        json_response(
            status,
            json!({"error": {"message": message, "type": kind, "code": null}}),
        )
    };
    if received
        .header("authorization")
        .is_some_and(|value| value.contains("dead-upstream-key"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided",
            "invalid_request_error",
        );
    }
    match slug.as_str() {
        s if s.starts_with("fail-500") => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "upstream exploded",
            "server_error",
        ),
        s if s.starts_with("fail-400") => error(
            StatusCode::BAD_REQUEST,
            "unsupported parameter",
            "invalid_request_error",
        ),
        s if s.starts_with("fail-429") => (
            StatusCode::TOO_MANY_REQUESTS,
            [("content-type", "application/json"), ("retry-after", "7")],
            json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
                .to_string(),
        )
            .into_response(),
        s if s.starts_with("hang") => {
            // Never answers: the gateway's timeout ends the wait (and drops this connection).
            std::future::pending::<()>().await;
            answer(&slug, streamed)
        }
        s if s.starts_with("close-before") => sse(broken(None)),
        s if s.starts_with("close-after") => sse(broken(Some(chunk(
            &slug,
            json!({"role": "assistant", "content": "partial"}),
            None,
        )))),
        s if s.starts_with("toggle") && failing.load(Ordering::SeqCst) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "toggled down",
            "server_error",
        ),
        _ => answer(&slug, streamed),
    }
}

/// The fake OpenAI-wire upstream; `failing` drives the `toggle…` slugs.
async fn upstream(failing: Arc<AtomicBool>) -> FakeUpstream {
    FakeUpstream::start(move |received| behave(received, failing.clone())).await
}

/// `$in`/`$out` per 1M tokens, in the admin API's pricing shape (nanos).
fn price(input_nanos: i64, output_nanos: i64) -> Value {
    json!({"input": {"text": input_nanos}, "output": {"text": output_nanos}})
}

/// An organisation with routing on, an OpenAI-type provider on the fake and a key.
struct Org {
    id: String,
    provider: String,
    key_id: String,
    key: String,
}

impl Org {
    async fn create(server: &TestServer, upstream: &FakeUpstream) -> Self {
        let id = server.create_org().await;
        server
            .admin_ok(
                Method::PATCH,
                &format!("/api/organisations/{id}/settings"),
                Some(json!({"routingEnabled": true})),
            )
            .await;
        let provider = provider(
            server,
            &id,
            "OPENAI",
            &format!("{}/v1", upstream.root()),
            2_000,
        )
        .await;
        let (key_id, key) = server.create_key(&id).await;
        Self {
            id,
            provider,
            key_id,
            key,
        }
    }

    /// A chat model on `provider` granted to the org's key.
    async fn model(
        &self,
        server: &TestServer,
        provider: &str,
        name: &str,
        slug: &str,
        pricing: Value,
    ) -> String {
        let model = server
            .create_priced_model(&self.id, provider, name, slug, "chat", pricing)
            .await;
        server.grant(&self.id, &self.key_id, &model).await;
        model
    }

    async fn put_routing(
        &self,
        server: &TestServer,
        key_id: &str,
        policies: Value,
    ) -> (u16, Value) {
        server
            .admin(
                Method::PUT,
                &format!("/api/organisations/{}/apikeys/{key_id}/routing", self.id),
                Some(json!({"policies": policies})),
            )
            .await
    }

    async fn route(&self, server: &TestServer, policy: Value) {
        let (status, body) = self
            .put_routing(server, &self.key_id, json!([policy]))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn provider(
    server: &TestServer,
    org: &str,
    kind: &str,
    base_url: &str,
    timeout_ms: u64,
) -> String {
    provider_with(server, org, kind, base_url, timeout_ms, json!({})).await
}

async fn provider_with(
    server: &TestServer,
    org: &str,
    kind: &str,
    base_url: &str,
    timeout_ms: u64,
    config: Value,
) -> String {
    let id = server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/providers"),
            Some(
                json!({"type": kind, "name": format!("{kind} {}", odock::core::ids::random_hex(3)),
                        "baseUrl": base_url, "timeoutMs": timeout_ms, "config": config}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{org}/providers/{id}/keys"),
            Some(json!({"name": "Primary", "key": UPSTREAM_SECRET})),
        )
        .await;
    id
}

fn failover(candidates: &[&str], max_retries: u32) -> Value {
    let candidates: Vec<Value> = candidates.iter().map(|id| json!({"modelId": id})).collect();
    json!({"modelType": "chat", "strategy": "failover", "candidates": candidates,
           "maxRetries": max_retries, "retryDelayMs": 0})
}

struct Answer {
    status: u16,
    text: String,
    request_id: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `from <slug>` content of a unary OpenAI answer.
    fn content(&self) -> String {
        self.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn call(server: &TestServer, key: &str, path: &str, body: Value) -> Answer {
    let request_id = format!("route-{}", odock::core::ids::random_hex(8));
    let response = server
        .client
        .post(server.url(path))
        .bearer_auth(key)
        .header("x-request-id", &request_id)
        .json(&body)
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        text: response.text().await.unwrap(),
        request_id,
    }
}

async fn chat(server: &TestServer, key: &str, model: &str) -> Answer {
    call(
        server,
        key,
        "/v1/chat/completions",
        json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await
}

/// The slugs the fake received, in order.
fn slugs(upstream: &FakeUpstream) -> Vec<String> {
    upstream
        .received()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn windows(server: &TestServer, org: &str, kind: &str, id: &str) -> Value {
    server
        .admin_ok(
            Method::GET,
            &format!("/api/organisations/{org}/{kind}/{id}/windows"),
            None,
        )
        .await["data"][0]
        .clone()
}

#[tokio::test]
async fn failover_tries_candidates_in_order_and_the_answering_model_is_recorded_and_billed_once() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let a = org
        .model(
            &server,
            &org.provider,
            "a",
            "fail-500-a",
            price(1_000, 1_000),
        )
        .await;
    let b = org
        .model(
            &server,
            &org.provider,
            "b",
            "fail-500-b",
            price(1_000, 1_000),
        )
        .await;
    let c = org
        .model(
            &server,
            &org.provider,
            "c",
            "ok-c",
            price(1_000_000_000, 2_000_000_000),
        )
        .await;
    org.route(&server, failover(&[&a, &b, &c], 2)).await;
    let root = format!("/api/organisations/{}", org.id);
    let budget = server
        .admin_ok(
            Method::POST,
            &format!("{root}/budgets"),
            Some(json!({"name": "b", "ownerType": "ORG", "amountNanos": 1_000_000_000_000i64, "period": "MONTHLY"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let quota = server
        .admin_ok(
            Method::POST,
            &format!("{root}/quotas"),
            Some(json!({"name": "q", "ownerType": "APIKEY", "ownerId": org.key_id, "metric": "REQUESTS",
                        "limit": 1000, "period": "DAILY"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The requested model only selects the type: the attempts follow the policy.
    let answer = chat(&server, &org.key, "c").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.content(), "from ok-c");
    assert_eq!(slugs(&fake), ["fail-500-a", "fail-500-b", "ok-c"]);

    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(record["model"], "c");
    assert_eq!(record["modelId"], c.as_str());
    assert_eq!(record["provider"], "openai");
    assert_eq!(record["httpStatus"], 200);
    let routing = &record["routing"];
    assert_eq!(routing["strategy"], "failover");
    assert_eq!(routing["rerouted"], true);
    let attempts = routing["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{routing}");
    for (attempt, (model, status, outcome)) in attempts.iter().zip([
        (&a, 500, "failed"),
        (&b, 500, "failed"),
        (&c, 200, "success"),
    ]) {
        assert_eq!(attempt["modelId"], model.as_str(), "{routing}");
        assert_eq!(attempt["status"], status, "{routing}");
        assert_eq!(attempt["outcome"], outcome, "{routing}");
        assert_eq!(attempt["provider"], "openai");
        assert!(attempt["latencyMs"].is_u64());
    }
    // Priced at the answering model only: 10 × $1/1M + 20 × $2/1M.
    let cost = PROMPT_TOKENS * 1_000 + COMPLETION_TOKENS * 2_000;
    assert_eq!(record["costNanosUsd"], cost);
    server.flush_usage().await;
    let spent = windows(&server, &org.id, "budgets", &budget).await;
    assert_eq!(spent["usedNanos"], cost, "{spent}");
    assert_eq!(spent["reservedNanos"], 0, "{spent}");
    let counted = windows(&server, &org.id, "quotas", &quota).await;
    assert_eq!(
        counted["used"], 1,
        "one request, however many attempts: {counted}"
    );
    assert_eq!(counted["reserved"], 0, "{counted}");

    // Every attempt failing: the client gets the last failure, the record lists them all.
    org.route(&server, failover(&[&a, &b], 3)).await;
    let answer = chat(&server, &org.key, "a").await;
    assert_eq!(answer.status, 500, "{}", answer.text);
    let record = server.usage_record(&org.id, &answer.request_id).await;
    let attempts = record["routing"]["attempts"].as_array().unwrap().clone();
    let tried: Vec<&str> = attempts
        .iter()
        .map(|a| a["modelId"].as_str().unwrap())
        .collect();
    assert_eq!(
        tried,
        [a.as_str(), b.as_str(), a.as_str(), b.as_str()],
        "wraps around"
    );
    assert_eq!(record["httpStatus"], 500);
}

#[tokio::test]
async fn priority_round_robin_and_weighted_choose_where_attempts_start() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let free = || price(0, 0);
    let x = org.model(&server, &org.provider, "x", "ok-x", free()).await;
    let y = org.model(&server, &org.provider, "y", "ok-y", free()).await;
    let z = org.model(&server, &org.provider, "z", "ok-z", free()).await;
    let f = org
        .model(&server, &org.provider, "f", "fail-500-f", free())
        .await;

    // Priority: ascending, ties as listed.
    org.route(
        &server,
        json!({"modelType": "chat", "strategy": "priority", "maxRetries": 0, "retryDelayMs": 0,
               "candidates": [{"modelId": x, "priority": 3}, {"modelId": y, "priority": 1}, {"modelId": z, "priority": 1}]}),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(chat(&server, &org.key, "x").await.content(), "from ok-y");
    }

    // Round robin: one further per request, wrapping around; a failure wraps to the next.
    org.route(
        &server,
        json!({"modelType": "chat", "strategy": "round_robin", "maxRetries": 1, "retryDelayMs": 0,
               "candidates": [{"modelId": x}, {"modelId": f}, {"modelId": z}]}),
    )
    .await;
    let mut answered = Vec::new();
    for _ in 0..4 {
        answered.push(chat(&server, &org.key, "x").await.content());
    }
    assert_eq!(
        answered,
        ["from ok-x", "from ok-z", "from ok-z", "from ok-x"]
    );
    let before = fake.received().len();
    let answer = chat(&server, &org.key, "x").await; // starts at f, fails over to z
    assert_eq!(answer.content(), "from ok-z");
    assert_eq!(&slugs(&fake)[before..], ["fail-500-f", "ok-z"]);

    // Weighted: a zero weight is never drawn as the start.
    org.route(
        &server,
        json!({"modelType": "chat", "strategy": "weighted", "maxRetries": 0, "retryDelayMs": 0,
               "candidates": [{"modelId": x, "weight": 0}, {"modelId": y, "weight": 5}]}),
    )
    .await;
    for _ in 0..6 {
        assert_eq!(chat(&server, &org.key, "x").await.content(), "from ok-y");
    }
}

#[tokio::test]
async fn triggers_decide_which_failures_fail_over_and_a_400_never_does_under_5xx() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let free = || price(0, 0);
    let ok = org
        .model(&server, &org.provider, "ok", "ok-1", free())
        .await;
    let bad_request = org
        .model(&server, &org.provider, "bad", "fail-400", free())
        .await;
    let limited = org
        .model(&server, &org.provider, "limited", "fail-429", free())
        .await;
    // The head must come within 300 ms though the whole exchange may take a minute.
    let slow_provider = provider_with(
        &server,
        &org.id,
        "OPENAI",
        &format!("{}/v1", fake.root()),
        60_000,
        json!({"firstByteTimeoutMs": 300}),
    )
    .await;
    let hung = org
        .model(&server, &slow_provider, "hung", "hang-1", free())
        .await;
    // A port nothing listens on: connection refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dead_provider = provider(
        &server,
        &org.id,
        "OPENAI",
        &format!("http://127.0.0.1:{closed}/v1"),
        2_000,
    )
    .await;
    let dead = org
        .model(&server, &dead_provider, "dead", "ok-dead", free())
        .await;

    let with = |first: &str, triggers: Value| {
        json!({"modelType": "chat", "strategy": "failover", "maxRetries": 1, "retryDelayMs": 0,
               "candidates": [{"modelId": first}, {"modelId": ok}], "triggers": triggers})
    };
    let default_triggers = json!(["5xx", "timeout"]);

    // A 400 is the client's problem: relayed as is, no second attempt under 5xx.
    org.route(&server, with(&bad_request, default_triggers.clone()))
        .await;
    let before = fake.received().len();
    let answer = chat(&server, &org.key, "ok").await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    assert_eq!(&slugs(&fake)[before..], ["fail-400"]);
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(record["routing"]["rerouted"], false);
    assert_eq!(record["routing"]["attempts"].as_array().unwrap().len(), 1);
    // ... but `any` fails over on it.
    org.route(&server, with(&bad_request, json!(["any"]))).await;
    assert_eq!(chat(&server, &org.key, "ok").await.content(), "from ok-1");

    // 429: relayed (with the upstream's Retry-After) unless `rate_limit` is a trigger.
    org.route(&server, with(&limited, default_triggers.clone()))
        .await;
    let response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&org.key)
        .json(&json!({"model": "ok", "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    org.route(&server, with(&limited, json!(["rate_limit"])))
        .await;
    assert_eq!(chat(&server, &org.key, "ok").await.content(), "from ok-1");

    // A timeout fails over under `timeout` ...
    org.route(&server, with(&hung, default_triggers.clone()))
        .await;
    let answer = chat(&server, &org.key, "ok").await;
    assert_eq!(answer.content(), "from ok-1", "{}", answer.text);
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(
        record["routing"]["attempts"][0]["error"],
        "upstream_timeout"
    );
    // ... and not under `5xx` alone.
    org.route(&server, with(&hung, json!(["5xx"]))).await;
    assert_eq!(chat(&server, &org.key, "ok").await.status, 504);

    // Connection refused counts as 5xx.
    org.route(&server, with(&dead, json!(["5xx"]))).await;
    let answer = chat(&server, &org.key, "ok").await;
    assert_eq!(answer.content(), "from ok-1", "{}", answer.text);
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(record["routing"]["attempts"][0]["modelId"], dead.as_str());
    assert_eq!(record["routing"]["attempts"][0]["outcome"], "failed");
}

#[tokio::test]
async fn the_organisation_switch_and_an_absent_policy_call_the_requested_model_directly() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let a = org
        .model(&server, &org.provider, "a", "fail-500-a", price(0, 0))
        .await;
    let b = org
        .model(&server, &org.provider, "b", "ok-b", price(0, 0))
        .await;
    org.route(&server, failover(&[&a, &b], 1)).await;
    assert_eq!(chat(&server, &org.key, "a").await.content(), "from ok-b");

    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/organisations/{}/settings", org.id),
            Some(json!({"routingEnabled": false})),
        )
        .await;
    let before = fake.received().len();
    let answer = chat(&server, &org.key, "a").await;
    assert_eq!(answer.status, 500, "routing off: the requested model only");
    assert_eq!(&slugs(&fake)[before..], ["fail-500-a"]);
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert!(record["routing"].is_null(), "{record}");
    assert_eq!(chat(&server, &org.key, "b").await.content(), "from ok-b");

    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/organisations/{}/settings", org.id),
            Some(json!({"routingEnabled": true})),
        )
        .await;
    assert_eq!(chat(&server, &org.key, "a").await.content(), "from ok-b");
    // Without a policy for the type, the requested model is called directly.
    let (status, _) = org.put_routing(&server, &org.key_id, json!([])).await;
    assert_eq!(status, 200);
    assert_eq!(
        chat(&server, &org.key, "a").await.status,
        500,
        "policy removed"
    );
}

#[tokio::test]
async fn put_checks_candidates_belong_to_the_organisation_match_the_type_and_are_granted() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let other = Org::create(&server, &fake).await;
    let a = org
        .model(&server, &org.provider, "a", "ok-a", price(0, 0))
        .await;
    let foreign = other
        .model(&server, &other.provider, "a", "ok-a", price(0, 0))
        .await;
    let ungranted = server
        .create_priced_model(&org.id, &org.provider, "u", "ok-u", "chat", price(0, 0))
        .await;
    let embedder = server
        .create_priced_model(
            &org.id,
            &org.provider,
            "e",
            "ok-e",
            "embeddings",
            price(0, 0),
        )
        .await;
    server.grant(&org.id, &org.key_id, &embedder).await;

    let path = format!(
        "/api/organisations/{}/apikeys/{}/routing",
        org.id, org.key_id
    );
    assert_eq!(
        server.admin_ok(Method::GET, &path, None).await,
        json!({"policies": []})
    );
    for (candidate, why) in [
        (&foreign, "not in this organisation"),
        (&ungranted, "not granted"),
        (&embedder, "type"),
    ] {
        let (status, body) = org
            .put_routing(&server, &org.key_id, json!([failover(&[&a, candidate], 0)]))
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["error"]["field"], "candidates", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(candidate.as_str()) && message.contains(why),
            "{message}"
        );
    }
    for bad in [
        json!([{"modelType": "chat", "strategy": "random", "candidates": [{"modelId": a}]}]),
        json!([{"modelType": "chat", "strategy": "failover", "candidates": []}]),
        json!([{"modelType": "chat", "strategy": "failover", "candidates": [{"modelId": a}], "triggers": ["sometimes"]}]),
        json!([failover(&[&a], 0), failover(&[&a], 0)]),
        json!([failover(&[&a], 99)]),
    ] {
        let (status, body) = org.put_routing(&server, &org.key_id, bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    // Another organisation's key is not found from here.
    let (status, _) = org.put_routing(&server, &other.key_id, json!([])).await;
    assert_eq!(status, 404);

    let policy = json!({"modelType": "chat", "strategy": "weighted", "maxRetries": 2, "retryDelayMs": 5,
                        "triggers": ["5xx", "rate_limit"],
                        "candidates": [{"modelId": a, "weight": 3, "priority": 1}]});
    org.route(&server, policy.clone()).await;
    assert_eq!(
        server.admin_ok(Method::GET, &path, None).await,
        json!({"policies": [policy]})
    );
}

/// A policy follows the models it names: deleting a candidate model (or its provider), changing
/// its type or revoking its grant takes it out of the stored document, so `GET` shows what the
/// gateway does and the document read back can be `PUT` again; a policy left without candidates
/// goes.
#[tokio::test]
async fn candidates_whose_model_or_grant_goes_leave_the_policy() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let a = org
        .model(&server, &org.provider, "a", "fail-500-a", price(0, 0))
        .await;
    let b = org
        .model(&server, &org.provider, "b", "ok-b", price(0, 0))
        .await;
    let c = org
        .model(&server, &org.provider, "c", "ok-c", price(0, 0))
        .await;
    let other_provider = provider(
        &server,
        &org.id,
        "OPENAI",
        &format!("{}/v1", fake.root()),
        2_000,
    )
    .await;
    let d = org
        .model(&server, &other_provider, "d", "ok-d", price(0, 0))
        .await;
    let e = org
        .model(&server, &org.provider, "e", "ok-e", price(0, 0))
        .await;
    org.route(&server, failover(&[&a, &b, &c, &d, &e], 4)).await;
    let path = format!(
        "/api/organisations/{}/apikeys/{}/routing",
        org.id, org.key_id
    );
    let candidates = |document: &Value| -> Vec<String> {
        document["policies"][0]["candidates"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| c["modelId"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let (status, _) = server
        .admin(
            Method::DELETE,
            &format!("/api/organisations/{}/models/{b}", org.id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin(
            Method::DELETE,
            &format!("/api/organisations/{}/providers/{other_provider}", org.id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = server
        .admin(
            Method::PATCH,
            &format!("/api/organisations/{}/models/{e}", org.id),
            Some(json!({"type": "embeddings"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let document = server.admin_ok(Method::GET, &path, None).await;
    assert_eq!(
        candidates(&document),
        vec![a.clone(), c.clone()],
        "{document}"
    );
    assert_eq!(
        document["policies"][0]["maxRetries"], 4,
        "the rest of the policy stays"
    );

    // What GET shows is what PUT accepts, and what the gateway does: `a` fails over to `c`.
    let (status, body) = org
        .put_routing(&server, &org.key_id, document["policies"].clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let answer = chat(&server, &org.key, "a").await;
    assert_eq!(
        (answer.status, answer.content()),
        (200, "from ok-c".to_owned()),
        "{}",
        answer.text
    );

    let revoke = |model: &str| {
        format!(
            "/api/organisations/{}/apikeys/{}/model-access/{model}",
            org.id, org.key_id
        )
    };
    let (status, _) = server.admin(Method::DELETE, &revoke(&c), None).await;
    assert_eq!(status, 204);
    let document = server.admin_ok(Method::GET, &path, None).await;
    assert_eq!(candidates(&document), vec![a.clone()], "{document}");
    let (status, _) = server.admin(Method::DELETE, &revoke(&a), None).await;
    assert_eq!(status, 204);
    assert_eq!(
        server.admin_ok(Method::GET, &path, None).await,
        json!({"policies": []}),
        "a policy without candidates goes"
    );
}

#[tokio::test]
async fn unified_chat_fails_over_across_families_unary_and_streamed_but_native_routes_do_not() {
    let fake = upstream(Arc::default()).await;
    let anthropic = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let claude_provider =
        provider(&server, &org.id, "ANTHROPIC", &anthropic.base_url(), 2_000).await;
    let gpt = org
        .model(&server, &org.provider, "gpt", "fail-500-gpt", price(0, 0))
        .await;
    let claude = org
        .model(
            &server,
            &claude_provider,
            "claude",
            "claude-upstream",
            price(1_000, 1_000),
        )
        .await;
    org.route(&server, failover(&[&gpt, &claude], 1)).await;

    let body = |stream: bool| {
        json!({"model": "gpt", "stream": stream, "max_tokens": 50,
               "messages": [{"role": "user", "content": "Hi"}]})
    };
    let answer = call(&server, &org.key, "/v1/llm/chat", body(false)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.text.contains("Hello world"), "{}", answer.text);
    assert_eq!(anthropic.received().len(), 1);
    assert_eq!(anthropic.last().json()["model"], "claude-upstream");
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(record["provider"], "anthropic");
    assert_eq!(record["model"], "claude");
    assert_eq!(record["routing"]["attempts"][0]["provider"], "openai");
    assert_eq!(record["routing"]["attempts"][1]["provider"], "anthropic");

    let answer = call(&server, &org.key, "/v1/llm/chat", body(true)).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.text.contains("Hello"), "{}", answer.text);
    assert!(
        answer.text.trim_end().ends_with("data: [DONE]"),
        "{}",
        answer.text
    );
    assert_eq!(anthropic.received().len(), 2);
    assert_eq!(anthropic.last().json()["stream"], true);
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(record["provider"], "anthropic");
    assert_eq!(record["stream"], true);

    // The OpenAI-native route keeps to its family: the Anthropic candidate is skipped.
    let answer = call(&server, &org.key, "/v1/chat/completions", body(false)).await;
    assert_eq!(answer.status, 500, "{}", answer.text);
    assert_eq!(anthropic.received().len(), 2);
}

#[tokio::test]
async fn a_stream_fails_over_before_its_first_byte_and_never_after() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let early = org
        .model(&server, &org.provider, "early", "close-before", price(0, 0))
        .await;
    let late = org
        .model(&server, &org.provider, "late", "close-after", price(0, 0))
        .await;
    let ok = org
        .model(&server, &org.provider, "ok", "ok-s", price(0, 0))
        .await;
    let stream =
        json!({"model": "ok", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});

    org.route(&server, failover(&[&early, &ok], 1)).await;
    let answer = call(&server, &org.key, "/v1/chat/completions", stream.clone()).await;
    assert_eq!(answer.status, 200);
    assert!(answer.text.contains("from ok-s"), "{}", answer.text);
    assert_eq!(slugs(&fake), ["close-before", "ok-s"]);
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(record["routing"]["rerouted"], true);
    assert_eq!(record["model"], "ok");

    org.route(&server, failover(&[&late, &ok], 1)).await;
    let before = fake.received().len();
    let answer = call(&server, &org.key, "/v1/chat/completions", stream).await;
    assert_eq!(answer.status, 200);
    assert!(answer.text.contains("partial"), "{}", answer.text);
    assert!(
        answer.text.contains("\"error\""),
        "the break is reported in the stream: {}",
        answer.text
    );
    assert!(!answer.text.contains("from ok-s"), "{}", answer.text);
    assert_eq!(
        &slugs(&fake)[before..],
        ["close-after"],
        "no second attempt after the first byte"
    );
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(record["model"], "late");
    assert_eq!(record["routing"]["rerouted"], false);
}

#[tokio::test]
async fn the_estimate_is_the_most_expensive_candidates_so_one_admission_covers_any_attempt() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    // 100 output tokens: 100 nanos on the cheap model, 100,000,000 on the dear one.
    let cheap = org
        .model(
            &server,
            &org.provider,
            "cheap",
            "ok-cheap",
            price(0, 1_000_000),
        )
        .await;
    let dear = org
        .model(
            &server,
            &org.provider,
            "dear",
            "ok-dear",
            price(0, 1_000_000_000_000),
        )
        .await;
    server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/budgets", org.id),
            Some(json!({"name": "small", "ownerType": "ORG", "amountNanos": 10_000_000, "period": "MONTHLY"})),
        )
        .await;
    let body = json!({"model": "cheap", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]});
    let answer = call(&server, &org.key, "/v1/chat/completions", body.clone()).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    org.route(&server, failover(&[&cheap, &dear], 1)).await;
    let before = fake.received().len();
    let answer = call(&server, &org.key, "/v1/chat/completions", body).await;
    assert_eq!(answer.status, 402, "{}", answer.text);
    assert_eq!(answer.json()["error"]["code"], "budget_exceeded");
    assert_eq!(
        fake.received().len(),
        before,
        "an Odock refusal is never an attempt"
    );
}

#[tokio::test]
async fn circuits_open_after_consecutive_failures_and_a_half_open_probe_closes_them() {
    let failing = Arc::new(AtomicBool::new(true));
    let flaky = upstream(failing.clone()).await;
    let steady = upstream(Arc::default()).await;
    let clock = odock::core::ManualClock::new(chrono::Utc::now());
    let server = TestServer::start_with_clock(|_| {}, Arc::new(clock.clone())).await;
    let org = Org::create(&server, &flaky).await;
    let backup_provider = provider(
        &server,
        &org.id,
        "OPENAI",
        &format!("{}/v1", steady.root()),
        2_000,
    )
    .await;
    let primary = org
        .model(&server, &org.provider, "primary", "toggle-1", price(0, 0))
        .await;
    let backup = org
        .model(
            &server,
            &backup_provider,
            "backup",
            "ok-backup",
            price(0, 0),
        )
        .await;
    org.route(&server, failover(&[&primary, &backup], 1)).await;
    // The organisation's on-call webhook hears about failing providers.
    let (hook, hook_url) = crate::observability::Webhook::start(0).await;
    server
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/notification-channels", org.id),
            Some(json!({"name": "oncall", "type": "WEBHOOK", "url": hook_url,
                        "secret": "whsec-circuits-0123456789", "events": ["provider.unhealthy"]})),
        )
        .await;

    let threshold = odock::core::routing::CircuitSettings::DEFAULT_FAILURE_THRESHOLD as usize;
    for _ in 0..threshold {
        assert_eq!(
            chat(&server, &org.key, "primary").await.content(),
            "from ok-backup"
        );
    }
    assert_eq!(flaky.received().len(), threshold);

    // Open: the primary is skipped without a call.
    let answer = chat(&server, &org.key, "primary").await;
    assert_eq!(answer.content(), "from ok-backup");
    assert_eq!(
        flaky.received().len(),
        threshold,
        "an open circuit is not called"
    );
    let record = server.usage_record(&org.id, &answer.request_id).await;
    assert_eq!(
        record["routing"]["attempts"][0]["error"], "circuit_open",
        "{record}"
    );

    let health = server
        .admin_ok(
            Method::GET,
            &format!("/api/organisations/{}/provider-health", org.id),
            None,
        )
        .await;
    let entry = |health: &Value, id: &str| {
        health["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["providerId"] == id)
            .cloned()
            .unwrap()
    };
    let primary_health = entry(&health, &org.provider);
    assert_eq!(primary_health["health"]["state"], "open", "{health}");
    assert!(primary_health["health"]["lastError"]
        .as_str()
        .unwrap()
        .contains("500"));
    assert!(primary_health["health"]["since"].is_string());
    assert_eq!(primary_health["keys"][0]["health"]["state"], "open");
    assert_eq!(
        entry(&health, &backup_provider)["health"]["state"],
        "closed"
    );
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("odock_circuit_breakers_open 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("odock_routing_decisions_total{strategy=\"failover\",rerouted=\"true\"} 6"),
        "{metrics}"
    );

    // One alert: the provider's circuit opened (its key's circuit raises none).
    crate::observability::wait_until("the provider.unhealthy alert", || !hook.calls().is_empty())
        .await;
    let calls = hook.calls();
    assert_eq!(calls.len(), 1);
    let alert: Value = serde_json::from_slice(&calls[0].1).unwrap();
    assert_eq!(alert["event"], "provider.unhealthy");
    assert_eq!(alert["data"]["providerId"], org.provider.as_str());
    assert!(
        alert["data"]["detail"].as_str().unwrap().contains("500"),
        "{alert}"
    );

    // Still open before the time is up; the recovered upstream is probed once it is.
    failing.store(false, Ordering::SeqCst);
    clock.advance(chrono::Duration::seconds(29));
    assert_eq!(
        chat(&server, &org.key, "primary").await.content(),
        "from ok-backup"
    );
    assert_eq!(flaky.received().len(), threshold);
    clock.advance(chrono::Duration::seconds(2));
    assert_eq!(
        chat(&server, &org.key, "primary").await.content(),
        "from toggle-1"
    );
    assert_eq!(flaky.received().len(), threshold + 1);
    assert_eq!(
        chat(&server, &org.key, "primary").await.content(),
        "from toggle-1"
    );
    let health = server
        .admin_ok(
            Method::GET,
            &format!("/api/organisations/{}/provider-health", org.id),
            None,
        )
        .await;
    assert_eq!(
        entry(&health, &org.provider)["health"]["state"],
        "closed",
        "{health}"
    );

    // A failed probe reopens at once.
    failing.store(true, Ordering::SeqCst);
    for _ in 0..threshold {
        chat(&server, &org.key, "primary").await;
    }
    clock.advance(chrono::Duration::seconds(31));
    let calls = flaky.received().len();
    assert_eq!(
        chat(&server, &org.key, "primary").await.content(),
        "from ok-backup"
    );
    assert_eq!(flaky.received().len(), calls + 1, "the probe");
    assert_eq!(
        chat(&server, &org.key, "primary").await.content(),
        "from ok-backup"
    );
    assert_eq!(
        flaky.received().len(),
        calls + 1,
        "reopened by the failed probe"
    );
    // Two alerts: the circuit opened from closed twice (recovered in between); the failed probe
    // re-opened it without a third.
    crate::observability::wait_until("the second alert", || hook.calls().len() >= 2).await;
    assert_eq!(hook.calls().len(), 2);
}

/// The slugs the fake received that start with `prefix`.
fn calls_to(upstream: &FakeUpstream, prefix: &str) -> usize {
    slugs(upstream)
        .iter()
        .filter(|slug| slug.starts_with(prefix))
        .count()
}

#[tokio::test]
async fn circuit_settings_come_from_the_server_config_and_a_providers_own() {
    let flaky = upstream(Arc::new(AtomicBool::new(true))).await;
    let steady = upstream(Arc::default()).await;
    let clock = odock::core::ManualClock::new(chrono::Utc::now());
    let server = TestServer::start_with_clock(
        |config| {
            config.circuit_failure_threshold = 2;
            config.circuit_open_ms = 5_000;
        },
        Arc::new(clock.clone()),
    )
    .await;
    let org = Org::create(&server, &flaky).await;
    let backup_provider = provider(
        &server,
        &org.id,
        "OPENAI",
        &format!("{}/v1", steady.root()),
        2_000,
    )
    .await;
    let backup = org
        .model(&server, &backup_provider, "backup", "ok-b", price(0, 0))
        .await;
    let primary = org
        .model(&server, &org.provider, "primary", "toggle-1", price(0, 0))
        .await;
    org.route(&server, failover(&[&primary, &backup], 1)).await;

    // The server's threshold (2): the second failure opens the circuit, not the first.
    chat(&server, &org.key, "primary").await;
    assert_eq!(calls_to(&flaky, "toggle-1"), 1);
    assert_eq!(
        chat(&server, &org.key, "primary").await.content(),
        "from ok-b"
    );
    assert_eq!(calls_to(&flaky, "toggle-1"), 2, "still closed after one");
    chat(&server, &org.key, "primary").await;
    assert_eq!(calls_to(&flaky, "toggle-1"), 2, "open after two");
    // Open for the server's 5 s.
    clock.advance(chrono::Duration::milliseconds(4_900));
    chat(&server, &org.key, "primary").await;
    assert_eq!(calls_to(&flaky, "toggle-1"), 2);
    clock.advance(chrono::Duration::milliseconds(100));
    chat(&server, &org.key, "primary").await;
    assert_eq!(calls_to(&flaky, "toggle-1"), 3, "the probe");

    // A provider's own settings win: 3 failures, open for 1 s.
    let own = provider_with(
        &server,
        &org.id,
        "OPENAI",
        &format!("{}/v1", flaky.root()),
        2_000,
        json!({"circuitFailureThreshold": 3, "circuitOpenMs": 1_000}),
    )
    .await;
    let second = org
        .model(&server, &own, "second", "toggle-2", price(0, 0))
        .await;
    org.route(&server, failover(&[&second, &backup], 1)).await;
    for expected in 1..=3 {
        chat(&server, &org.key, "second").await;
        assert_eq!(calls_to(&flaky, "toggle-2"), expected);
    }
    chat(&server, &org.key, "second").await;
    assert_eq!(calls_to(&flaky, "toggle-2"), 3, "open after three");
    clock.advance(chrono::Duration::milliseconds(1_000));
    chat(&server, &org.key, "second").await;
    assert_eq!(calls_to(&flaky, "toggle-2"), 4, "probed after 1 s");

    // Provider settings the gateway could not use are refused.
    let (status, body) = server
        .admin(
            Method::PATCH,
            &format!("/api/organisations/{}/providers/{own}", org.id),
            Some(json!({"config": {"circuitFailureThreshold": 0}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(body["error"]["field"], "config.circuitFailureThreshold");
}

/// A loopback address that black-holes connections: a listener that never accepts, its one-slot
/// queue filled, so the kernel drops further connection attempts (the connect hangs). Keep the
/// returned values alive.
async fn black_hole() -> (
    tokio::net::TcpListener,
    Vec<tokio::net::TcpStream>,
    std::net::SocketAddr,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    // Fill the queue: connect until an attempt no longer completes.
    for _ in 0..16 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(address),
        )
        .await
        {
            Ok(Ok(stream)) => queued.push(stream),
            _ => return (listener, queued, address),
        }
    }
    panic!("the listener's queue never filled");
}

#[tokio::test]
async fn a_providers_connect_timeout_fails_over_a_black_holed_upstream_within_it() {
    let fake = upstream(Arc::default()).await;
    let (_listener, _queued, address) = black_hole().await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    // A minute for the exchange, 300 ms to connect.
    let dead = provider_with(
        &server,
        &org.id,
        "OPENAI",
        &format!("http://{address}/v1"),
        60_000,
        json!({"connectTimeoutMs": 300}),
    )
    .await;
    let a = org.model(&server, &dead, "a", "ok-a", price(0, 0)).await;
    let b = org
        .model(&server, &org.provider, "b", "ok-b", price(0, 0))
        .await;
    org.route(&server, failover(&[&a, &b], 1)).await;
    let started = std::time::Instant::now();
    let answer = chat(&server, &org.key, "a").await;
    let took = started.elapsed();
    assert_eq!(answer.content(), "from ok-b", "{}", answer.text);
    // Neither the exchange's minute nor the client-wide 10 s connect limit was waited for.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let record = server.usage_record(&org.id, &answer.request_id).await;
    let failed = &record["routing"]["attempts"][0];
    assert_eq!(failed["modelId"], a.as_str(), "{record}");
    assert_eq!(failed["error"], "upstream_timeout", "{record}");
    assert!(failed["latencyMs"].as_u64().unwrap() >= 300, "{record}");
}

#[tokio::test]
async fn a_providers_keys_are_a_pool_rotated_per_request_and_a_401_takes_a_key_out() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let keys = format!(
        "/api/organisations/{}/providers/{}/keys",
        org.id, org.provider
    );
    server
        .admin_ok(
            Method::POST,
            &keys,
            Some(json!({"name": "Second", "key": "sk-second-upstream-key-0001"})),
        )
        .await;
    let dead = server
        .admin_ok(
            Method::POST,
            &keys,
            Some(json!({"name": "Dead", "key": "sk-dead-upstream-key-0002"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    org.model(&server, &org.provider, "pooled", "ok-pooled", price(0, 0))
        .await;

    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(chat(&server, &org.key, "pooled").await.status);
        }
        statuses
    };
    let presented = |from: usize| -> Vec<String> {
        fake.received()[from..]
            .iter()
            .map(|r| r.header_str("authorization").to_owned())
            .collect()
    };
    let mut first = presented(0);
    first.sort();
    let mut expected = vec![
        format!("Bearer {UPSTREAM_SECRET}"),
        "Bearer sk-second-upstream-key-0001".to_owned(),
        "Bearer sk-dead-upstream-key-0002".to_owned(),
    ];
    expected.sort();
    assert_eq!(first, expected, "each key in turn");
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [200, 200, 401],
        "the dead key's request: {statuses:?}"
    );

    for _ in 0..4 {
        assert_eq!(chat(&server, &org.key, "pooled").await.status, 200);
    }
    let later = presented(3);
    assert_eq!(later.len(), 4);
    assert!(
        later.iter().all(|a| !a.contains("dead-upstream")),
        "the key answered 401 is out of rotation: {later:?}"
    );
    assert!(later.iter().any(|a| a.contains(UPSTREAM_SECRET)));
    assert!(later.iter().any(|a| a.contains("sk-second")));

    let health = server
        .admin_ok(
            Method::GET,
            &format!("/api/organisations/{}/provider-health", org.id),
            None,
        )
        .await;
    let keys = health["data"][0]["keys"].as_array().unwrap().clone();
    let dead_key = keys
        .iter()
        .find(|k| k["providerKeyId"] == dead.as_str())
        .unwrap();
    assert_eq!(dead_key["rotation"]["state"], "evicted", "{health}");
    assert_eq!(dead_key["rotation"]["status"], 401);
    assert!(keys
        .iter()
        .filter(|k| k["providerKeyId"] != dead.as_str())
        .all(|k| k["rotation"].is_null()));
}

/// Production mode: three replicas on one PostgreSQL and Redis share a key's round-robin counter,
/// so its requests spread over the candidates whichever replica serves them.
#[tokio::test]
async fn round_robin_is_shared_by_three_replicas() {
    let Some(servers) = crate::support::replicas(3).await else {
        return;
    };
    let fake = upstream(Arc::default()).await;
    let org = Org::create(&servers[0], &fake).await;
    let x = org
        .model(&servers[0], &org.provider, "x", "ok-x", price(0, 0))
        .await;
    let y = org
        .model(&servers[0], &org.provider, "y", "ok-y", price(0, 0))
        .await;
    let z = org
        .model(&servers[0], &org.provider, "z", "ok-z", price(0, 0))
        .await;
    org.route(
        &servers[0],
        json!({"modelType": "chat", "strategy": "round_robin", "maxRetries": 0, "retryDelayMs": 0,
               "candidates": [{"modelId": x}, {"modelId": y}, {"modelId": z}]}),
    )
    .await;
    let mut answered = Vec::new();
    for i in 0..6 {
        answered.push(chat(&servers[i % 3], &org.key, "x").await.content());
    }
    assert_eq!(
        answered,
        [
            "from ok-x",
            "from ok-y",
            "from ok-z",
            "from ok-x",
            "from ok-y",
            "from ok-z"
        ]
    );
}

#[tokio::test]
async fn a_candidate_whose_own_policy_refuses_the_request_is_skipped() {
    let fake = upstream(Arc::default()).await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let a = org
        .model(&server, &org.provider, "a", "fail-500-a", price(0, 0))
        .await;
    let b = org
        .model(&server, &org.provider, "b", "ok-b", price(0, 0))
        .await;
    let c = org
        .model(&server, &org.provider, "c", "ok-c", price(0, 0))
        .await;
    server
        .admin_ok(
            Method::PATCH,
            &format!("/api/organisations/{}/models/{b}", org.id),
            Some(json!({"policies": {"maxTokensPerRequest": 10}})),
        )
        .await;
    org.route(&server, failover(&[&a, &b, &c], 2)).await;
    let answer = call(
        &server,
        &org.key,
        "/v1/chat/completions",
        json!({"model": "a", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(answer.content(), "from ok-c", "{}", answer.text);
    assert_eq!(
        slugs(&fake),
        ["fail-500-a", "ok-c"],
        "b's policy refuses 100 tokens"
    );
    let record = server.usage_record(&org.id, &answer.request_id).await;
    let tried: Vec<&str> = record["routing"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| attempt["modelId"].as_str().unwrap())
        .collect();
    assert_eq!(tried, [a.as_str(), c.as_str()]);
}

/// Model-level rate limits count every attempted model: the requested model's in the one
/// admission, another candidate's before its first attempt. `servers` take turns (two replicas
/// sharing Redis in production mode: the count is shared).
async fn candidate_rate_limits_count_each_attempted_model(servers: &[TestServer]) {
    let fake = upstream(Arc::default()).await;
    let server = |i: usize| &servers[i % servers.len()];
    let org = Org::create(server(0), &fake).await;
    let a = org
        .model(server(0), &org.provider, "a", "fail-500-a", price(0, 0))
        .await;
    let b = org
        .model(server(0), &org.provider, "b", "ok-b", price(0, 0))
        .await;
    let c = org
        .model(server(0), &org.provider, "c", "ok-c", price(0, 0))
        .await;
    server(0)
        .admin_ok(
            Method::PATCH,
            &format!("/api/organisations/{}/models/{b}", org.id),
            Some(json!({"policies": {"requestsPerMinute": 1}})),
        )
        .await;
    // The key's own limit counts the request once, however many models it tries.
    server(0)
        .admin_ok(
            Method::PATCH,
            &format!("/api/organisations/{}/apikeys/{}", org.id, org.key_id),
            Some(json!({"policies": {"requestsPerMinute": 3}})),
        )
        .await;
    org.route(server(0), failover(&[&a, &b, &c], 2)).await;

    let first = chat(server(0), &org.key, "a").await;
    assert_eq!(first.content(), "from ok-b", "{}", first.text);
    // b's one request per minute is spent: the next request skips it.
    let second = chat(server(1), &org.key, "a").await;
    assert_eq!(second.content(), "from ok-c", "{}", second.text);
    assert_eq!(
        slugs(&fake),
        ["fail-500-a", "ok-b", "fail-500-a", "ok-c"],
        "b is not called over its limit"
    );
    let record = server(1).usage_record(&org.id, &second.request_id).await;
    let attempts = record["routing"]["attempts"].as_array().unwrap().clone();
    let tried: Vec<(&str, &str, Value)> = attempts
        .iter()
        .map(|attempt| {
            (
                attempt["modelId"].as_str().unwrap(),
                attempt["error"].as_str().unwrap_or("-"),
                attempt["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        tried,
        [
            (a.as_str(), "upstream returned 500", json!(500)),
            (b.as_str(), "model_rate_limited", json!(429)),
            (c.as_str(), "-", json!(200)),
        ],
        "{record}"
    );

    let metrics = server(1)
        .client
        .get(server(1).url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("odock_routing_attempt_failures_total{reason=\"model_rate_limit\"} 1"),
        "{metrics}"
    );

    // Every candidate refused by its own limit: the refusal, no upstream call.
    org.route(server(0), failover(&[&b], 0)).await;
    let refused = chat(server(0), &org.key, "a").await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(fake.received().len(), 4);
    let record = server(0).usage_record(&org.id, &refused.request_id).await;
    assert_eq!(
        record["routing"]["attempts"][0]["error"], "model_rate_limited",
        "{record}"
    );
    assert_eq!(
        record["metadata"]["deniedBy"],
        "rate limit `requests_per_minute` on scope `model`"
    );
    // Three requests so far: the key's limit (3 a minute) refuses the fourth, once.
    let fourth = chat(server(1), &org.key, "a").await;
    assert_eq!(fourth.status, 429, "{}", fourth.text);
    let record = server(1).usage_record(&org.id, &fourth.request_id).await;
    assert_eq!(
        record["metadata"]["deniedBy"],
        "rate limit `requests_per_minute` on scope `api_key`"
    );
}

#[tokio::test]
async fn a_candidate_models_own_rate_limits_count_its_attempts() {
    candidate_rate_limits_count_each_attempted_model(&[TestServer::start().await]).await;
}

#[tokio::test]
async fn a_candidate_models_own_rate_limits_are_shared_by_replicas() {
    let Some(servers) = crate::support::replicas(2).await else {
        return;
    };
    candidate_rate_limits_count_each_attempted_model(&servers).await;
}

/// The official SDKs see routing as ordinary answers: on `/v1/llm/chat` (OpenAI SDK) an OpenAI
/// candidate's 500 fails over to an Anthropic one, unary and streamed; natively the OpenAI route
/// keeps to its family, and the Anthropic route (Anthropic SDK) fails over within its own.
#[tokio::test]
async fn the_official_sdks_see_routed_answers() {
    if !crate::support::python_module_available("openai", "openai")
        || !crate::support::python_module_available("anthropic", "anthropic")
    {
        return;
    }
    let fake = upstream(Arc::default()).await;
    let anthropic = FakeAnthropic::start().await;
    let server = TestServer::start().await;
    let org = Org::create(&server, &fake).await;
    let claude_provider =
        provider(&server, &org.id, "ANTHROPIC", &anthropic.base_url(), 2_000).await;
    let gpt = org
        .model(&server, &org.provider, "gpt", "fail-500-gpt", price(0, 0))
        .await;
    let broken_claude = org
        .model(
            &server,
            &claude_provider,
            "claude-broken",
            "fail-429",
            price(0, 0),
        )
        .await;
    let claude = org
        .model(
            &server,
            &claude_provider,
            "claude",
            "claude-upstream",
            price(0, 0),
        )
        .await;
    let mut policy = failover(&[&gpt, &broken_claude, &claude], 2);
    policy["triggers"] = json!(["5xx", "rate_limit"]);
    org.route(&server, policy).await;

    let result = crate::support::run_python_script(
        "routing_sdk.py",
        &[&server.base, &org.key, "gpt", "claude-broken"],
    )
    .await;
    assert_eq!(result["unified"]["provider"], "anthropic", "{result}");
    assert_eq!(result["unified"]["model"], "claude");
    assert_eq!(result["unified"]["content"], "Hello world");
    assert_eq!(result["unified_stream"], "Hello world");
    assert_eq!(result["native_openai_status"], 500);
    assert_eq!(result["native_anthropic"]["text"], "Hello world");
    let models: Vec<String> = anthropic
        .received()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or_default().to_owned())
        .collect();
    // Unified unary and stream: the 429 then the healthy model; native: the same.
    assert_eq!(
        models,
        [
            "fail-429",
            "claude-upstream",
            "fail-429",
            "claude-upstream",
            "fail-429",
            "claude-upstream"
        ]
    );
}
