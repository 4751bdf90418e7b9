//! MCP sessions across replicas: a stdio session opened on replica A keeps working when its next
//! requests land on replica B (B forwards them to A, which owns the child process and governs and
//! records each call once), and when A is gone B answers the MCP "unknown session" 404 instead of
//! hanging. Two servers on one PostgreSQL schema and one Redis prefix; skipped, saying so, when
//! `ODOCK_TEST_DATABASE_URL` / `ODOCK_TEST_REDIS_URL` are unset (a failure when set but unusable).

use std::time::Duration;

use serde_json::json;

use crate::mcp::{Client, McpWorld};
use crate::support::{replicas, TestServer};

/// The value of the `odock_mcp_stdio_processes` gauge on `server`.
async fn stdio_processes(server: &TestServer) -> u64 {
    let text = server.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix("odock_mcp_stdio_processes "))
        .unwrap_or_else(|| panic!("no stdio process gauge in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_mcp_session_opened_on_replica_a_works_when_its_next_requests_land_on_replica_b() {
    // No advertise URL: each replica advertises the loopback address it is bound to.
    let Some(mut servers) = replicas(2).await else {
        return;
    };
    let (mut b, mut a) = (servers.pop().unwrap(), servers.pop().unwrap());
    let database_url = a.database_url.clone();
    let world = McpWorld::create(&a).await;
    world.stdio_server(&a, "files").await;

    let mut on_a = Client::new(&a, "files", &world.key);
    let initialized = on_a.initialize().await;
    let session = initialized.session.clone().expect("a minted session id");

    // The same session, now through B.
    let mut on_b = Client::new(&b, "files", &world.key);
    on_b.session = Some(session.clone());
    let listed = on_b
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let tools: Vec<&str> = listed.response(1)["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {}", listed.text))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert!(tools.contains(&"echo"), "{tools:?}");
    assert!(
        !tools.contains(&"secret_tool"),
        "A applied the key's tool rules: {tools:?}"
    );
    let called = on_b.call(2, "echo", json!({"text": "via B"})).await;
    assert_eq!(called.status, 200, "{}", called.text);
    assert!(
        called.response(2)["result"].to_string().contains("via B"),
        "{}",
        called.text
    );

    // A streamed reply (progress notifications, then the result) is relayed through B.
    let progress = on_b.call(3, "slow_progress", json!({"steps": 2})).await;
    assert_eq!(progress.status, 200, "{}", progress.text);
    assert!(
        progress
            .messages
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{}",
        progress.text
    );
    assert!(
        progress.response(3)["result"].is_object(),
        "{}",
        progress.text
    );

    // The child process lives on A only; B never started one.
    assert_eq!(stdio_processes(&a).await, 1);
    assert_eq!(stdio_processes(&b).await, 0);

    // A second session, ended with a DELETE sent to B: A's process for it is reaped.
    let mut second = Client::new(&a, "files", &world.key);
    let second_session = second.initialize().await.session.expect("a second session");
    assert_eq!(stdio_processes(&a).await, 2);
    let ended = b
        .client
        .delete(b.url("/v1/mcp/files"))
        .bearer_auth(&world.key)
        .header("mcp-session-id", &second_session)
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stdio_processes(&a).await != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended session's process was not reaped on A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stdio_processes(&b).await, 0);

    // Each forwarded call was governed and recorded once, on A, under the id the client saw.
    for request_id in [&listed.request_id, &called.request_id, &progress.request_id] {
        assert!(!request_id.is_empty());
        a.usage_record(&world.org, request_id).await;
    }

    // A goes away: B forgets A's session and answers it like any session it does not know.
    a.stop().await;
    let after = tokio::time::timeout(
        Duration::from_secs(15),
        on_b.post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"})),
    )
    .await
    .expect("B answers promptly when the owner is gone");
    assert_eq!(after.status, 404, "{}", after.text);
    assert_eq!(stdio_processes(&b).await, 0);

    // Every request left exactly one usage record: none was counted on both replicas.
    b.stop().await;
    let pool = odock_store::connect(&database_url, &odock_store::DbOptions::default())
        .await
        .unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT request_id, COUNT(*) AS n FROM usage_records WHERE organisation_id = $1 GROUP BY request_id",
    )
    .bind(&world.org)
    .fetch_all(&pool)
    .await
    .unwrap();
    for request_id in [&listed.request_id, &called.request_id, &progress.request_id] {
        assert_eq!(
            rows.iter()
                .find(|(id, _)| id == request_id)
                .map(|(_, n)| *n),
            Some(1),
            "{rows:?}"
        );
    }
    assert!(rows.iter().all(|(_, n)| *n == 1), "{rows:?}");
}
