//! [`RedisAdmission`] against a real Redis and database: two instances sharing both stand for two
//! replicas. Settlements run in the background, so the tests wait (by condition) for the totals.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use odock_core::rate_limit::ScopeLimits;
use odock_core::{
    Admission, AdmissionRequest, Admitted, ApiKeyId, ApiKeyType, CacheInvalidator, CacheKind,
    Estimate, GatewayError, InvalidationCommand, LedgerKind, ManualClock, OrganisationId,
    Principal, RequestId, RequestOutcome, TokenUsage, UsageMetadata, UsageRecord, UsageRecordId,
    WindowTotals,
};
use odock_store::db::{connect, Db, DbOptions};
use odock_store::SqlRuleSource;

use super::support;
use crate::{
    OutagePolicy, RedisAdmission, RedisAdmissionOptions, RedisConnection, RedisLedgerFlusher,
    RedisSettings,
};

struct Fixture {
    _dir: tempfile::TempDir,
    pool: Db,
    clock: ManualClock,
    conn: RedisConnection,
    /// Replica A's and B's admissions.
    replicas: [RedisAdmission; 2],
    flusher: RedisLedgerFlusher,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
}

fn january() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

async fn exec(pool: &Db, sql: &str) {
    sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn fixture(test: &str) -> Option<Fixture> {
    Some(fixture_with(support::settings(test)?, RedisAdmissionOptions::default()).await)
}

async fn fixture_with(settings: RedisSettings, options: RedisAdmissionOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = odock_store::testing::shared_database_url(dir.path()).await;
    let pool = connect(
        &url,
        &DbOptions {
            max_connections: 8,
            ..DbOptions::default()
        },
    )
    .await
    .unwrap();
    exec(&pool, "INSERT INTO organisations (id, name, slug, created_at, updated_at) VALUES ('org1', 'O', 'o', 0, 0)").await;
    exec(&pool, "INSERT INTO api_keys (id, organisation_id, name, type, key_hash, preview, created_at, updated_at) VALUES ('k1', 'org1', 'k1', 'ORGANISATION', 'h', 'p', 0, 0)").await;
    let clock = ManualClock::new(t0());
    let replica = |conn: RedisConnection| {
        RedisAdmission::new(
            conn,
            pool.clone(),
            Arc::new(SqlRuleSource::new(pool.clone())),
            Arc::new(clock.clone()),
            Arc::new(odock_core::LogBudgetAlerts),
            options.clone(),
        )
    };
    let conn = support::connect_with(&settings).await;
    let a = replica(conn.clone());
    let b = replica(support::connect_with(&settings).await);
    Fixture {
        _dir: dir,
        flusher: RedisLedgerFlusher::new(conn.clone(), pool.clone()),
        pool,
        clock,
        conn,
        replicas: [a, b],
    }
}

impl Fixture {
    async fn cleanup(self) {
        support::delete_prefix(&self.conn).await;
    }

    /// What the admin API does after a budget/quota write: every replica reloads its rules.
    fn rules_changed(&self) {
        for replica in &self.replicas {
            replica.invalidate(&InvalidationCommand::new(CacheKind::Budget, "org1"));
        }
    }

    async fn add_budget(&self, id: &str, limit: i64) {
        exec(&self.pool, &format!(
            "INSERT INTO budgets (id, organisation_id, name, owner_type, amount_nanos, period, start_at, \
             timezone, thresholds, active, created_at, updated_at) VALUES ('{id}', 'org1', 'budget {id}', \
             'ORG', {limit}, 'MONTHLY', {start}, 'UTC', '[50,80,100]', 1, 0, 0)",
            start = january().timestamp_millis()
        )).await;
        self.rules_changed();
    }

    async fn add_quota(&self, id: &str, metric: &str, limit: i64) {
        exec(&self.pool, &format!(
            "INSERT INTO quotas (id, organisation_id, name, owner_type, api_key_id, metric, limit_value, \
             period, start_at, timezone, active, created_at, updated_at) VALUES ('{id}', 'org1', \
             'quota {id}', 'APIKEY', 'k1', '{metric}', {limit}, 'MONTHLY', {start}, 'UTC', 1, 0, 0)",
            start = january().timestamp_millis()
        )).await;
        self.rules_changed();
    }

    /// The live totals of a rule's January window.
    async fn totals(&self, kind: LedgerKind, rule: &str) -> WindowTotals {
        self.replicas[0]
            .window_totals(kind, rule, january())
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Waits until a rule's January window shows `expected`.
    async fn wait_for(&self, kind: LedgerKind, rule: &str, expected: (i64, i64)) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let totals = self.totals(kind, rule).await;
            if (totals.used, totals.reserved) == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{rule}: {totals:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A rule's January `used` as the database has it after a flush.
    async fn stored_used(&self, kind: LedgerKind, rule: &str) -> i64 {
        self.flusher.flush().await.unwrap();
        odock_store::ledger::window_used(&self.pool, kind, rule, january().timestamp_millis())
            .await
            .unwrap()
    }
}

fn principal() -> Principal {
    Principal {
        api_key_id: ApiKeyId::new("k1"),
        organisation_id: OrganisationId::new("org1"),
        key_type: ApiKeyType::Organisation,
        team_id: None,
        user_id: None,
        expires_at: None,
        revoked: false,
    }
}

fn cost(nanos: i64) -> Estimate {
    Estimate {
        tokens_in: 10,
        tokens_out: 20,
        cost_nanos: nanos,
    }
}

fn rpm(limit: u32) -> ScopeLimits {
    ScopeLimits {
        scope: "api_key",
        key: "api_key:k1".into(),
        requests_per_second: 0,
        burst: 0,
        requests_per_minute: limit,
        tokens_per_minute: 0,
        max_concurrent: 0,
        lease_ttl: Duration::from_secs(30),
    }
}

async fn admit(
    admission: &RedisAdmission,
    estimate: Estimate,
    limits: &[ScopeLimits],
) -> Result<Admitted, GatewayError> {
    admit_as(admission, &principal(), estimate, limits).await
}

async fn admit_as(
    admission: &RedisAdmission,
    principal: &Principal,
    estimate: Estimate,
    limits: &[ScopeLimits],
) -> Result<Admitted, GatewayError> {
    admission
        .admit(AdmissionRequest {
            principal,
            request_id: &RequestId::generate(),
            limits,
            estimate,
        })
        .await
}

/// A finished request's record: `cost` nanos, 10 + 20 tokens, `status`.
fn record(cost: i64, status: u16) -> UsageRecord {
    let now = Utc::now();
    UsageRecord {
        id: UsageRecordId::new(odock_core::ids::time_ordered_hex_id()),
        request_id: RequestId::generate(),
        organisation_id: OrganisationId::new("org1"),
        team_id: None,
        user_id: None,
        api_key_id: ApiKeyId::new("k1"),
        provider: "openai".into(),
        model: None,
        model_id: None,
        endpoint: "/v1/chat/completions".into(),
        http_status: status,
        error_code: None,
        latency_ms: 7,
        gateway_overhead_us: 1,
        stream: false,
        tokens: TokenUsage {
            input: 10,
            output: 20,
            ..TokenUsage::default()
        },
        billable_tokens: 30,
        cost_nanos_usd: cost,
        billing: None,
        provider_usage: None,
        routing: None,
        metadata: UsageMetadata {
            schema: "usage_metadata_v1".into(),
            outcome: RequestOutcome::Completed,
            usage_estimated: false,
            upstream_latency_ms: None,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_admit_exactly_what_a_budget_can_pay_for() {
    let Some(f) = fixture("redis_admission_concurrent").await else {
        return;
    };
    f.add_budget("b1", 7_000).await;
    let attempts: Vec<_> = (0..200)
        .map(|i| {
            let replica = f.replicas[i % 2].clone();
            tokio::spawn(async move { admit(&replica, cost(1_000), &[]).await })
        })
        .collect();
    let mut admitted = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(ok) => admitted.push(ok),
            Err(error) => assert_eq!(error.code(), "budget_exceeded"),
        }
    }
    assert_eq!(admitted.len(), 7);
    f.wait_for(LedgerKind::Budget, "b1", (0, 7_000)).await;
    for ok in admitted {
        ok.ticket.settle(&mut record(900, 200));
    }
    f.wait_for(LedgerKind::Budget, "b1", (6_300, 0)).await;
    assert_eq!(f.stored_used(LedgerKind::Budget, "b1").await, 6_300);
    f.cleanup().await;
}

#[tokio::test]
async fn a_refusal_by_a_window_or_a_rate_takes_nothing_anywhere() {
    let Some(f) = fixture("redis_admission_all_or_none").await else {
        return;
    };
    f.add_budget("b1", 1_000_000).await;
    f.add_quota("q1", "REQUESTS", 1).await;
    let [a, b] = &f.replicas;
    let limits = [rpm(2)];
    let first = admit(a, cost(100), &limits).await.unwrap();
    assert_eq!(first.requests, Some((2, 1)));
    // The quota is full: refused, with nothing held in the budget and no request counted.
    let refused = admit(b, cost(100), &limits).await.unwrap_err();
    assert_eq!(refused.code(), "quota_exceeded");
    assert_eq!(f.totals(LedgerKind::Budget, "b1").await.reserved, 100);
    drop(first);
    f.wait_for(LedgerKind::Quota, "q1", (0, 0)).await;
    // The refused request took no rate slot: the second of two is still there.
    let second = admit(b, cost(100), &limits).await.unwrap();
    assert_eq!(second.requests, Some((2, 0)));
    drop(second);
    f.wait_for(LedgerKind::Quota, "q1", (0, 0)).await;
    // Now the rate refuses, and the budget and quota hold nothing for it.
    let refused = admit(a, cost(100), &limits).await.unwrap_err();
    assert_eq!(refused.code(), "rate_limit_exceeded");
    assert_eq!(
        f.totals(LedgerKind::Budget, "b1").await,
        WindowTotals::default()
    );
    assert_eq!(
        f.totals(LedgerKind::Quota, "q1").await,
        WindowTotals::default()
    );
    f.cleanup().await;
}

#[tokio::test]
async fn admitting_rates_only_shares_the_limits_and_holds_no_window() {
    let Some(f) = fixture("redis_admission_rates_only").await else {
        return;
    };
    // A budget the estimate exceeds and a quota of one request: neither is consulted.
    f.add_budget("b1", 10).await;
    f.add_quota("q1", "REQUESTS", 1).await;
    let [a, b] = &f.replicas;
    let limits = [rpm(1)];
    let (principal, request_id) = (principal(), RequestId::generate());
    let request = |principal| AdmissionRequest {
        principal,
        request_id: &request_id,
        limits: &limits,
        estimate: cost(1_000),
    };
    let first = a.admit_rates(request(&principal)).await.unwrap();
    assert_eq!(first.requests, Some((1, 0)));
    assert_eq!(
        f.totals(LedgerKind::Budget, "b1").await,
        WindowTotals::default()
    );
    assert_eq!(
        f.totals(LedgerKind::Quota, "q1").await,
        WindowTotals::default()
    );
    // The other replica sees the spent request.
    let refused = b.admit_rates(request(&principal)).await.unwrap_err();
    assert_eq!(refused.code(), "rate_limit_exceeded");
    first.ticket.settle(&mut record(0, 200));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tickets_and_abandoned_admissions_hold_nothing() {
    let Some(f) = fixture("redis_admission_cancelled").await else {
        return;
    };
    f.add_budget("b1", 1_000).await;
    let concurrency = ScopeLimits {
        max_concurrent: 2,
        ..rpm(0)
    };
    for _ in 0..5 {
        let admitted = admit(
            &f.replicas[0],
            cost(1_000),
            std::slice::from_ref(&concurrency),
        )
        .await
        .unwrap();
        drop(admitted);
        f.wait_for(LedgerKind::Budget, "b1", (0, 0)).await;
    }
    // Admissions abandoned at every point of their flight: none leaves a hold or a slot.
    for wait_us in [0, 50, 100, 200, 400, 800, 1_600] {
        let flight = admit(
            &f.replicas[1],
            cost(1_000),
            std::slice::from_ref(&concurrency),
        );
        let _ = tokio::time::timeout(Duration::from_micros(wait_us), flight).await;
    }
    f.wait_for(LedgerKind::Budget, "b1", (0, 0)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.replicas[1].live_holds() > 0 {
        assert!(Instant::now() < deadline, "holds stayed live");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Both concurrency slots are free again.
    let one = admit(&f.replicas[0], cost(0), std::slice::from_ref(&concurrency)).await;
    let two = admit(&f.replicas[1], cost(0), std::slice::from_ref(&concurrency)).await;
    assert!(one.is_ok() && two.is_ok());
    f.cleanup().await;
}

#[tokio::test]
async fn lost_counters_are_rebuilt_from_the_database_and_never_reset_a_budget() {
    let Some(f) = fixture("redis_admission_rebuild").await else {
        return;
    };
    f.add_budget("b1", 1_000).await;
    let [a, b] = &f.replicas;
    admit(a, cost(600), &[])
        .await
        .unwrap()
        .ticket
        .settle(&mut record(600, 200));
    f.wait_for(LedgerKind::Budget, "b1", (600, 0)).await;
    let held = admit(b, cost(300), &[]).await.unwrap();
    assert_eq!(f.stored_used(LedgerKind::Budget, "b1").await, 600);
    // Redis restarts without its data.
    support::delete_prefix(&f.conn).await;
    assert!(
        admit(a, cost(401), &[]).await.is_err(),
        "600 spent survives"
    );
    let admitted = admit(a, cost(400), &[]).await.unwrap();
    // The hold Redis lost still settles: its usage counts, once.
    held.ticket.settle(&mut record(250, 200));
    admitted.ticket.settle(&mut record(100, 200));
    f.wait_for(LedgerKind::Budget, "b1", (950, 0)).await;
    assert_eq!(f.stored_used(LedgerKind::Budget, "b1").await, 950);
    f.cleanup().await;
}

#[tokio::test]
async fn a_dead_replicas_hold_is_swept_after_its_lease_and_a_late_settlement_still_counts() {
    let Some(settings) = support::settings("redis_admission_sweep") else {
        return;
    };
    let options = RedisAdmissionOptions {
        lease: Duration::from_secs(30),
        ..RedisAdmissionOptions::default()
    };
    let f = fixture_with(settings, options).await;
    f.add_budget("b1", 1_000).await;
    let [a, b] = &f.replicas;
    let stuck = admit(a, cost(1_000), &[]).await.unwrap();
    assert_eq!(
        admit(b, cost(1), &[]).await.unwrap_err().code(),
        "budget_exceeded"
    );
    assert_eq!(b.sweep_expired().await.unwrap(), 0, "the lease is alive");
    f.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(b.sweep_expired().await.unwrap(), 1);
    f.wait_for(LedgerKind::Budget, "b1", (0, 0)).await;
    // The request was not dead after all: its usage counts when it settles.
    stuck.ticket.settle(&mut record(400, 200));
    f.wait_for(LedgerKind::Budget, "b1", (400, 0)).await;
    f.cleanup().await;
}

#[tokio::test]
async fn quotas_count_their_metric_and_errors_after_the_fact() {
    let Some(f) = fixture("redis_admission_metrics").await else {
        return;
    };
    f.add_quota("tok", "TOKENS", 1_000).await;
    f.add_quota("err", "ERRORS", 1).await;
    let [a, b] = &f.replicas;
    let ok = admit(a, cost(0), &[]).await.unwrap();
    f.wait_for(LedgerKind::Quota, "tok", (0, 30)).await;
    ok.ticket.settle(&mut record(0, 500));
    f.wait_for(LedgerKind::Quota, "tok", (30, 0)).await;
    f.wait_for(LedgerKind::Quota, "err", (1, 0)).await;
    match admit(b, cost(0), &[]).await {
        Err(GatewayError::Quota(odock_core::QuotaError::Exceeded { quota, retry_after })) => {
            assert_eq!(quota, "quota err");
            // Until the end of January, from the test clock.
            let end = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
            assert_eq!(retry_after, (end - t0()).to_std().unwrap());
        }
        other => panic!("expected the ERRORS quota to refuse, got {other:?}"),
    }
    f.cleanup().await;
}

#[tokio::test]
async fn rate_limits_are_shared_and_slots_come_back_when_requests_end() {
    let Some(f) = fixture("redis_admission_rates").await else {
        return;
    };
    let [a, b] = &f.replicas;
    let limits = [ScopeLimits {
        max_concurrent: 1,
        tokens_per_minute: 100,
        ..rpm(3)
    }];
    let first = admit(a, cost(0), &limits).await.unwrap();
    assert_eq!(first.requests, Some((3, 2)));
    assert_eq!(first.tokens, Some((100, 70)));
    // The one concurrency slot is taken, whichever replica asks.
    let busy = admit(b, cost(0), &limits).await.unwrap_err();
    assert!(matches!(
        busy,
        GatewayError::RateLimit(odock_core::RateLimitError::Exceeded {
            limit: "max_concurrent_requests",
            ..
        })
    ));
    // Settled with fewer tokens than estimated: the slot returns and the window is corrected.
    let mut used = record(0, 200);
    used.tokens.output = 0;
    first.ticket.settle(&mut used);
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        match admit(b, cost(0), &limits).await {
            Ok(second) => break second,
            Err(_) => {
                assert!(Instant::now() < deadline, "the slot never came back");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // Requests count whatever happened to them: 3 per minute, the refused one not included.
    assert_eq!(second.requests, Some((3, 1)));
    assert_eq!(second.tokens, Some((100, 60)));
    f.cleanup().await;
}

#[tokio::test]
async fn very_high_request_rates_tolerate_clock_readings_out_of_order() {
    let Some(settings) = support::settings("redis_admission_high_rate") else {
        return;
    };
    let f = fixture_with(settings, RedisAdmissionOptions::default()).await;
    let behind = RedisAdmission::new(
        f.conn.clone(),
        f.pool.clone(),
        Arc::new(SqlRuleSource::new(f.pool.clone())),
        Arc::new(ManualClock::new(t0() - chrono::Duration::milliseconds(5))),
        Arc::new(odock_core::LogBudgetAlerts),
        RedisAdmissionOptions::default(),
    );
    let limits = [rpm(100_000_000)];
    for _ in 0..50 {
        assert!(admit(&f.replicas[0], cost(0), &limits).await.is_ok());
        assert!(
            admit(&behind, cost(0), &limits).await.is_ok(),
            "the replica 5 ms behind was refused"
        );
    }
    f.cleanup().await;
}

/// Redis behind a proxy the test can cut, with the given outage policy.
async fn behind_proxy(test: &str, outage: OutagePolicy) -> Option<(Fixture, support::Proxy)> {
    let mut settings = support::settings(test)?;
    let proxy = support::Proxy::start(settings.url.expose()).await;
    settings.url = odock_core::Secret::new(proxy.url());
    settings.response_timeout = Duration::from_millis(300);
    settings.connect_timeout = Duration::from_millis(300);
    settings.outage = outage;
    Some((
        fixture_with(settings, RedisAdmissionOptions::default()).await,
        proxy,
    ))
}

#[tokio::test]
async fn an_outage_fails_budgets_closed_lets_rate_limits_through_and_recovers() {
    let Some((f, proxy)) =
        behind_proxy("redis_admission_outage_closed", OutagePolicy::FailClosed).await
    else {
        return;
    };
    f.add_budget("b1", 1_000).await;
    let a = &f.replicas[0];
    let before = admit(a, cost(100), &[]).await.unwrap();
    proxy.cut();
    let refused = admit(a, cost(100), &[]).await.unwrap_err();
    assert_eq!(
        (refused.status().as_u16(), refused.code()),
        (503, "budget_unavailable")
    );
    // A request no budget or quota counts (another organisation's) only needs rate limits, which
    // fail open.
    let mut other = principal();
    other.organisation_id = OrganisationId::new("org2");
    for _ in 0..3 {
        let admitted = admit_as(&f.replicas[1], &other, cost(100), &[rpm(1)]).await;
        assert!(admitted.unwrap().ticket.is_empty());
    }
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match admit(a, cost(100), &[]).await {
            Ok(after) => break after,
            Err(error) => {
                assert_eq!(error.code(), "budget_unavailable");
                assert!(Instant::now() < deadline, "Redis never came back");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    before.ticket.settle(&mut record(100, 200));
    after.ticket.settle(&mut record(100, 200));
    f.wait_for(LedgerKind::Budget, "b1", (200, 0)).await;
    f.cleanup().await;
}

#[tokio::test]
async fn fail_open_admits_during_an_outage_and_counts_the_usage_when_redis_is_back() {
    let Some((f, proxy)) =
        behind_proxy("redis_admission_outage_open", OutagePolicy::FailOpen).await
    else {
        return;
    };
    f.add_budget("b1", 1_000).await;
    let a = &f.replicas[0];
    // Warm the rules and the window while Redis is up.
    drop(admit(a, cost(1), &[]).await.unwrap());
    f.wait_for(LedgerKind::Budget, "b1", (0, 0)).await;
    proxy.cut();
    let unledgered = admit(a, cost(5_000), &[rpm(1)]).await.unwrap();
    proxy.restore();
    // Its settlement retries until Redis answers, then adds the usage once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a
        .window_totals(LedgerKind::Budget, "b1", january())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "Redis never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unledgered.ticket.settle(&mut record(300, 200));
    f.wait_for(LedgerKind::Budget, "b1", (300, 0)).await;
    assert!(admit(a, cost(701), &[]).await.is_err());
    assert!(admit(a, cost(700), &[]).await.is_ok());
    f.cleanup().await;
}

/// Remembers the thresholds reported.
#[derive(Default)]
struct Alerts(parking_lot::Mutex<Vec<(u32, i64)>>);

impl odock_core::BudgetAlerts for Alerts {
    fn threshold_crossed(&self, crossing: &odock_core::ThresholdCrossing) {
        self.0
            .lock()
            .push((crossing.threshold, crossing.used_nanos));
    }
}

#[tokio::test]
async fn each_threshold_crossing_is_reported_once() {
    let Some(settings) = support::settings("redis_admission_thresholds") else {
        return;
    };
    let f = fixture_with(settings, RedisAdmissionOptions::default()).await;
    f.add_budget("b1", 1_000).await;
    let alerts = Arc::new(Alerts::default());
    let admission = RedisAdmission::new(
        f.conn.clone(),
        f.pool.clone(),
        Arc::new(SqlRuleSource::new(f.pool.clone())),
        Arc::new(f.clock.clone()),
        alerts.clone(),
        RedisAdmissionOptions::default(),
    );
    for (spend, reported) in [(400, 0), (450, 2), (100, 2), (150, 3)] {
        admit(&admission, cost(0), &[])
            .await
            .unwrap()
            .ticket
            .settle(&mut record(spend, 200));
        let deadline = Instant::now() + Duration::from_secs(10);
        while alerts.0.lock().len() < reported {
            assert!(Instant::now() < deadline, "{:?}", alerts.0.lock());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    f.wait_for(LedgerKind::Budget, "b1", (1_100, 0)).await;
    assert_eq!(*alerts.0.lock(), vec![(50, 850), (80, 850), (100, 1_100)]);
    f.cleanup().await;
}
