//! A replica killed (SIGKILL, no shutdown) in the middle of a governed stream: the budget it held
//! for the stream is released by the surviving replica once the lease expires, so the capacity comes
//! back without anyone settling it. Real processes (the `odock-server` binary), one PostgreSQL, one
//! Redis; skipped with a note when `ODOCK_TEST_DATABASE_URL` / `ODOCK_TEST_REDIS_URL` are unset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "crash-test-admin-token-0123456789abcdef";
/// 32 bytes, base64: both replicas must share the master key.
const MASTER_KEY: &str = "Y3Jhc2gtdGVzdC1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=";
const LEASE_MS: u64 = 600;

/// A fake OpenAI upstream whose streams send one chunk and then never finish.
async fn hanging_upstream() -> SocketAddr {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let first = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n";
            let stream = futures::stream::once(async move {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(first.as_bytes()))
            })
            .chain(futures::stream::pending());
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

struct Replica {
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_replica(database_url: &str, redis_url: &str, prefix: &str) -> Replica {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_odock-server"))
        .env("ODOCK_LISTEN", format!("127.0.0.1:{port}"))
        .env("ODOCK_DATABASE_URL", database_url)
        .env("ODOCK_REDIS_URL", redis_url)
        .env("ODOCK_REDIS_PREFIX", prefix)
        .env("ODOCK_MASTER_KEY", MASTER_KEY)
        .env("ODOCK_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ODOCK_LEDGER_LEASE_MS", LEASE_MS.to_string())
        // The fake upstream lives on loopback, which the default egress policy refuses.
        .env("ODOCK_EGRESS_ALLOW", "127.0.0.0/8")
        .env("ODOCK_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let replica = Replica {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client
            .get(format!("{}/v1/healthz", replica.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return replica;
        }
        assert!(Instant::now() < deadline, "replica did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn admin(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Organisation, provider → upstream, priced model, key, grant, and a budget that fits exactly one
/// request's estimate. Returns the virtual key.
async fn configure(client: &reqwest::Client, base: &str, upstream: SocketAddr) -> String {
    let org = admin(
        client,
        base,
        "/api/admin/organisations",
        json!({"name": "Crash"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let root = format!("/api/organisations/{org}");
    let provider = admin(
        client,
        base,
        &format!("{root}/providers"),
        json!({"type": "OPENAI", "name": "up", "baseUrl": format!("http://{upstream}/v1")}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(
        client,
        base,
        &format!("{root}/providers/{provider}/keys"),
        json!({"name": "k", "key": "sk-upstream"}),
    )
    .await;
    let model = admin(
        client,
        base,
        &format!("{root}/models"),
        json!({"name": "m", "slug": "m", "type": "chat", "providerId": provider,
               "pricing": {"output": {"text": 8_000_000_000i64}}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = admin(
        client,
        base,
        &format!("{root}/apikeys"),
        json!({"name": "k", "type": "ORGANISATION"}),
    )
    .await;
    let key_id = key["id"].as_str().unwrap();
    admin(
        client,
        base,
        &format!("{root}/apikeys/{key_id}/model-access"),
        json!({"modelIds": [model]}),
    )
    .await;
    // One request is estimated at 100 output tokens × $8/1M = 800,000 nanos: one fits, two don't.
    admin(
        client,
        base,
        &format!("{root}/budgets"),
        json!({"name": "one at a time", "ownerType": "ORG", "amountNanos": 1_000_000,
               "period": "MONTHLY"}),
    )
    .await;
    key["key"].as_str().unwrap().to_owned()
}

fn chat(client: &reqwest::Client, base: &str, key: &str) -> reqwest::RequestBuilder {
    client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "Hi"}]}))
}

#[tokio::test]
async fn a_killed_replicas_budget_hold_is_released_after_its_lease() {
    let Some(database_url) = odock_store::testing::postgres_url().await else {
        return;
    };
    let Ok(redis_url) = std::env::var("ODOCK_TEST_REDIS_URL") else {
        eprintln!("skipped: replica crash test (set ODOCK_TEST_REDIS_URL)");
        return;
    };
    let prefix = format!("odock-crash-{}-{}:", std::process::id(), free_port());
    let upstream = hanging_upstream().await;
    let mut a = start_replica(&database_url, &redis_url, &prefix).await;
    let b = start_replica(&database_url, &redis_url, &prefix).await;
    let client = reqwest::Client::new();
    let key = configure(&client, &a.base, upstream).await;

    // A stream through A holds the whole budget; B refuses a second request meanwhile.
    let held = chat(&client, &a.base, &key).send().await.unwrap();
    assert_eq!(held.status(), 200);
    let mut held = held.bytes_stream();
    let first = held.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Hel"));
    let refused = chat(&client, &b.base, &key).send().await.unwrap();
    assert_eq!(refused.status(), 402);

    // A dies without settling anything.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed_at = Instant::now();
    drop(held);

    // B's sweeper releases A's hold once the lease (not refreshed by the dead replica) expires.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = chat(&client, &b.base, &key).send().await.unwrap();
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 402);
        assert!(
            Instant::now() < deadline,
            "the dead replica's hold was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        killed_at.elapsed() >= Duration::from_millis(LEASE_MS / 2),
        "released before the lease could have expired"
    );
}
