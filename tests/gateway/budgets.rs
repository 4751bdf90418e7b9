//! Budgets and quotas hold under concurrency, through the real server: exactly the admitted
//! requests reach the upstream, the rest are refused before it, and every hold is settled.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{json, Value};

use crate::support::{FakeOpenAi, TestServer, World, INVALIDATION_SECRET};

/// Each request is estimated and billed exactly this much: 644 output tokens at $8/1M (input free).
const COST_PER_REQUEST: i64 = 5_152_000;

async fn pool(server: &TestServer) -> odock_store::db::Db {
    server.pool().await
}

/// A model whose estimate equals its actual cost, granted to the world's key.
async fn metered_model(server: &TestServer, world: &World) {
    let model = server
        .create_priced_model(
            &world.org,
            &world.provider,
            "metered",
            "gpt-4o-upstream",
            "chat",
            json!({"output": {"text": 8_000_000_000i64}}),
        )
        .await;
    server.grant(&world.org, &world.key_id, &model).await;
}

async fn invalidate(server: &TestServer, kind: &str, id: &str) {
    let response = server
        .client
        .post(server.url("/v1/internal/cache/invalidate"))
        .header("x-odock-invalidation-secret", INVALIDATION_SECRET)
        .json(&json!({"commands": [{"kind": kind, "id": id}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn insert_rule(
    pool: &odock_store::db::Db,
    table: &str,
    id: &str,
    org: &str,
    amount: i64,
    metric: Option<&str>,
) {
    let now = chrono::Utc::now().timestamp_millis();
    let sql = match table {
        "budgets" => "INSERT INTO budgets (id, organisation_id, name, owner_type, amount_nanos, period, start_at, timezone, created_at, updated_at) VALUES ($1, $2, $3, 'ORG', $4, 'MONTHLY', $5, 'UTC', $6, $7)",
        _ => "INSERT INTO quotas (id, organisation_id, name, owner_type, limit_value, period, start_at, timezone, created_at, updated_at, metric) VALUES ($1, $2, $3, 'ORG', $4, 'MONTHLY', $5, 'UTC', $6, $7, $8)",
    };
    let mut query = sqlx::query(sql)
        .bind(id)
        .bind(org)
        .bind(format!("{id}-name"))
        .bind(amount)
        .bind(now - 1_000)
        .bind(now)
        .bind(now);
    if let Some(metric) = metric {
        query = query.bind(metric);
    }
    query.execute(pool).await.unwrap();
}

async fn fire(server: &TestServer, key: &str, n: usize) -> Vec<(u16, Value, Option<String>)> {
    let requests = (0..n).map(|_| async {
        let response = server
            .client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": "metered", "max_tokens": 644, "messages": [{"role": "user", "content": "Hi"}]}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body, retry_after)
    });
    join_all(requests).await
}

/// Waits until `check` holds for the window row of `rule` (settlement happens off the request path).
async fn wait_for_window(pool: &odock_store::db::Db, sql: &str, rule: &str, expected: (i64, i64)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row: Option<(i64, i64)> = sqlx::query_as(sql)
            .bind(rule)
            .fetch_optional(pool)
            .await
            .unwrap();
        if row == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "window of {rule} is {row:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_budget_admits_exactly_what_it_can_pay_for_under_200_concurrent_requests() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    metered_model(&server, &world).await;
    let db = pool(&server).await;
    insert_rule(
        &db,
        "budgets",
        "budget-7",
        &world.org,
        7 * COST_PER_REQUEST,
        None,
    )
    .await;
    sqlx::query("UPDATE budgets SET thresholds = '[50,80,90,100]' WHERE id = 'budget-7'")
        .execute(&db)
        .await
        .unwrap();
    invalidate(&server, "budget", &world.org).await;

    let results = fire(&server, &world.key, 200).await;
    let admitted = results.iter().filter(|(s, _, _)| *s == 200).count();
    let refused: Vec<_> = results.iter().filter(|(s, _, _)| *s != 200).collect();
    assert_eq!(admitted, 7);
    assert_eq!(refused.len(), 193);
    for (status, body, _) in refused {
        assert_eq!(*status, 402);
        assert_eq!(body["error"]["code"], "budget_exceeded");
        assert_eq!(body["error"]["type"], "insufficient_quota");
    }
    assert_eq!(
        upstream.received().len(),
        7,
        "only admitted requests reach the upstream"
    );
    // The records of refused requests say which rule refused them (records are written in batches).
    let denied_by_budget = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM usage_records WHERE error_code = 'budget_exceeded' \
             AND metadata LIKE '%\"deniedBy\":\"budget `budget-7-name` exceeded\"%'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while denied_by_budget().await < 193 {
        assert!(Instant::now() < deadline, "denied records never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(denied_by_budget().await, 193);
    // Every hold is settled with the actual cost: spend equals the budget, nothing stays reserved.
    wait_for_window(
        &db,
        "SELECT used_nanos, reserved_nanos FROM budget_windows WHERE budget_id = $1",
        "budget-7",
        (7 * COST_PER_REQUEST, 0),
    )
    .await;
    // Spend went 4/7 → 6/7 → 7/7 of the amount across settlements: each warning threshold was
    // crossed exactly once, and the metrics say so.
    let metrics = server.metrics_text().await;
    for threshold in [50, 80, 90, 100] {
        let line = format!("odock_budget_threshold_crossings_total{{threshold=\"{threshold}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn a_requests_quota_admits_exactly_its_limit_and_says_when_to_retry() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    metered_model(&server, &world).await;
    let db = pool(&server).await;
    insert_rule(&db, "quotas", "quota-5", &world.org, 5, Some("REQUESTS")).await;
    invalidate(&server, "quota", &world.org).await;

    let results = fire(&server, &world.key, 60).await;
    assert_eq!(results.iter().filter(|(s, _, _)| *s == 200).count(), 5);
    for (status, body, retry_after) in results.iter().filter(|(s, _, _)| *s != 200) {
        assert_eq!(*status, 429);
        assert_eq!(body["error"]["code"], "quota_exceeded");
        let seconds: u64 = retry_after
            .as_deref()
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(seconds > 0 && seconds <= 32 * 86_400, "{seconds}");
    }
    wait_for_window(
        &db,
        "SELECT used, reserved FROM quota_windows WHERE quota_id = $1",
        "quota-5",
        (5, 0),
    )
    .await;
}

#[tokio::test]
async fn an_aborted_stream_settles_its_partial_usage_and_releases_the_rest() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    let endless = server
        .create_priced_model(
            &world.org,
            &world.provider,
            "endless-metered",
            "endless",
            "chat",
            json!({"output": {"text": 8_000_000_000i64}}),
        )
        .await;
    server.grant(&world.org, &world.key_id, &endless).await;
    let db = pool(&server).await;
    insert_rule(
        &db,
        "budgets",
        "budget-big",
        &world.org,
        1_000_000_000_000,
        None,
    )
    .await;
    invalidate(&server, "budget", &world.org).await;

    let mut response = server
        .client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .header("x-request-id", "budget-abort-1")
        .json(&json!({"model": "endless-metered", "stream": true, "max_tokens": 100000, "messages": [{"role": "user", "content": "go"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // While the stream runs, its estimate (100,000 tokens × $8/1M) is held, as the admin API shows.
    let windows = server
        .admin_ok(
            reqwest::Method::GET,
            &format!(
                "/api/organisations/{}/budgets/budget-big/windows",
                world.org
            ),
            None,
        )
        .await;
    assert_eq!(windows["data"][0]["reservedNanos"], 800_000_000);
    for _ in 0..5 {
        response.chunk().await.unwrap().expect("stream continues");
    }
    drop(response);

    let record = server.usage_record(&world.org, "budget-abort-1").await;
    let billed = record["costNanosUsd"].as_i64().unwrap();
    assert!(billed > 0);
    wait_for_window(
        &db,
        "SELECT used_nanos, reserved_nanos FROM budget_windows WHERE budget_id = $1",
        "budget-big",
        (billed, 0),
    )
    .await;
}
