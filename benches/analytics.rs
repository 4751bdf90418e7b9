//! The usage summary (`GET .../usage/summary`) over one million usage records of one organisation
//! in a SQLite file (plus 100,000 of another organisation the filters must skip): totals with
//! p50/p95 latency, and the same with groups by day and by model, and a full invoice build.
//!
//! `cargo bench --bench analytics`

use criterion::{criterion_group, criterion_main, Criterion};
use odock_admin::analytics::synthetic::{generate, insert, SyntheticKey, SyntheticSpec};
use odock_admin::analytics::{summary, GroupBy, UsageScope};

const RECORDS: usize = 1_000_000;
const DAY_MS: i64 = 86_400_000;
const START_MS: i64 = 1_717_200_000_000; // 2024-06-01T00:00:00Z

fn spec(organisation: &str, records: usize, seed: u64) -> SyntheticSpec {
    let keys = (0..40)
        .map(|i| SyntheticKey {
            id: format!("{organisation}-key{i}"),
            team_id: (i % 4 != 0).then(|| format!("{organisation}-team{}", i % 8)),
            user_id: (i % 5 == 0).then(|| format!("{organisation}-user{i}")),
        })
        .collect();
    SyntheticSpec {
        organisation_id: organisation.to_owned(),
        keys,
        models: (0..12)
            .map(|i| (format!("model{i}"), format!("model-{i}")))
            .collect(),
        mcp_servers: (0..4)
            .map(|i| (format!("server{i}"), format!("server-{i}")))
            .collect(),
        records,
        start_ms: START_MS,
        span_ms: 30 * DAY_MS,
        seed,
    }
}

fn analytics(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = format!("sqlite://{}", dir.path().join("analytics.db").display());
    let pool = runtime
        .block_on(async {
            let pool = odock_store::connect(&url, &odock_store::DbOptions::default()).await?;
            insert(&pool, &generate(&spec("org-main", RECORDS, 42)))
                .await
                .map_err(odock_store::DbError::from)?;
            insert(&pool, &generate(&spec("org-other", RECORDS / 10, 7)))
                .await
                .map_err(odock_store::DbError::from)?;
            // Fresh statistics, as a long-running database would have.
            sqlx::query("ANALYZE")
                .execute(&pool)
                .await
                .map_err(odock_store::DbError::from)?;
            Ok::<_, odock_store::DbError>(pool)
        })
        .unwrap_or_else(|e| panic!("{e}"));

    let scope = UsageScope::organisation("org-main");
    let mut group = c.benchmark_group("analytics_1m");
    group.sample_size(10);
    for (name, group_by) in [
        ("summary_totals", None),
        ("summary_by_day", Some(GroupBy::Day)),
        ("summary_by_model", Some(GroupBy::Model)),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let pool = pool.clone();
                let scope = scope.clone();
                async move {
                    let report = summary(&pool, &scope, group_by)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(report.totals.requests, RECORDS as i64);
                    report
                }
            })
        });
    }
    group.bench_function("invoice", |b| {
        b.to_async(&runtime).iter(|| {
            let pool = pool.clone();
            let scope = scope.clone();
            async move {
                let from = odock_store::db::from_ms(START_MS);
                let to = odock_store::db::from_ms(START_MS + 30 * DAY_MS);
                odock_admin::invoices::build(&pool, &scope, from, to)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            }
        })
    });
    group.finish();
}

criterion_group!(benches, analytics);
criterion_main!(benches);
