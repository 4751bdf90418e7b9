//! Budget ledger admission cost: one `reserve` + `settle` pair against an organisation budget, on
//! each ledger implementation — SQL on a SQLite file, SQL on PostgreSQL, and Redis (Lua) over a
//! PostgreSQL system of record. The PostgreSQL and Redis variants run when `ODOCK_TEST_DATABASE_URL`
//! / `ODOCK_TEST_REDIS_URL` are set (a fresh schema and a fresh key prefix per run).
//!
//! `ODOCK_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test ODOCK_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench ledgers`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use odock::core::{
    ApiKeyId, ApiKeyType, BudgetLedger, Clock, OrganisationId, Principal, RequestId, SystemClock,
};
use odock::store::db::Db;
use odock::store::redis::{RedisConnection, RedisSettings};
use odock::store::{connect, DbOptions, LedgerOptions, SqlBudgetLedger};

const ORG: &str = "org_bench";

async fn seed(pool: &Db) {
    for sql in [
        "INSERT INTO organisations (id, name, slug, created_at, updated_at) VALUES ('org_bench', 'B', 'b', 0, 0)",
        "INSERT INTO api_keys (id, organisation_id, name, type, key_hash, preview, created_at, updated_at) \
         VALUES ('key_bench', 'org_bench', 'k', 'ORGANISATION', 'h', 'p', 0, 0)",
        "INSERT INTO budgets (id, organisation_id, name, owner_type, amount_nanos, period, start_at, \
         timezone, active, created_at, updated_at) VALUES ('budget_bench', 'org_bench', 'b', 'ORG', \
         9000000000000000000, 'MONTHLY', 0, 'UTC', 1, 0, 0)",
    ] {
        if let Err(e) = sqlx::query(sql).execute(pool).await {
            panic!("seeding the bench database: {e}");
        }
    }
}

fn principal() -> Principal {
    Principal {
        api_key_id: ApiKeyId::new("key_bench"),
        organisation_id: OrganisationId::new(ORG),
        key_type: ApiKeyType::Organisation,
        team_id: None,
        user_id: None,
        expires_at: None,
        revoked: false,
    }
}

fn bench_ledger(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    ledger: Arc<dyn BudgetLedger>,
) {
    let principal = principal();
    let next = AtomicU64::new(0);
    c.bench_function(&format!("ledger/{name}/reserve_settle"), |b| {
        b.to_async(rt).iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let (ledger, principal) = (ledger.clone(), principal.clone());
            async move {
                let request =
                    RequestId::parse(&format!("bench-{n}")).unwrap_or_else(RequestId::generate);
                let reservation = match ledger.reserve(&principal, &request, 5_000_000).await {
                    Ok(r) => r,
                    Err(e) => panic!("reserve: {e}"),
                };
                if let Err(e) = ledger.settle(&reservation, 4_000_000).await {
                    panic!("settle: {e}");
                }
            }
        })
    });
}

fn ledgers(c: &mut Criterion) {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = DbOptions {
        max_connections: 4,
        ..DbOptions::default()
    };

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sqlite = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let pool = connect(&url, &options)
            .await
            .unwrap_or_else(|e| panic!("sqlite: {e}"));
        seed(&pool).await;
        pool
    });
    let ledger = SqlBudgetLedger::new(sqlite, clock.clone(), LedgerOptions::default());
    bench_ledger(c, &rt, "sqlite", Arc::new(ledger));

    let Some(postgres) = rt.block_on(async {
        let url = odock::store::testing::postgres_url().await?;
        let pool = connect(&url, &options)
            .await
            .unwrap_or_else(|e| panic!("postgres: {e}"));
        seed(&pool).await;
        Some(pool)
    }) else {
        return;
    };
    let ledger = SqlBudgetLedger::new(postgres.clone(), clock.clone(), LedgerOptions::default());
    bench_ledger(c, &rt, "postgres", Arc::new(ledger));

    let Ok(redis_url) = std::env::var("ODOCK_TEST_REDIS_URL") else {
        eprintln!("skipped: Redis ledger bench (set ODOCK_TEST_REDIS_URL)");
        return;
    };
    let conn = rt.block_on(async {
        let mut settings = RedisSettings::new(redis_url);
        settings.prefix = format!("odock-bench-{}:", std::process::id());
        RedisConnection::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("redis: {e}"))
    });
    let ledger = odock::store::redis::RedisBudgetLedger::new(
        conn,
        postgres,
        clock,
        LedgerOptions::default(),
    );
    bench_ledger(c, &rt, "redis", Arc::new(ledger));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = ledgers
}
criterion_main!(benches);
