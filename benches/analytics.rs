//! The usage summary (`GET .../usage/summary`) over one million usage records of one organisation
//! (plus 100,000 of another organisation the filters must skip), read from the rollups: totals
//! with p50/p95 latency, groups by day (over a period with ragged edges, which reads records at
//! the edges), by model, by hour over a week, a filtered summary, a full invoice build, and the
//! first page of the records table.
//!
//! `cargo bench --bench analytics` (a SQLite file);
//! `ODOCK_TEST_BACKEND=postgres ODOCK_TEST_DATABASE_URL=postgres://… cargo bench --bench analytics`
//! (a fresh PostgreSQL schema).

use criterion::{criterion_group, criterion_main, Criterion};
use odock_admin::analytics::synthetic::{generate, insert, SyntheticKey, SyntheticSpec};
use odock_admin::analytics::{summary, GroupBy, StatusFilter, UsageScope};

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
    let pool = runtime
        .block_on(async {
            let url = match odock_store::testing::backend_is_postgres() {
                true => odock_store::testing::postgres_url()
                    .await
                    .unwrap_or_else(|| panic!("ODOCK_TEST_DATABASE_URL is needed")),
                false => format!("sqlite://{}", dir.path().join("analytics.db").display()),
            };
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
    let ragged = UsageScope {
        from_ms: Some(START_MS + 37 * 60_000 + 5_000),
        to_ms: Some(START_MS + 29 * DAY_MS + 5 * 3_600_000 + 11),
        ..scope.clone()
    };
    let week = UsageScope {
        from_ms: Some(START_MS + 7 * DAY_MS),
        to_ms: Some(START_MS + 14 * DAY_MS),
        ..scope.clone()
    };
    let filtered = UsageScope {
        team_ids: vec!["org-main-team1".into(), "org-main-team2".into()],
        status: Some(StatusFilter::Success),
        ..ragged.clone()
    };
    let backend = if odock_store::testing::backend_is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let mut group = c.benchmark_group(format!("analytics_1m_{backend}"));
    group.sample_size(10);
    for (name, scope, group_by) in [
        ("summary_totals", &scope, None),
        ("summary_by_day_ragged", &ragged, Some(GroupBy::Day)),
        ("summary_by_model", &scope, Some(GroupBy::Model)),
        ("summary_by_hour_week", &week, Some(GroupBy::Hour)),
        (
            "summary_filtered_by_status",
            &filtered,
            Some(GroupBy::Status),
        ),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| {
                let pool = pool.clone();
                let scope = scope.clone();
                async move {
                    let report = summary(&pool, &scope, group_by)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert!(report.totals.requests > 0);
                    if scope.from_ms.is_none() {
                        assert_eq!(report.totals.requests, RECORDS as i64);
                    }
                    report
                }
            })
        });
    }
    group.bench_function("records_first_page", |b| {
        b.to_async(&runtime).iter(|| {
            let pool = pool.clone();
            async move {
                let filter = odock_store::usage_records::UsageFilter {
                    organisation_id: Some("org-main".into()),
                    ..Default::default()
                };
                let (page, _) = odock_store::usage_records::list(&pool, &filter, None, 50)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(page.len(), 50);
                page
            }
        })
    });
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
