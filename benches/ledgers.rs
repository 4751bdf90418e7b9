//! Admission cost: one admission and its settlement against two budgets and two quotas (four
//! windows), plus a key policy's request and token rates:
//! - `ledger/memory/reserve_settle_4_windows` — the [`InMemoryLedger`] alone;
//! - `admission/local/admit_settle` — [`LocalAdmission`]: the in-process limiter and ledger, as
//!   embedded mode runs them;
//! - `admission/redis/admit_settle` — [`RedisAdmission`] (one script to admit, one to settle) over a
//!   PostgreSQL system of record, when `ODOCK_TEST_DATABASE_URL` and `ODOCK_TEST_REDIS_URL` are set.
//!
//! `ODOCK_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test ODOCK_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench ledgers`

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use odock::core::rate_limit::ScopeLimits;
use odock::core::windows::Schedule;
use odock::core::{
    Actuals, Admission, AdmissionRequest, ApiKeyId, ApiKeyType, BudgetPeriod, Estimate,
    InMemoryLedger, LedgerRule, LocalAdmission, LogBudgetAlerts, OrganisationId, Principal,
    QuotaMetric, RequestId, RequestOutcome, RuleKind, RuleOwner, StaticRuleSource, SystemClock,
    TokenUsage, UsageMetadata, UsageRecord, UsageRecordId,
};
use odock_redis::{RedisAdmission, RedisAdmissionOptions, RedisConnection, RedisSettings};
use odock_store::db::Db;
use odock_store::{connect, DbOptions, SqlRuleSource};

const ORG: &str = "org_bench";
const KEY: &str = "key_bench";

fn principal() -> Principal {
    Principal {
        api_key_id: ApiKeyId::new(KEY),
        organisation_id: OrganisationId::new(ORG),
        key_type: ApiKeyType::Organisation,
        team_id: None,
        user_id: None,
        expires_at: None,
        revoked: false,
    }
}

fn rule(id: &str, kind: RuleKind, owner: RuleOwner, period: BudgetPeriod) -> LedgerRule {
    LedgerRule {
        id: Arc::from(id),
        organisation_id: OrganisationId::new(ORG),
        name: id.to_owned(),
        kind,
        owner,
        limit: i64::MAX / 4,
        schedule: Schedule {
            start_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            timezone: chrono_tz::UTC,
            period,
            end_at: None,
        },
        thresholds: vec![50, 80, 90, 100],
    }
}

/// Two budgets (organisation, key) and two quotas (requests, tokens) on the key.
fn rules() -> Vec<LedgerRule> {
    let key = || RuleOwner::ApiKey(ApiKeyId::new(KEY));
    vec![
        rule(
            "b_org",
            RuleKind::Budget,
            RuleOwner::Organisation,
            BudgetPeriod::Monthly,
        ),
        rule("b_key", RuleKind::Budget, key(), BudgetPeriod::Daily),
        rule(
            "q_req",
            RuleKind::Quota(QuotaMetric::Requests),
            key(),
            BudgetPeriod::Daily,
        ),
        rule(
            "q_tok",
            RuleKind::Quota(QuotaMetric::Tokens),
            key(),
            BudgetPeriod::Weekly,
        ),
    ]
}

fn key_policy() -> Vec<ScopeLimits> {
    vec![ScopeLimits {
        scope: "api_key",
        key: format!("api_key:{KEY}"),
        requests_per_second: 0,
        burst: 0,
        requests_per_minute: 100_000_000,
        tokens_per_minute: u64::MAX / 4,
        max_concurrent: 0,
        lease_ttl: Duration::from_secs(30),
    }]
}

const ESTIMATE: Estimate = Estimate {
    tokens_in: 20,
    tokens_out: 644,
    cost_nanos: 5_200_000,
};

fn record() -> UsageRecord {
    let now = Utc::now();
    UsageRecord {
        id: UsageRecordId::new(odock::core::ids::time_ordered_hex_id()),
        request_id: RequestId::generate(),
        organisation_id: OrganisationId::new(ORG),
        team_id: None,
        user_id: None,
        api_key_id: ApiKeyId::new(KEY),
        provider: "openai".into(),
        model: Some("gpt-4o".into()),
        model_id: None,
        endpoint: "/v1/chat/completions".into(),
        http_status: 200,
        error_code: None,
        latency_ms: 3,
        gateway_overhead_us: 10,
        stream: false,
        tokens: TokenUsage {
            input: 20,
            output: 600,
            ..TokenUsage::default()
        },
        billable_tokens: 620,
        cost_nanos_usd: 4_840_000,
        billing: None,
        provider_usage: None,
        routing: None,
        metadata: UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: Some(1),
            received_at: now,
            provider_type: None,
            denied_by: None,
        },
        provider_request_id: None,
        trace_id: None,
        created_at: now,
        ledger_charges: Vec::new(),
    }
}

fn bench_admission(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    admission: Arc<dyn Admission>,
) {
    let (principal, limits, request_id) = (principal(), key_policy(), RequestId::generate());
    c.bench_function(&format!("admission/{name}/admit_settle"), |b| {
        b.to_async(rt).iter(|| async {
            let admitted = admission
                .admit(AdmissionRequest {
                    principal: &principal,
                    request_id: &request_id,
                    limits: &limits,
                    estimate: ESTIMATE,
                })
                .await
                .unwrap_or_else(|e| panic!("admit: {e}"));
            admitted.ticket.settle(&mut record());
        })
    });
}

async fn seed(pool: &Db) {
    for sql in [
        "INSERT INTO organisations (id, name, slug, created_at, updated_at) VALUES ('org_bench', 'B', 'b', 0, 0)",
        "INSERT INTO api_keys (id, organisation_id, name, type, key_hash, preview, created_at, updated_at) \
         VALUES ('key_bench', 'org_bench', 'k', 'ORGANISATION', 'h', 'p', 0, 0)",
        "INSERT INTO budgets (id, organisation_id, name, owner_type, amount_nanos, period, start_at, \
         timezone, active, created_at, updated_at) VALUES ('b_org', 'org_bench', 'b', 'ORG', \
         2000000000000000000, 'MONTHLY', 0, 'UTC', 1, 0, 0)",
        "INSERT INTO budgets (id, organisation_id, name, owner_type, api_key_id, amount_nanos, period, \
         start_at, timezone, active, created_at, updated_at) VALUES ('b_key', 'org_bench', 'k', 'APIKEY', \
         'key_bench', 2000000000000000000, 'DAILY', 0, 'UTC', 1, 0, 0)",
        "INSERT INTO quotas (id, organisation_id, name, owner_type, api_key_id, metric, limit_value, period, \
         start_at, timezone, active, created_at, updated_at) VALUES ('q_req', 'org_bench', 'r', 'APIKEY', \
         'key_bench', 'REQUESTS', 2000000000000000000, 'DAILY', 0, 'UTC', 1, 0, 0)",
        "INSERT INTO quotas (id, organisation_id, name, owner_type, api_key_id, metric, limit_value, period, \
         start_at, timezone, active, created_at, updated_at) VALUES ('q_tok', 'org_bench', 't', 'APIKEY', \
         'key_bench', 'TOKENS', 2000000000000000000, 'WEEKLY', 0, 'UTC', 1, 0, 0)",
    ] {
        if let Err(e) = sqlx::query(sql).execute(pool).await {
            panic!("seeding the bench database: {e}");
        }
    }
}

fn ledgers(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));

    let ledger = InMemoryLedger::new(Arc::new(StaticRuleSource::new(rules())));
    let (principal, estimate) = (principal(), ESTIMATE);
    c.bench_function("ledger/memory/reserve_settle_4_windows", |b| {
        b.to_async(&rt).iter(|| async {
            let hold = ledger
                .reserve(&principal, &estimate)
                .await
                .unwrap_or_else(|e| panic!("reserve: {e}"));
            let charges = hold.settle(&Actuals {
                tokens_in: 20,
                tokens_out: 600,
                cost_nanos: 4_840_000,
                errors: 0,
                latency_ms: 3,
            });
            assert_eq!(charges.len(), 4);
        })
    });
    let local = LocalAdmission::with_ledger(InMemoryLedger::new(Arc::new(StaticRuleSource::new(
        rules(),
    ))));
    bench_admission(c, &rt, "local", Arc::new(local));

    let Some(postgres) = rt.block_on(async {
        let url = odock_store::testing::postgres_url().await?;
        let options = DbOptions {
            max_connections: 4,
            ..DbOptions::default()
        };
        let pool = connect(&url, &options)
            .await
            .unwrap_or_else(|e| panic!("postgres: {e}"));
        seed(&pool).await;
        Some(pool)
    }) else {
        return;
    };
    let Ok(redis_url) = std::env::var("ODOCK_TEST_REDIS_URL") else {
        eprintln!("skipped: Redis admission bench (set ODOCK_TEST_REDIS_URL)");
        return;
    };
    let conn = rt.block_on(async {
        let mut settings = RedisSettings::new(redis_url);
        settings.prefix = format!("odock-bench-{}:", std::process::id());
        RedisConnection::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("redis: {e}"))
    });
    let admission = RedisAdmission::new(
        conn,
        postgres.clone(),
        Arc::new(SqlRuleSource::new(postgres)),
        Arc::new(SystemClock),
        Arc::new(LogBudgetAlerts),
        RedisAdmissionOptions::default(),
    );
    bench_admission(c, &rt, "redis", Arc::new(admission));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = ledgers
}
criterion_main!(benches);
