//! Cancellation safety of the governed path: clients that give up at every stage — before
//! admission, during it, while the upstream works, in the middle of a stream — must leave nothing
//! behind. Afterwards the next governed request is admitted at once, no hold or concurrency slot
//! remains, every answered request has exactly one usage record, and the budget's `used` is the sum
//! of the records' costs (nothing lost, nothing counted twice).
//!
//! Runs on the suite's database (SQLite, or PostgreSQL with `ODOCK_TEST_BACKEND=postgres`) in
//! embedded mode, and again with the Redis ledgers when `ODOCK_TEST_REDIS_URL` is set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use odock::core::Secret;
use serde_json::{json, Value};

use crate::support::{FakeOpenAi, TestServer, World};

/// Concurrent clients in the storm, and requests each sends.
const CLIENTS: usize = 48;
const REQUESTS_PER_CLIENT: usize = 50;
/// The key may hold this many requests at once: a single leaked slot would show in the check
/// burst that follows the storm (which uses all of them). Above the storm's concurrency, because a
/// shared (Redis) slot is given back by a settlement that runs just after the response ends.
const MAX_CONCURRENT: usize = 64;

struct Governed {
    world: World,
    budget: String,
    quota: String,
}

async fn governed_world(server: &TestServer, upstream: &FakeOpenAi) -> Governed {
    let world = World::create(server, upstream).await;
    let root = format!("/api/organisations/{}", world.org);
    for (name, slug) in [("slow", "slow"), ("endless", "endless")] {
        let model = server
            .create_model(&world.org, &world.provider, name, slug)
            .await;
        server.grant(&world.org, &world.key_id, &model).await;
    }
    let budget = server
        .admin_ok(
            reqwest::Method::POST,
            &format!("{root}/budgets"),
            Some(json!({"name": "storm budget", "ownerType": "ORG",
                        "amountNanos": 1_000_000_000_000_000i64, "period": "MONTHLY"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let quota = server
        .admin_ok(
            reqwest::Method::POST,
            &format!("{root}/quotas"),
            Some(
                json!({"name": "storm quota", "ownerType": "APIKEY", "ownerId": world.key_id,
                        "metric": "REQUESTS", "limit": 1_000_000_000i64, "period": "DAILY"}),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server
        .admin_ok(
            reqwest::Method::PATCH,
            &format!("{root}/apikeys/{}", world.key_id),
            Some(json!({"policies": {"requestsPerMinute": 10_000_000, "tokensPerMinute": 1_000_000_000_000i64,
                                     "maxConcurrentRequests": MAX_CONCURRENT}})),
        )
        .await;
    Governed {
        world,
        budget,
        quota,
    }
}

/// What one storm request does, by its index: which model, streamed or not, and how long the
/// client waits before it gives up. Deterministic, so a failure can be replayed.
fn plan(i: usize) -> (&'static str, bool, Duration) {
    let micros = |n: u64| Duration::from_micros(n);
    match i % 6 {
        // Given up before or while the gateway authenticates and admits.
        0 => ("gpt-4o", false, micros((i as u64 * 37) % 8_000)),
        1 => ("gpt-4o", true, micros((i as u64 * 53) % 12_000)),
        // Given up while the upstream thinks (it would answer after 5 s).
        2 => ("slow", false, micros(2_000 + (i as u64 * 71) % 30_000)),
        // Given up in the middle of a stream (a chunk every 5 ms).
        3 => ("endless", true, micros(5_000 + (i as u64 * 97) % 40_000)),
        // Allowed to finish.
        _ => ("gpt-4o", i.is_multiple_of(2), Duration::from_secs(10)),
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 64,
           "messages": [{"role": "user", "content": "Tell me something, anything at all."}]})
}

/// Sends `body` and reads the whole answer within `deadline`: the request id of a 200 answered
/// whole, else what happened instead.
async fn attempt(
    server: &TestServer,
    key: &str,
    body: &Value,
    deadline: Duration,
) -> Result<String, String> {
    let exchange = async {
        let response = server
            .client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status == 200 {
            Ok(id)
        } else {
            Err(format!("{status}: {text}"))
        }
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or_else(|_| Err("gave up".to_owned()))
}

/// [`attempt`], retrying a refusal by the key's concurrency limit the way a client would: with the
/// Redis ledgers a slot comes back with a settlement round trip just after its response ends, so a
/// client at its limit can meet one still held (a leaked slot never comes back, and the burst after
/// the storm catches it).
async fn patient_attempt(
    server: &TestServer,
    key: &str,
    body: &Value,
    deadline: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    loop {
        match attempt(server, key, body, deadline).await {
            Err(refusal)
                if refusal.contains("max_concurrent_requests")
                    && started.elapsed() < Duration::from_secs(5) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            outcome => return outcome,
        }
    }
}

async fn storm(server: &TestServer, key: &str) -> Vec<String> {
    let outcomes = stream::iter(0..CLIENTS * REQUESTS_PER_CLIENT)
        .map(|i| async move {
            let (model, streamed, deadline) = plan(i);
            (
                i,
                patient_attempt(server, key, &chat(model, streamed), deadline).await,
            )
        })
        .buffer_unordered(CLIENTS)
        .collect::<Vec<_>>()
        .await;
    let unanswered: Vec<(usize, &String)> = outcomes
        .iter()
        .filter(|(i, _)| plan(*i).2 >= Duration::from_secs(1))
        .filter_map(|(i, answered)| answered.as_ref().err().map(|e| (*i, e)))
        .collect();
    assert!(
        unanswered.is_empty(),
        "requests allowed to finish were not answered: {unanswered:?}"
    );
    outcomes
        .into_iter()
        .filter_map(|(_, answered)| answered.ok())
        .collect()
}

/// The current window of a budget or quota: `(used, reserved)` as the admin API shows them.
async fn current_window(server: &TestServer, org: &str, kind: &str, id: &str) -> (i64, i64) {
    let windows = server
        .admin_ok(
            reqwest::Method::GET,
            &format!("/api/organisations/{org}/{kind}/{id}/windows"),
            None,
        )
        .await;
    let current = &windows["data"][0];
    let (used, reserved) = match kind {
        "budgets" => (&current["usedNanos"], &current["reservedNanos"]),
        _ => (&current["used"], &current["reserved"]),
    };
    (used.as_i64().unwrap_or(0), reserved.as_i64().unwrap_or(0))
}

/// Every usage record of the organisation (all pages).
async fn records(server: &TestServer, org: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/organisations/{org}/usage-records?limit=1000&cursor={c}"),
            None => format!("/api/organisations/{org}/usage-records?limit=1000"),
        };
        let page = server.admin_ok(reqwest::Method::GET, &path, None).await;
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
}

/// Waits until nothing is held any more (holds of cancelled requests end when their records are
/// made, off the request path).
async fn wait_until_nothing_is_held(server: &TestServer, g: &Governed) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let budget = current_window(server, &g.world.org, "budgets", &g.budget).await;
        let quota = current_window(server, &g.world.org, "quotas", &g.quota).await;
        if budget.1 == 0 && quota.1 == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "holds remain after the storm: budget {budget:?}, quota {quota:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check_storm_leaves_nothing_behind(server: TestServer, upstream: FakeOpenAi) {
    let g = governed_world(&server, &upstream).await;
    let key = g.world.key.clone();
    let answered = storm(&server, &key).await;

    // The next governed request is admitted at once.
    let next = attempt(
        &server,
        &key,
        &chat("gpt-4o", false),
        Duration::from_secs(5),
    )
    .await
    .expect("a governed request after the storm is answered");
    // No concurrency slot leaked: the key's whole allowance is available again.
    let body = chat("gpt-4o", false);
    let burst = stream::iter(0..MAX_CONCURRENT)
        .map(|_| attempt(&server, &key, &body, Duration::from_secs(10)))
        .buffer_unordered(MAX_CONCURRENT)
        .filter(|answered| std::future::ready(answered.is_ok()))
        .count()
        .await;
    assert_eq!(
        burst, MAX_CONCURRENT,
        "concurrency slots leaked in the storm"
    );

    wait_until_nothing_is_held(&server, &g).await;
    server.flush_usage().await;

    // Every answered request has exactly one record; no request id was recorded twice.
    let records = records(&server, &g.world.org).await;
    let mut per_request: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        *per_request
            .entry(record["requestId"].as_str().unwrap())
            .or_default() += 1;
    }
    let doubled: Vec<_> = per_request.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "requests recorded twice: {doubled:?}");
    for id in answered.iter().chain(std::iter::once(&next)) {
        assert!(
            per_request.contains_key(id.as_str()),
            "answered request {id} has no usage record"
        );
    }

    // The ledger agrees with the records: what was spent is what the records cost, and the quota
    // counted each admitted request once.
    let spent: i64 = records
        .iter()
        .map(|r| r["costNanosUsd"].as_i64().unwrap_or(0))
        .sum();
    let (used, reserved) = current_window(&server, &g.world.org, "budgets", &g.budget).await;
    assert_eq!(
        (used, reserved),
        (spent, 0),
        "budget window vs. the records' cost"
    );
    let (requests, held) = current_window(&server, &g.world.org, "quotas", &g.quota).await;
    assert_eq!(held, 0);
    assert!(
        requests as usize <= records.len()
            && requests as usize >= answered.len() + 1 + MAX_CONCURRENT,
        "quota counted {requests} requests; {} records, {} answered",
        records.len(),
        answered.len()
    );

    // The database writer is healthy (nothing stuck behind a lock).
    let health = server
        .client
        .get(server.url("/v1/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "{}", health.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_requests_at_every_stage_leave_no_hold_and_lose_no_record() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    check_storm_leaves_nothing_behind(server, upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_requests_leave_nothing_behind_with_the_redis_ledgers() {
    let Ok(redis) = std::env::var("ODOCK_TEST_REDIS_URL") else {
        eprintln!("skipped: ODOCK_TEST_REDIS_URL is not set");
        return;
    };
    let upstream = FakeOpenAi::start().await;
    let prefix = format!("odock-cancel-{}:", odock::core::ids::random_hex(8));
    let server = TestServer::start_with(move |config| {
        config.redis_url = Some(Secret::new(redis));
        config.redis_prefix = prefix;
    })
    .await;
    check_storm_leaves_nothing_behind(server, upstream).await;
}
