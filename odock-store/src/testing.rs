//! Databases for tests: the same suites run on SQLite and on PostgreSQL.
//!
//! [`database`] gives a fresh, migrated database: in-memory SQLite by default, or — when
//! `ODOCK_TEST_BACKEND=postgres` — a fresh schema of the PostgreSQL server at
//! `ODOCK_TEST_DATABASE_URL`, so every test that asks for "a database" is parameterised over both
//! backends by running the suite once per backend. [`postgres_url`] is for tests that need
//! PostgreSQL specifically (several replicas on one database); they skip, saying so, when it is
//! not configured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{connect, connect_in_memory, Db, DbError, DbOptions};

/// Which backend the suite runs on (`ODOCK_TEST_BACKEND`: `sqlite`, the default, or `postgres`).
pub fn backend_is_postgres() -> bool {
    std::env::var("ODOCK_TEST_BACKEND").is_ok_and(|value| value.eq_ignore_ascii_case("postgres"))
}

/// The PostgreSQL server for tests (`ODOCK_TEST_DATABASE_URL`), if configured.
pub fn postgres_server_url() -> Option<String> {
    std::env::var("ODOCK_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// A fresh, migrated database of the suite's backend.
///
/// # Panics
/// When `ODOCK_TEST_BACKEND=postgres` but the server is not configured or not reachable: a suite
/// asked to run on PostgreSQL must not silently run on SQLite.
pub async fn database() -> Db {
    if backend_is_postgres() {
        let Some(server) = postgres_server_url() else {
            panic!("ODOCK_TEST_BACKEND=postgres needs ODOCK_TEST_DATABASE_URL");
        };
        let url = fresh_schema_url(&server)
            .await
            .unwrap_or_else(|e| panic!("creating a test schema on {server}: {e}"));
        connect(&url, &DbOptions::default())
            .await
            .unwrap_or_else(|e| panic!("connecting to the test schema: {e}"))
    } else {
        connect_in_memory()
            .await
            .unwrap_or_else(|e| panic!("in-memory SQLite: {e}"))
    }
}

/// A database URL for tests that share one database between several pools (several server
/// replicas, a restarted server): a fresh PostgreSQL schema on the suite's PostgreSQL backend, else a
/// new SQLite file in `dir`.
pub async fn shared_database_url(dir: &std::path::Path) -> String {
    if backend_is_postgres() {
        postgres_url()
            .await
            .unwrap_or_else(|| panic!("ODOCK_TEST_BACKEND=postgres needs ODOCK_TEST_DATABASE_URL"))
    } else {
        format!("sqlite://{}", dir.join("odock-test.db").display())
    }
}

/// The URL of a fresh, empty schema on the test PostgreSQL server, or `None` (with a note on stderr)
/// when `ODOCK_TEST_DATABASE_URL` is not set.
///
/// # Panics
/// When the server is configured but unreachable: in CI a missing service must fail the run.
pub async fn postgres_url() -> Option<String> {
    let Some(server) = postgres_server_url() else {
        eprintln!("skipped: PostgreSQL test (set ODOCK_TEST_DATABASE_URL to run it)");
        return None;
    };
    match fresh_schema_url(&server).await {
        Ok(url) => Some(url),
        Err(e) => panic!("ODOCK_TEST_DATABASE_URL is set but {server} is unusable: {e}"),
    }
}

/// Creates a schema with a unique name and returns a URL whose connections use it. Schemas of
/// earlier runs older than a day are dropped on the way, so test runs don't accumulate them.
async fn fresh_schema_url(server: &str) -> Result<String, DbError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let schema = format!(
        "odock_t_{now}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::any::install_default_drivers();
    let admin = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(server)
        .await?;
    drop_stale_schemas(&admin, now).await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let separator = if server.contains('?') { '&' } else { '?' };
    Ok(format!(
        "{server}{separator}options=-c%20search_path%3D{schema}"
    ))
}

async fn drop_stale_schemas(admin: &Db, now: u64) -> Result<(), DbError> {
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT CAST(nspname AS TEXT) FROM pg_namespace WHERE nspname LIKE 'odock\\_t\\_%'",
    )
    .fetch_all(admin)
    .await?;
    for (name,) in names {
        let created: Option<u64> = name.split('_').nth(2).and_then(|s| s.parse().ok());
        if created.is_some_and(|created| now.saturating_sub(created) > 86_400) {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(admin)
                .await?;
        }
    }
    Ok(())
}
