//! The schema migrations: every table exists, and re-opening a database is a no-op.

use odock_store::{connect, connect_in_memory, DbOptions};
use sqlx::SqlitePool;

const TABLES: &[&str] = &[
    "organisations",
    "users",
    "organisation_invitations",
    "teams",
    "team_members",
    "api_keys",
    "api_key_rotations",
    "providers",
    "provider_api_keys",
    "models",
    "api_key_model_access",
    "mcp_servers",
    "api_key_mcp_access",
    "usage",
    "usage_records",
    "mcp_usage_records",
    "budgets",
    "budget_windows",
    "quotas",
    "quota_windows",
    "budget_requests",
    "budget_reservations",
    "quota_reservations",
];

async fn tables(pool: &SqlitePool) -> Vec<String> {
    sqlx::query_as::<_, (String,)>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(pool)
        .await
        .unwrap_or_else(|error| panic!("listing tables: {error}"))
        .into_iter()
        .map(|(name,)| name)
        .collect()
}

fn assert_all_tables(present: &[String]) {
    let missing: Vec<_> = TABLES
        .iter()
        .filter(|table| !present.iter().any(|name| name == *table))
        .collect();
    assert!(missing.is_empty(), "missing tables: {missing:?}");
}

#[tokio::test]
async fn in_memory_database_has_every_table() {
    let pool = connect_in_memory().await.unwrap();
    assert_all_tables(&tables(&pool).await);
    let (foreign_keys,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
}

#[tokio::test]
async fn file_database_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/x.db", dir.path().display());

    let pool = connect(&url, &DbOptions::default()).await.unwrap();
    assert_all_tables(&tables(&pool).await);
    sqlx::query(
        "INSERT INTO organisations (id, name, slug, created_at, updated_at)
         VALUES ('org1', 'Acme', 'acme', 0, 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (applied,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;

    // Opening again applies nothing new and keeps the data.
    let pool = connect(&url, &DbOptions::default()).await.unwrap();
    assert_all_tables(&tables(&pool).await);
    let (again,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(again, applied);
    let (orgs,): (i64,) = sqlx::query_as("SELECT count(*) FROM organisations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orgs, 1);
    pool.close().await;
}

#[tokio::test]
async fn non_sqlite_urls_are_refused() {
    assert!(connect("postgres://localhost/x", &DbOptions::default())
        .await
        .is_err());
}
