//! Several replicas on one PostgreSQL and one Redis behave as one gateway: budgets, quotas and rate
//! limits hold in total across replicas, and a key revoked on one replica is refused on the others
//! within a second. Skipped, saying so, when `ODOCK_TEST_DATABASE_URL` / `ODOCK_TEST_REDIS_URL` are
//! unset; in CI both are set and a missing service fails the test.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{replicas, FakeOpenAi, TestServer, World};

/// Each request is estimated and billed exactly this much: 644 output tokens at $8/1M.
const COST_PER_REQUEST: i64 = 5_152_000;

fn chat_body() -> Value {
    json!({"model": "metered", "max_tokens": 644, "messages": [{"role": "user", "content": "Hi"}]})
}

/// A model whose estimate equals its cost, granted to the world's key.
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

/// `n` concurrent requests spread round-robin over the replicas; the statuses.
async fn spread(servers: &[TestServer], key: &str, n: usize) -> Vec<u16> {
    let requests = (0..n).map(|i| {
        let server = &servers[i % servers.len()];
        async move { server.chat(key, chat_body()).await.status().as_u16() }
    });
    join_all(requests).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn a_budget_a_quota_and_a_rate_limit_hold_in_total_across_three_replicas() {
    let Some(servers) = replicas(3).await else {
        return;
    };
    let upstream = FakeOpenAi::start().await;

    // A budget for exactly 7 requests: 200 concurrent requests over three replicas admit 7.
    let world = World::create(&servers[0], &upstream).await;
    metered_model(&servers[0], &world).await;
    servers[1]
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/budgets", world.org),
            Some(
                json!({"name": "seven", "ownerType": "ORG", "amountNanos": 7 * COST_PER_REQUEST,
                        "period": "MONTHLY"}),
            ),
        )
        .await;
    let statuses = spread(&servers, &world.key, 200).await;
    assert_eq!(count(&statuses, 200), 7, "{statuses:?}");
    assert_eq!(count(&statuses, 402), 193, "{statuses:?}");
    assert_eq!(upstream.received().len(), 7);

    // A REQUESTS quota of 5 on a key: exactly 5 of 60 succeed, wherever they land.
    let world = World::create(&servers[1], &upstream).await;
    metered_model(&servers[1], &world).await;
    servers[2]
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/quotas", world.org),
            Some(
                json!({"name": "five", "ownerType": "APIKEY", "ownerId": world.key_id,
                        "metric": "REQUESTS", "limit": 5, "period": "DAILY"}),
            ),
        )
        .await;
    let statuses = spread(&servers, &world.key, 60).await;
    assert_eq!(count(&statuses, 200), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 55, "{statuses:?}");

    // 4 requests per minute on a key: exactly 4 of 30 pass the limiter, across replicas.
    let world = World::create(&servers[2], &upstream).await;
    metered_model(&servers[2], &world).await;
    servers[0]
        .admin_ok(
            Method::PATCH,
            &format!("/api/organisations/{}/apikeys/{}", world.org, world.key_id),
            Some(json!({"policies": {"requestsPerMinute": 4}})),
        )
        .await;
    let statuses = spread(&servers, &world.key, 30).await;
    assert_eq!(count(&statuses, 200), 4, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 26, "{statuses:?}");
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_on_another_within_a_second() {
    let Some(servers) = replicas(2).await else {
        return;
    };
    let upstream = FakeOpenAi::start().await;
    let world = World::create(&servers[0], &upstream).await;
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]});
    // B has the key in its cache.
    assert_eq!(
        servers[1].chat(&world.key, body.clone()).await.status(),
        200
    );
    assert_eq!(
        servers[1].chat(&world.key, body.clone()).await.status(),
        200
    );

    servers[0]
        .admin_ok(
            Method::POST,
            &format!(
                "/api/organisations/{}/apikeys/{}/revoke",
                world.org, world.key_id
            ),
            None,
        )
        .await;
    let revoked_at = Instant::now();
    loop {
        let status = servers[1].chat(&world.key, body.clone()).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "replica B still accepted the revoked key after a second"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The admin API shows a window's live totals whichever replica is asked: a stream running on one
/// replica holds its estimate, visible from another, and its partial usage once it is dropped.
#[tokio::test]
async fn an_in_flight_hold_is_visible_through_the_admin_api_of_any_replica() {
    let Some(servers) = replicas(2).await else {
        return;
    };
    let upstream = FakeOpenAi::start().await;
    let world = World::create(&servers[0], &upstream).await;
    let endless = servers[0]
        .create_priced_model(
            &world.org,
            &world.provider,
            "endless-metered",
            "endless",
            "chat",
            json!({"output": {"text": 8_000_000_000i64}}),
        )
        .await;
    servers[0].grant(&world.org, &world.key_id, &endless).await;
    let budget = servers[0]
        .admin_ok(
            Method::POST,
            &format!("/api/organisations/{}/budgets", world.org),
            Some(json!({"name": "big", "ownerType": "ORG", "amountNanos": 1_000_000_000_000i64, "period": "MONTHLY"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/organisations/{}/budgets/{budget}/windows", world.org);
    async fn window(server: &TestServer, path: &str) -> Value {
        server.admin_ok(Method::GET, path, None).await["data"][0].clone()
    }

    let mut response = servers[0]
        .client
        .post(servers[0].url("/v1/chat/completions"))
        .bearer_auth(&world.key)
        .json(
            &json!({"model": "endless-metered", "stream": true, "max_tokens": 100000,
                      "messages": [{"role": "user", "content": "go"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // 100,000 output tokens at $8/1M are held, as replica B sees it.
    assert_eq!(
        window(&servers[1], &path).await["reservedNanos"],
        800_000_000
    );
    for _ in 0..3 {
        response.chunk().await.unwrap().expect("stream continues");
    }
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let totals = window(&servers[1], &path).await;
        if totals["reservedNanos"] == 0 && totals["usedNanos"].as_i64().unwrap() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "hold never settled: {totals}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
