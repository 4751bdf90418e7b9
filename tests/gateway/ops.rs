//! Health, readiness, metrics and graceful shutdown.

use serde_json::{json, Value};

use crate::support::{FakeOpenAi, TestServer, World};

#[tokio::test]
async fn health_and_readiness_report_ok() {
    let server = TestServer::start().await;
    let health: Value = server
        .client
        .get(server.url("/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let response = server
        .client
        .get(server.url("/v1/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(
        ready,
        json!({"status": "ready", "checks": {"database": "ok", "redis": "disabled", "usage": "ok"}})
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_class() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start().await;
    let world = World::create(&server, &upstream).await;
    assert_eq!(
        server
            .chat(&world.key, json!({"model": "gpt-4o"}))
            .await
            .status(),
        200
    );
    assert_eq!(
        server
            .chat("sk_bad", json!({"model": "gpt-4o"}))
            .await
            .status(),
        401
    );

    let text = server.metrics_text().await;
    assert!(
        text.contains(r#"odock_requests_total{route="/v1/chat/completions",status_class="2xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"odock_requests_total{route="/v1/chat/completions",status_class="4xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("odock_request_duration_seconds_bucket{route=\"/v1/chat/completions\""),
        "{text}"
    );
    assert!(text.contains("odock_usage_queue_depth "), "{text}");
    assert!(text.contains("odock_cache_hits_total "), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_flushes_usage_records() {
    let upstream = FakeOpenAi::start().await;
    let mut server = TestServer::start_with(|config| config.usage_flush_interval_ms = 60_000).await;
    let world = World::create(&server, &upstream).await;
    for i in 0..20 {
        let response = server
            .client
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&world.key)
            .header("x-request-id", format!("flush-{i}"))
            .json(&json!({"model": "gpt-4o"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    server.stop().await;

    let pool = server.pool().await;
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_records WHERE request_id LIKE 'flush-%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(count, 20);
}

/// A database that answers `SELECT 1` but refuses every usage write is not "ready": readiness
/// says so once the oldest unwritten record is older than the bound, and recovers by itself.
#[tokio::test]
async fn readiness_reports_a_usage_writer_that_cannot_write() {
    let upstream = FakeOpenAi::start().await;
    let server = TestServer::start_with(|config| config.usage_max_lag_secs = 1).await;
    let world = World::create(&server, &upstream).await;
    let db = server.pool().await;
    sqlx::query("ALTER TABLE usage_records RENAME TO usage_records_away")
        .execute(&db)
        .await
        .unwrap();
    let response = server
        .chat(
            &world.key,
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200, "requests are still served");
    let readiness = || async {
        let response = server
            .client
            .get(server.url("/v1/healthz"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let (status, body) = readiness().await;
        if status == 503 {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "still ready: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(body["checks"]["database"], "ok");
    assert!(body["checks"]["usage"]
        .as_str()
        .unwrap()
        .contains("not yet stored"));
    sqlx::query("ALTER TABLE usage_records_away RENAME TO usage_records")
        .execute(&db)
        .await
        .unwrap();
    server.flush_usage().await;
    assert_eq!(readiness().await.0, 200);
}
