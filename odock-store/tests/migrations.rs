//! The schema migrations: every table exists, and re-opening a database is a no-op.
#![allow(clippy::unwrap_used)]

use odock_store::db::Db;
use odock_store::{connect, connect_in_memory, DbOptions};

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
    "usage_rollups",
    "usage_records",
    "mcp_usage_records",
    "budgets",
    "budget_windows",
    "quotas",
    "quota_windows",
    "budget_requests",
    "budget_reservations",
    "quota_reservations",
    "notification_channels",
    "alerts",
    "alert_deliveries",
];

async fn tables(pool: &Db) -> Vec<String> {
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
async fn unknown_database_urls_are_refused() {
    assert!(connect("mysql://localhost/x", &DbOptions::default())
        .await
        .is_err());
}

/// Every table's columns, sorted, from SQLite's catalogue.
async fn sqlite_columns(pool: &Db) -> Vec<(String, String)> {
    let mut columns = Vec::new();
    for table in tables(pool).await {
        if table.starts_with("_sqlx") || table.starts_with("sqlite_") {
            continue;
        }
        let names: Vec<(String,)> =
            sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(pool)
                .await
                .unwrap();
        columns.extend(names.into_iter().map(|(name,)| (table.clone(), name)));
    }
    columns.sort();
    columns
}

/// The PostgreSQL migrations build the same tables with the same columns as the SQLite ones.
#[tokio::test]
async fn postgres_schema_matches_sqlite() {
    let Some(url) = odock_store::testing::postgres_url().await else {
        return;
    };
    let pg = connect(&url, &DbOptions::default()).await.unwrap();
    let mut pg_columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&pg)
    .await
    .unwrap();
    pg_columns.sort();
    let sqlite = connect_in_memory().await.unwrap();
    let sqlite_columns = sqlite_columns(&sqlite).await;
    assert!(pg_columns.len() > 100, "{} columns", pg_columns.len());
    assert_eq!(pg_columns, sqlite_columns);

    // Re-running the migrations on the same schema is a no-op.
    pg.close().await;
    let again = connect(&url, &DbOptions::default()).await.unwrap();
    let (orgs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM organisations")
        .fetch_one(&again)
        .await
        .unwrap();
    assert_eq!(orgs, 0);
}
