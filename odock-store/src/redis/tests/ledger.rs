//! The SQL ledger scenarios against the Redis ledgers (two instances sharing Redis and the
//! database stand for two replicas), plus what only Redis has: lost counters rebuilt from the
//! database, and the outage policy.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use odock_core::rate_limit::{RateLimiter, ScopeLimits};
use odock_core::{
    ApiKeyId, ApiKeyType, BudgetError, BudgetLedger, CacheInvalidator, CacheKind,
    InvalidationCommand, ManualClock, OrganisationId, Principal, QuotaActuals, QuotaDemand,
    QuotaError, QuotaLedger, RequestId, Reservation, TeamId, UserId,
};

use super::super::{
    OutagePolicy, RedisBudgetLedger, RedisConnection, RedisLedgerFlusher, RedisQuotaLedger,
    RedisRateLimiter, RedisSettings,
};
use super::support;
use crate::db::{connect, Db, DbOptions};
use crate::ledger::LedgerOptions;

struct Fixture {
    _dir: tempfile::TempDir,
    pool: Db,
    clock: ManualClock,
    conn: RedisConnection,
    /// Replica A's and B's ledgers.
    budgets: [Arc<RedisBudgetLedger>; 2],
    quotas: [Arc<RedisQuotaLedger>; 2],
    flusher: RedisLedgerFlusher,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

async fn exec(pool: &Db, sql: &str) {
    sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn fixture(test: &str) -> Option<Fixture> {
    let settings = support::settings(test)?;
    Some(fixture_with(settings).await)
}

async fn fixture_with(settings: RedisSettings) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::testing::shared_database_url(dir.path()).await;
    let options = DbOptions {
        max_connections: 8,
        ..DbOptions::default()
    };
    let pool = connect(&url, &options).await.unwrap();
    for sql in [
        "INSERT INTO organisations (id, name, slug, created_at, updated_at) VALUES ('org1', 'O', 'o', 0, 0)",
        "INSERT INTO teams (id, organisation_id, name, created_at, updated_at) VALUES ('t1', 'org1', 'T1', 0, 0)",
        "INSERT INTO users (id, organisation_id, email, role, created_at, updated_at) VALUES ('u1', 'org1', 'a@x', 'USER', 0, 0)",
    ] {
        exec(&pool, sql).await;
    }
    for (id, kind, team, user) in [
        ("k_org", "ORGANISATION", "NULL", "NULL"),
        ("k_team", "TEAM", "'t1'", "NULL"),
        ("k_user", "USER", "NULL", "'u1'"),
    ] {
        exec(
            &pool,
            &format!(
                "INSERT INTO api_keys (id, organisation_id, name, type, team_id, user_id, key_hash, \
                 preview, created_at, updated_at) VALUES ('{id}', 'org1', '{id}', '{kind}', {team}, \
                 {user}, 'h_{id}', 'p', 0, 0)"
            ),
        )
        .await;
    }
    let clock = ManualClock::new(t0());
    let options = LedgerOptions {
        lease: Duration::from_secs(30),
    };
    let replica = |conn: RedisConnection| {
        (
            Arc::new(RedisBudgetLedger::new(
                conn.clone(),
                pool.clone(),
                Arc::new(clock.clone()),
                options.clone(),
            )),
            Arc::new(RedisQuotaLedger::new(
                conn,
                pool.clone(),
                Arc::new(clock.clone()),
                options.clone(),
            )),
        )
    };
    let conn = support::connect_with(&settings).await;
    let (budget_a, quota_a) = replica(conn.clone());
    let (budget_b, quota_b) = replica(support::connect_with(&settings).await);
    Fixture {
        _dir: dir,
        flusher: RedisLedgerFlusher::new(conn.clone(), pool.clone()),
        pool,
        clock,
        conn,
        budgets: [budget_a, budget_b],
        quotas: [quota_a, quota_b],
    }
}

impl Fixture {
    /// Removes this test's keys (their TTLs follow the test clock, weeks away from Redis' own).
    async fn cleanup(self) {
        support::delete_prefix(&self.conn).await;
    }

    /// What the admin API does after a budget/quota write: every replica forgets its rules.
    fn rules_changed(&self) {
        for kind in [CacheKind::Budget, CacheKind::Quota] {
            let command = InvalidationCommand::new(kind, "org1");
            for budgets in &self.budgets {
                budgets.invalidate(&command);
            }
            for quotas in &self.quotas {
                quotas.invalidate(&command);
            }
        }
    }

    /// `(used, reserved)` of a budget as the database has it after a flush.
    async fn budget_state(&self, budget: &str) -> (i64, i64) {
        self.flusher.flush().await.unwrap();
        sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(used_nanos), 0) AS BIGINT), \
             CAST(COALESCE(SUM(reserved_nanos), 0) AS BIGINT) FROM budget_windows WHERE budget_id = $1",
        )
        .bind(budget)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    async fn quota_state(&self, quota: &str) -> (i64, i64) {
        self.flusher.flush().await.unwrap();
        sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT), CAST(COALESCE(SUM(reserved), 0) AS BIGINT) \
             FROM quota_windows WHERE quota_id = $1",
        )
        .bind(quota)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

fn principal(key: &str) -> Principal {
    let (key_type, team, user) = match key {
        "k_team" => (ApiKeyType::Team, Some("t1"), None),
        "k_user" => (ApiKeyType::User, None, Some("u1")),
        _ => (ApiKeyType::Organisation, None, None),
    };
    Principal {
        api_key_id: ApiKeyId::new(key),
        organisation_id: OrganisationId::new("org1"),
        key_type,
        team_id: team.map(TeamId::new),
        user_id: user.map(UserId::new),
        expires_at: None,
        revoked: false,
    }
}

/// `owner` is `ORG`, `TEAM:t1`, `USER:u1` or `APIKEY:k_user`.
fn owner_columns(owner: &str) -> (String, String, String, String) {
    let (kind, target) = owner.split_once(':').unwrap_or((owner, ""));
    let quoted = |col: &str| {
        if col == kind {
            format!("'{target}'")
        } else {
            "NULL".to_owned()
        }
    };
    (
        kind.to_owned(),
        quoted("TEAM"),
        quoted("USER"),
        quoted("APIKEY"),
    )
}

async fn add_budget(f: &Fixture, id: &str, owner: &str, limit: i64, period: &str) {
    let (kind, team, user, key) = owner_columns(owner);
    exec(
        &f.pool,
        &format!(
            "INSERT INTO budgets (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
             amount_nanos, period, start_at, timezone, active, created_at, updated_at) VALUES \
             ('{id}', 'org1', 'budget {id}', '{kind}', {team}, {user}, {key}, {limit}, '{period}', \
             {start}, 'Europe/Paris', 1, 0, 0)",
            start = ms(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        ),
    )
    .await;
    f.rules_changed();
}

async fn add_quota(f: &Fixture, id: &str, owner: &str, limit: i64, metric: &str) {
    let (kind, team, user, key) = owner_columns(owner);
    exec(
        &f.pool,
        &format!(
            "INSERT INTO quotas (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
             metric, limit_value, period, start_at, timezone, active, created_at, updated_at) VALUES \
             ('{id}', 'org1', 'quota {id}', '{kind}', {team}, {user}, {key}, '{metric}', {limit}, \
             'MONTHLY', {start}, 'Not/AZone', 1, 0, 0)",
            start = ms(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        ),
    )
    .await;
    f.rules_changed();
}

fn rid(n: impl std::fmt::Display) -> RequestId {
    RequestId::parse(&format!("req-{n}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_ledger_200_concurrent_reservations_on_two_replicas_admit_exactly_n() {
    let Some(f) = fixture("redis_ledger_concurrent_budget").await else {
        return;
    };
    const ESTIMATE: i64 = 1_000;
    const N: i64 = 37;
    add_budget(&f, "b1", "ORG", N * ESTIMATE, "MONTHLY").await;

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let ledger = f.budgets[i % 2].clone();
            tokio::spawn(
                async move { ledger.reserve(&principal("k_org"), &rid(i), ESTIMATE).await },
            )
        })
        .collect();
    let mut admitted = Vec::new();
    let mut denied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(reservation) => admitted.push(reservation),
            Err(BudgetError::Exceeded { budget }) => {
                assert_eq!(budget, "budget b1");
                denied += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(admitted.len() as i64, N);
    assert_eq!(denied, 200 - N);
    assert_eq!(f.budget_state("b1").await, (0, N * ESTIMATE));

    let settles: Vec<_> = admitted
        .iter()
        .enumerate()
        .map(|(i, reservation)| {
            let ledger = f.budgets[(i + 1) % 2].clone();
            let reservation = reservation.clone();
            tokio::spawn(async move { ledger.settle(&reservation, 10 * i as i64 + 1).await })
        })
        .collect();
    for task in settles {
        task.await.unwrap().unwrap();
    }
    let expected: i64 = (0..N).map(|i| 10 * i + 1).sum();
    assert_eq!(f.budget_state("b1").await, (expected, 0));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_ledger_requests_quota_admits_exactly_its_limit() {
    let Some(f) = fixture("redis_ledger_requests_quota").await else {
        return;
    };
    add_quota(&f, "q1", "APIKEY:k_team", 25, "REQUESTS").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let ledger = f.quotas[i % 2].clone();
            tokio::spawn(async move {
                ledger
                    .reserve(&principal("k_team"), &rid(i), QuotaDemand::default())
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(QuotaError::Exceeded { quota, .. }) => assert_eq!(quota, "quota q1"),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 25);
    assert_eq!(f.quota_state("q1").await, (0, 25));
    f.cleanup().await;
}

#[tokio::test]
async fn redis_ledger_every_matching_budget_binds_all_or_none() {
    let Some(f) = fixture("redis_ledger_all_or_none").await else {
        return;
    };
    add_budget(&f, "b_org", "ORG", 1_000, "MONTHLY").await;
    add_budget(&f, "b_key", "APIKEY:k_user", 100, "MONTHLY").await;
    let user = principal("k_user");
    let [a, b] = &f.budgets;

    assert_eq!(
        a.reserve(&user, &rid(1), 150).await,
        Err(BudgetError::Exceeded {
            budget: "budget b_key".into()
        })
    );
    let held = b.reserve(&user, &rid(2), 60).await.unwrap();
    assert_eq!(held.windows.len(), 2);
    assert_eq!(f.budget_state("b_org").await, (0, 60));
    assert_eq!(f.budget_state("b_key").await, (0, 60));
    // The org budget still has room, the key budget does not: denied, nothing more held.
    assert!(a.reserve(&user, &rid(3), 50).await.is_err());
    assert_eq!(f.budget_state("b_org").await, (0, 60));
    // The org key is only bound by the org budget; team and user keys not by the key budget.
    assert!(b.reserve(&principal("k_org"), &rid(4), 900).await.is_ok());
    assert_eq!(f.budget_state("b_org").await, (0, 960));
    assert!(a.reserve(&principal("k_team"), &rid(5), 41).await.is_err());
    f.cleanup().await;
}

#[tokio::test]
async fn redis_ledger_reserve_settle_and_release_are_idempotent() {
    let Some(f) = fixture("redis_ledger_idempotent").await else {
        return;
    };
    add_budget(&f, "b1", "ORG", 1_000, "MONTHLY").await;
    let org = principal("k_org");
    let [a, b] = &f.budgets;
    let first = a.reserve(&org, &rid(1), 100).await.unwrap();
    let again = b.reserve(&org, &rid(1), 100).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(f.budget_state("b1").await, (0, 100));

    // Overshoot: the full actual is used. Settling twice (on either replica) counts once.
    a.settle(&first, 250).await.unwrap();
    b.settle(&first, 250).await.unwrap();
    a.release(&first).await.unwrap();
    assert_eq!(f.budget_state("b1").await, (250, 0));

    // Release twice, then settle: nothing moves the second and third time.
    let second = a.reserve(&org, &rid(2), 300).await.unwrap();
    a.release(&second).await.unwrap();
    b.release(&second).await.unwrap();
    a.settle(&second, 300).await.unwrap();
    assert_eq!(f.budget_state("b1").await, (250, 0));

    // A replayed request id after settlement is checked again, not admitted for free.
    assert!(a.reserve(&org, &rid(1), 800).await.is_err());
    let replay = b.reserve(&org, &rid(1), 700).await.unwrap();
    assert_eq!(replay.id, first.id);
    assert_eq!(f.budget_state("b1").await, (250, 700));

    // Without a matching rule nothing is held, and settling that is harmless.
    let none = f.quotas[0]
        .reserve(&org, &rid(9), QuotaDemand::default())
        .await
        .unwrap();
    assert!(none.windows.is_empty());
    f.quotas[1]
        .settle(&none, QuotaActuals::default())
        .await
        .unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn redis_ledger_sweep_releases_expired_leases_after_a_crash() {
    let Some(f) = fixture("redis_ledger_sweep").await else {
        return;
    };
    add_budget(&f, "b1", "ORG", 1_000, "MONTHLY").await;
    add_quota(&f, "q1", "ORG", 10, "REQUESTS").await;
    let org = principal("k_org");
    let [a, b] = &f.budgets;
    // Replica A takes a hold and dies (never settles, never refreshes); B's request lives on.
    let stale = a.reserve(&org, &rid(1), 600).await.unwrap();
    let live = b.reserve(&org, &rid(2), 400).await.unwrap();
    let quota_hold = f.quotas[0]
        .reserve(&org, &rid(1), QuotaDemand::default())
        .await
        .unwrap();
    assert!(b.reserve(&org, &rid(3), 1).await.is_err());

    f.clock.advance(chrono::Duration::seconds(20));
    b.refresh(&live).await.unwrap();
    assert_eq!(b.sweep_expired().await.unwrap(), 0);
    f.clock.advance(chrono::Duration::seconds(15));
    // The budget sweep leaves quota holds to the quota sweep.
    assert_eq!(b.sweep_expired().await.unwrap(), 1);
    assert_eq!(f.budget_state("b1").await, (0, 400));
    assert_eq!(f.quota_state("q1").await, (0, 1));
    assert_eq!(f.quotas[1].sweep_expired().await.unwrap(), 1);
    assert_eq!(f.quota_state("q1").await, (0, 0));

    // Capacity is back; a late settle of the swept hold counts nothing.
    assert!(b.reserve(&org, &rid(3), 600).await.is_ok());
    a.settle(&stale, 600).await.unwrap();
    f.quotas[0]
        .settle(&quota_hold, QuotaActuals::default())
        .await
        .unwrap();
    assert_eq!(f.budget_state("b1").await, (0, 1_000));
    assert_eq!(f.quota_state("q1").await, (0, 0));
    f.cleanup().await;
}

#[tokio::test]
async fn redis_ledger_windows_roll_over_lazily() {
    let Some(f) = fixture("redis_ledger_rollover").await else {
        return;
    };
    add_budget(&f, "b1", "ORG", 100, "DAILY").await;
    let org = principal("k_org");
    let [a, b] = &f.budgets;
    let first = a.reserve(&org, &rid(1), 100).await.unwrap();
    a.settle(&first, 100).await.unwrap();
    assert!(b.reserve(&org, &rid(2), 1).await.is_err());

    f.clock.advance(chrono::Duration::days(1));
    let second = b.reserve(&org, &rid(3), 100).await.unwrap();
    assert_ne!(second.windows, first.windows);
    f.flusher.flush().await.unwrap();
    let windows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT start_at, used_nanos, reserved_nanos FROM budget_windows WHERE budget_id = 'b1' \
         ORDER BY start_at",
    )
    .fetch_all(&f.pool)
    .await
    .unwrap();
    assert_eq!(windows.len(), 2);
    assert_eq!((windows[0].1, windows[0].2), (100, 0));
    assert_eq!((windows[1].1, windows[1].2), (0, 100));
    assert_eq!(
        windows[1].0,
        ms(Utc.with_ymd_and_hms(2026, 1, 11, 0, 0, 0).unwrap())
    );
    f.cleanup().await;
}

#[tokio::test]
async fn redis_ledger_errors_latency_and_token_quotas_follow_their_metric() {
    let Some(f) = fixture("redis_ledger_metrics").await else {
        return;
    };
    add_quota(&f, "q_err", "USER:u1", 2, "ERRORS").await;
    add_quota(&f, "q_lat", "USER:u1", 1_000, "LATENCY_MS").await;
    add_quota(&f, "q_tok", "USER:u1", 10_000, "TOKENS").await;
    add_quota(&f, "q_out", "USER:u1", 10_000, "TOKENS_OUT").await;
    add_quota(&f, "q_cost", "USER:u1", 10_000, "COST").await;
    let user = principal("k_user");
    let [a, b] = &f.quotas;
    let demand = QuotaDemand {
        requests: 1,
        tokens_in: 100,
        tokens_out: 300,
        cost_nanos: 70,
    };
    let hold = a.reserve(&user, &rid(1), demand).await.unwrap();
    assert_eq!(f.quota_state("q_err").await, (0, 0));
    assert_eq!(f.quota_state("q_tok").await, (0, 400));
    assert_eq!(f.quota_state("q_out").await, (0, 300));
    assert_eq!(f.quota_state("q_cost").await, (0, 70));
    let actual = QuotaActuals {
        requests: 1,
        tokens_in: 120,
        tokens_out: 500,
        cost_nanos: 90,
        errors: 1,
        latency_ms: 600,
    };
    b.settle(&hold, actual).await.unwrap();
    assert_eq!(f.quota_state("q_err").await, (1, 0));
    assert_eq!(f.quota_state("q_lat").await, (600, 0));
    assert_eq!(f.quota_state("q_tok").await, (620, 0));
    assert_eq!(f.quota_state("q_out").await, (500, 0));
    assert_eq!(f.quota_state("q_cost").await, (90, 0));
    // Still below both after-the-fact limits: admitted; this one reaches the ERRORS limit.
    let hold = b.reserve(&user, &rid(2), demand).await.unwrap();
    a.settle(
        &hold,
        QuotaActuals {
            errors: 1,
            latency_ms: 200,
            ..QuotaActuals::default()
        },
    )
    .await
    .unwrap();
    match a.reserve(&user, &rid(3), demand).await {
        Err(QuotaError::Exceeded { quota, retry_after }) => {
            assert_eq!(quota, "quota q_err");
            let end = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
            assert_eq!(retry_after, (end - t0()).to_std().unwrap());
        }
        other => panic!("expected a quota denial, got {other:?}"),
    }
    f.cleanup().await;
}

#[tokio::test]
async fn redis_ledger_lost_counters_are_rebuilt_from_the_database() {
    let Some(f) = fixture("redis_ledger_rebuild").await else {
        return;
    };
    add_budget(&f, "b1", "ORG", 1_000, "MONTHLY").await;
    add_quota(&f, "q1", "ORG", 5, "REQUESTS").await;
    let org = principal("k_org");
    let [a, b] = &f.budgets;
    let spent = a.reserve(&org, &rid(1), 700).await.unwrap();
    a.settle(&spent, 600).await.unwrap();
    for i in 0..3 {
        let hold = f.quotas[0]
            .reserve(&org, &rid(i), QuotaDemand::default())
            .await
            .unwrap();
        f.quotas[0]
            .settle(&hold, QuotaActuals::default())
            .await
            .unwrap();
    }
    // A hold in flight when Redis loses everything.
    let in_flight = a.reserve(&org, &rid(2), 100).await.unwrap();
    assert_eq!(f.budget_state("b1").await, (600, 100));

    // Redis restarts without its data.
    assert!(support::delete_prefix(&f.conn).await > 0);

    // The budget is not reset: 600 used (from the database) + 500 does not fit.
    assert_eq!(
        b.reserve(&org, &rid(3), 500).await,
        Err(BudgetError::Exceeded {
            budget: "budget b1".into()
        })
    );
    let fits = b.reserve(&org, &rid(4), 400).await.unwrap();
    // Same for the quota: 3 of 5 requests used, 2 left.
    let quota = &f.quotas[1];
    assert!(quota
        .reserve(&org, &rid(5), QuotaDemand::default())
        .await
        .is_ok());
    assert!(quota
        .reserve(&org, &rid(6), QuotaDemand::default())
        .await
        .is_ok());
    assert!(quota
        .reserve(&org, &rid(7), QuotaDemand::default())
        .await
        .is_err());

    // The in-flight request settles after the loss: its usage still counts (its hold is gone).
    a.settle(&in_flight, 50).await.unwrap();
    b.settle(&fits, 400).await.unwrap();
    assert_eq!(f.budget_state("b1").await, (1_050, 0));
    assert_eq!(f.quota_state("q1").await, (3, 2));
    f.cleanup().await;
}

#[tokio::test]
async fn redis_ledger_settle_after_counters_were_lost_rebuilds_them_first() {
    let Some(f) = fixture("redis_ledger_settle_rebuild").await else {
        return;
    };
    add_budget(&f, "b1", "ORG", 1_000, "MONTHLY").await;
    let org = principal("k_org");
    let [a, _] = &f.budgets;
    let first = a.reserve(&org, &rid(1), 100).await.unwrap();
    a.settle(&first, 300).await.unwrap();
    f.flusher.flush().await.unwrap();
    let hold = a.reserve(&org, &rid(2), 100).await.unwrap();
    // Only the window counters vanish (eviction, partial loss); the lease survives.
    let window: &str = &hold.windows[0];
    let mut manager = f.conn.manager();
    let _: i64 = redis::cmd("DEL")
        .arg(window)
        .query_async(&mut manager)
        .await
        .unwrap();
    a.settle(&hold, 200).await.unwrap();
    assert_eq!(f.budget_state("b1").await, (500, 0));
    f.cleanup().await;
}

/// Redis behind a proxy that the test can cut, with the given outage policy.
async fn behind_proxy(test: &str, outage: OutagePolicy) -> Option<(Fixture, support::Proxy)> {
    let mut settings = support::settings(test)?;
    let proxy = support::Proxy::start(settings.url.expose()).await;
    settings.url = odock_core::Secret::new(proxy.url());
    settings.response_timeout = Duration::from_millis(300);
    settings.connect_timeout = Duration::from_millis(300);
    settings.outage = outage;
    Some((fixture_with(settings).await, proxy))
}

/// Retries `reserve` until Redis answers again after an outage.
async fn reserve_when_back(ledger: &RedisBudgetLedger, n: u32) -> Reservation {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match ledger.reserve(&principal("k_org"), &rid(n), 100).await {
            Ok(reservation) => return reservation,
            Err(BudgetError::Unavailable(_)) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "Redis never came back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn redis_outage_fails_budgets_closed_and_recovers() {
    let Some((f, proxy)) = behind_proxy("redis_outage_closed", OutagePolicy::FailClosed).await
    else {
        return;
    };
    add_budget(&f, "b1", "ORG", 1_000, "MONTHLY").await;
    let org = principal("k_org");
    let [a, _] = &f.budgets;
    let before = a.reserve(&org, &rid(1), 100).await.unwrap();

    proxy.cut();
    match a.reserve(&org, &rid(2), 100).await {
        Err(error @ BudgetError::Unavailable(_)) => {
            let gateway = odock_core::GatewayError::from(error);
            assert_eq!(gateway.status(), 503);
            assert_eq!(gateway.code(), "budget_unavailable");
        }
        other => panic!("expected a fail-closed denial, got {other:?}"),
    }
    // Later calls fail at once instead of each waiting for the timeout (circuit breaker).
    match a.reserve(&org, &rid(2), 100).await {
        Err(BudgetError::Unavailable(message)) => assert!(message.contains("unreachable")),
        other => panic!("expected a fast fail-closed denial, got {other:?}"),
    }
    // No quota is configured: nothing to ask Redis, so the outage does not matter.
    assert!(f.quotas[0]
        .reserve(&org, &rid(2), QuotaDemand::default())
        .await
        .is_ok());
    let health = super::super::RedisHealth::new(f.conn.clone());
    assert!(health.check().await.is_err());

    proxy.restore();
    let after = reserve_when_back(a, 3).await;
    assert!(health.check().await.is_ok());
    a.settle(&before, 100).await.unwrap();
    a.settle(&after, 100).await.unwrap();
    assert_eq!(f.budget_state("b1").await, (200, 0));
    f.cleanup().await;
}

#[tokio::test]
async fn redis_outage_fail_open_admits_and_settles_best_effort_and_rate_limits_fail_open() {
    let Some((f, proxy)) = behind_proxy("redis_outage_open", OutagePolicy::FailOpen).await else {
        return;
    };
    add_budget(&f, "b1", "ORG", 1_000, "MONTHLY").await;
    let org = principal("k_org");
    let [a, _] = &f.budgets;
    let limiter = RedisRateLimiter::new(f.conn.clone(), Arc::new(f.clock.clone()));
    let rpm = [ScopeLimits {
        scope: "api_key",
        key: "api_key:k_org".into(),
        requests_per_second: 0,
        burst: 0,
        requests_per_minute: 1,
        tokens_per_minute: 0,
        max_concurrent: 0,
        lease_ttl: Duration::from_secs(30),
    }];
    assert!(limiter.admit(&rpm, 0).await.is_ok());
    assert!(limiter.admit(&rpm, 0).await.is_err());

    proxy.cut();
    // Admitted without Redis (over the budget's remaining room, even), counted nowhere yet.
    let unledgered = a.reserve(&org, &rid(1), 5_000).await.unwrap();
    assert!(unledgered.id.as_str().starts_with("unledgered:"));
    // Rate limits fail open.
    let admitted = limiter.admit(&rpm, 0).await.unwrap();
    assert!(admitted.permit.is_empty());

    proxy.restore();
    // When it settles after Redis is back, its usage is added.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while a.settle(&unledgered, 300).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "Redis never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.budget_state("b1").await, (300, 0));
    assert!(a.reserve(&org, &rid(2), 701).await.is_err());
    assert!(a.reserve(&org, &rid(3), 700).await.is_ok());
    f.cleanup().await;
}

/// Remembers the thresholds reported.
#[derive(Default)]
struct Alerts(parking_lot::Mutex<Vec<(String, u32, i64)>>);

impl odock_core::BudgetAlerts for Alerts {
    fn threshold_crossed(&self, crossing: &odock_core::ThresholdCrossing) {
        self.0.lock().push((
            crossing.budget_id.clone(),
            crossing.threshold,
            crossing.used_nanos,
        ));
    }
}

#[tokio::test]
async fn redis_ledger_reports_each_threshold_crossing_once() {
    let Some(f) = fixture("redis_ledger_thresholds").await else {
        return;
    };
    add_budget(&f, "b1", "ORG", 1_000, "MONTHLY").await;
    exec(
        &f.pool,
        "UPDATE budgets SET thresholds = '[50, 80, 100]' WHERE id = 'b1'",
    )
    .await;
    let alerts = Arc::new(Alerts::default());
    let ledger = RedisBudgetLedger::new(
        f.conn.clone(),
        f.pool.clone(),
        Arc::new(f.clock.clone()),
        LedgerOptions::default(),
    )
    .with_alerts(alerts.clone());
    let org = principal("k_org");
    for (n, spend) in [(1, 400), (2, 450), (3, 100)] {
        let hold = ledger.reserve(&org, &rid(n), 100).await.unwrap();
        ledger.settle(&hold, spend).await.unwrap();
        // Settling again crosses nothing again.
        ledger.settle(&hold, spend).await.unwrap();
    }
    assert_eq!(
        *alerts.0.lock(),
        vec![("b1".to_owned(), 50, 850), ("b1".to_owned(), 80, 850)]
    );
    let hold = ledger.reserve(&org, &rid(4), 50).await.unwrap();
    ledger.settle(&hold, 150).await.unwrap();
    assert_eq!(alerts.0.lock().last(), Some(&("b1".to_owned(), 100, 1_100)));
    f.cleanup().await;
}
