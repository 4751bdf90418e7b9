use std::sync::Arc;
use std::time::Duration;

use crate::db::Db;
use chrono::{DateTime, TimeZone, Utc};
use odock_core::{
    ApiKeyId, ApiKeyType, BudgetAlerts, BudgetError, BudgetLedger, ManualClock, OrganisationId,
    Principal, QuotaActuals, QuotaDemand, QuotaError, QuotaLedger, RequestId, TeamId, UserId,
};

use super::*;
use crate::db::{connect, DbOptions};

const ORG: &str = "org1";

struct Fixture {
    _dir: tempfile::TempDir,
    pool: Db,
    clock: ManualClock,
    budgets: Arc<SqlBudgetLedger>,
    quotas: Arc<SqlQuotaLedger>,
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

/// A temp-file database with a multi-connection pool, so concurrency is real.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::testing::shared_database_url(dir.path()).await;
    let options = DbOptions {
        max_connections: 8,
        ..DbOptions::default()
    };
    let pool = connect(&url, &options).await.unwrap();
    for sql in [
        "INSERT INTO organisations (id, name, slug, created_at, updated_at) VALUES ('org1', 'O', 'o', 0, 0)",
        "INSERT INTO organisations (id, name, slug, created_at, updated_at) VALUES ('org2', 'P', 'p', 0, 0)",
        "INSERT INTO teams (id, organisation_id, name, created_at, updated_at) VALUES ('t1', 'org1', 'T1', 0, 0)",
        "INSERT INTO teams (id, organisation_id, name, created_at, updated_at) VALUES ('t2', 'org1', 'T2', 0, 0)",
        "INSERT INTO users (id, organisation_id, email, role, created_at, updated_at) VALUES ('u1', 'org1', 'a@x', 'USER', 0, 0)",
        "INSERT INTO users (id, organisation_id, email, role, created_at, updated_at) VALUES ('u2', 'org1', 'b@x', 'USER', 0, 0)",
    ] {
        exec(&pool, sql).await;
    }
    for (id, kind, team, user) in [
        ("k_org", "ORGANISATION", "NULL", "NULL"),
        ("k_team", "TEAM", "'t1'", "NULL"),
        ("k_team2", "TEAM", "'t2'", "NULL"),
        ("k_user", "USER", "NULL", "'u1'"),
        ("k_user2", "USER", "NULL", "'u2'"),
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
    let budgets = Arc::new(SqlBudgetLedger::new(
        pool.clone(),
        Arc::new(clock.clone()),
        options.clone(),
    ));
    let quotas = Arc::new(SqlQuotaLedger::new(
        pool.clone(),
        Arc::new(clock.clone()),
        options,
    ));
    Fixture {
        _dir: dir,
        pool,
        clock,
        budgets,
        quotas,
    }
}

fn principal(key: &str) -> Principal {
    let (key_type, team, user) = match key {
        "k_team" => (ApiKeyType::Team, Some("t1"), None),
        "k_team2" => (ApiKeyType::Team, Some("t2"), None),
        "k_user" => (ApiKeyType::User, None, Some("u1")),
        "k_user2" => (ApiKeyType::User, None, Some("u2")),
        _ => (ApiKeyType::Organisation, None, None),
    };
    Principal {
        api_key_id: ApiKeyId::new(key),
        organisation_id: OrganisationId::new(ORG),
        key_type,
        team_id: team.map(TeamId::new),
        user_id: user.map(UserId::new),
        expires_at: None,
        revoked: false,
    }
}

/// `owner` is `ORG`, `TEAM:t1`, `USER:u1` or `APIKEY:k_user`.
struct Rule<'a> {
    id: &'a str,
    owner: &'a str,
    limit: i64,
    period: &'a str,
    end_at: Option<i64>,
    active: bool,
}

impl<'a> Rule<'a> {
    fn new(id: &'a str, owner: &'a str, limit: i64) -> Self {
        Self {
            id,
            owner,
            limit,
            period: "MONTHLY",
            end_at: None,
            active: true,
        }
    }

    fn owner_columns(&self) -> (String, String, String, String) {
        let (kind, target) = self.owner.split_once(':').unwrap_or((self.owner, ""));
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
}

async fn add_budget(pool: &Db, rule: Rule<'_>) {
    let (kind, team, user, key) = rule.owner_columns();
    let end = rule.end_at.map_or("NULL".to_owned(), |e| e.to_string());
    exec(
        pool,
        &format!(
            "INSERT INTO budgets (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
             amount_nanos, period, start_at, timezone, end_at, active, created_at, updated_at) VALUES \
             ('{id}', 'org1', 'budget {id}', '{kind}', {team}, {user}, {key}, {limit}, '{period}', \
             {start}, 'Europe/Paris', {end}, {active}, 0, 0)",
            id = rule.id,
            limit = rule.limit,
            period = rule.period,
            start = ms(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
            active = i32::from(rule.active),
        ),
    )
    .await;
}

async fn add_quota(pool: &Db, rule: Rule<'_>, metric: &str) {
    let (kind, team, user, key) = rule.owner_columns();
    exec(
        pool,
        &format!(
            "INSERT INTO quotas (id, organisation_id, name, owner_type, team_id, user_id, api_key_id, \
             metric, limit_value, period, start_at, timezone, active, created_at, updated_at) VALUES \
             ('{id}', 'org1', 'quota {id}', '{kind}', {team}, {user}, {key}, '{metric}', {limit}, \
             '{period}', {start}, 'Not/AZone', 1, 0, 0)",
            id = rule.id,
            limit = rule.limit,
            period = rule.period,
            start = ms(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
        ),
    )
    .await;
}

/// `(used, reserved)` summed over a budget's windows starting at or before now.
async fn budget_state(pool: &Db, budget: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(used_nanos), 0) AS BIGINT), CAST(COALESCE(SUM(reserved_nanos), 0) AS BIGINT) FROM budget_windows \
         WHERE budget_id = $1",
    )
    .bind(budget)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn quota_state(pool: &Db, quota: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT), CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM quota_windows WHERE quota_id = $1",
    )
    .bind(quota)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn request_status(pool: &Db, reservation: &Reservation) -> String {
    let (status,): (String,) = sqlx::query_as("SELECT status FROM budget_requests WHERE id = $1")
        .bind(reservation.id.as_str())
        .fetch_one(pool)
        .await
        .unwrap();
    status
}

fn rid(n: impl std::fmt::Display) -> RequestId {
    RequestId::parse(&format!("req-{n}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_concurrent_budget_reservations_admit_exactly_n() {
    let f = fixture().await;
    const ESTIMATE: i64 = 1_000;
    const N: i64 = 37;
    add_budget(&f.pool, Rule::new("b1", "ORG", N * ESTIMATE)).await;

    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let ledger = f.budgets.clone();
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
    assert_eq!(budget_state(&f.pool, "b1").await, (0, N * ESTIMATE));

    let settles: Vec<_> = admitted
        .iter()
        .enumerate()
        .map(|(i, reservation)| {
            let ledger = f.budgets.clone();
            let reservation = reservation.clone();
            tokio::spawn(async move { ledger.settle(&reservation, 10 * i as i64 + 1).await })
        })
        .collect();
    for task in settles {
        task.await.unwrap().unwrap();
    }
    let expected: i64 = (0..N).map(|i| 10 * i + 1).sum();
    assert_eq!(budget_state(&f.pool, "b1").await, (expected, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_concurrent_requests_quota_admits_exactly_limit() {
    let f = fixture().await;
    add_quota(&f.pool, Rule::new("q1", "APIKEY:k_team", 25), "REQUESTS").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let ledger = f.quotas.clone();
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
    assert_eq!(quota_state(&f.pool, "q1").await, (0, 25));
}

/// Whether a zero-limit budget blocks `key` (i.e. applies to it).
async fn blocked(f: &Fixture, key: &str) -> bool {
    match f.budgets.reserve(&principal(key), &rid(key), 1).await {
        Ok(reservation) => {
            assert!(reservation.windows.is_empty());
            false
        }
        Err(BudgetError::Exceeded { .. }) => true,
        Err(other) => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn ledger_owner_matching_follows_the_key_type() {
    let f = fixture().await;
    let keys = ["k_org", "k_team", "k_team2", "k_user", "k_user2"];
    let cases: Vec<(Rule<'_>, &[&str])> = vec![
        (Rule::new("b_org", "ORG", 0), &keys),
        (Rule::new("b_team", "TEAM:t1", 0), &["k_team"]),
        (Rule::new("b_user", "USER:u1", 0), &["k_user"]),
        (Rule::new("b_key", "APIKEY:k_user2", 0), &["k_user2"]),
        (
            Rule {
                active: false,
                ..Rule::new("b_inactive", "ORG", 0)
            },
            &[],
        ),
        (
            Rule {
                end_at: Some(ms(t0()) - 1),
                ..Rule::new("b_ended", "ORG", 0)
            },
            &[],
        ),
    ];
    for (rule, applies_to) in cases {
        let id = rule.id.to_owned();
        add_budget(&f.pool, rule).await;
        for key in keys {
            assert_eq!(
                blocked(&f, key).await,
                applies_to.contains(&key),
                "{id} / {key}"
            );
        }
        exec(&f.pool, &format!("DELETE FROM budgets WHERE id = '{id}'")).await;
    }
    // Another organisation's ORG budget does not apply.
    exec(
        &f.pool,
        "INSERT INTO budgets (id, organisation_id, name, owner_type, amount_nanos, period, start_at, \
         created_at, updated_at) VALUES ('b_other', 'org2', 'x', 'ORG', 0, 'DAILY', 0, 0, 0)",
    )
    .await;
    assert!(!blocked(&f, "k_org").await);
}

#[tokio::test]
async fn ledger_every_matching_budget_binds_all_or_none() {
    let f = fixture().await;
    add_budget(&f.pool, Rule::new("b_org", "ORG", 1_000)).await;
    add_budget(&f.pool, Rule::new("b_key", "APIKEY:k_user", 100)).await;
    let user = principal("k_user");

    let denied = f.budgets.reserve(&user, &rid(1), 150).await;
    assert_eq!(
        denied,
        Err(BudgetError::Exceeded {
            budget: "budget b_key".into()
        })
    );
    assert_eq!(budget_state(&f.pool, "b_org").await, (0, 0));

    let held = f.budgets.reserve(&user, &rid(2), 60).await.unwrap();
    assert_eq!(held.windows.len(), 2);
    assert_eq!(budget_state(&f.pool, "b_org").await, (0, 60));
    assert_eq!(budget_state(&f.pool, "b_key").await, (0, 60));
    // The org budget still has room, the key budget does not: denied, nothing more held.
    assert!(f.budgets.reserve(&user, &rid(3), 50).await.is_err());
    assert_eq!(budget_state(&f.pool, "b_org").await, (0, 60));
    // The org key is only bound by the org budget.
    assert!(f
        .budgets
        .reserve(&principal("k_org"), &rid(4), 900)
        .await
        .is_ok());
    assert_eq!(budget_state(&f.pool, "b_org").await, (0, 960));
}

#[tokio::test]
async fn ledger_windows_roll_over_lazily() {
    let f = fixture().await;
    add_budget(
        &f.pool,
        Rule {
            period: "DAILY",
            ..Rule::new("b1", "ORG", 100)
        },
    )
    .await;
    let org = principal("k_org");
    let first = f.budgets.reserve(&org, &rid(1), 100).await.unwrap();
    f.budgets.settle(&first, 100).await.unwrap();
    assert!(f.budgets.reserve(&org, &rid(2), 1).await.is_err());

    f.clock.advance(chrono::Duration::days(1));
    let second = f.budgets.reserve(&org, &rid(3), 100).await.unwrap();
    assert_ne!(second.windows, first.windows);
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
    // Anchored at 01:00 Paris (00:00 UTC) on 1 January: the next window opens on 11 January.
    assert_eq!(
        windows[1].0,
        ms(Utc.with_ymd_and_hms(2026, 1, 11, 0, 0, 0).unwrap())
    );
}

#[tokio::test]
async fn ledger_reserve_settle_and_release_are_idempotent() {
    let f = fixture().await;
    add_budget(&f.pool, Rule::new("b1", "ORG", 1_000)).await;
    let org = principal("k_org");
    let first = f.budgets.reserve(&org, &rid(1), 100).await.unwrap();
    let again = f.budgets.reserve(&org, &rid(1), 100).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(budget_state(&f.pool, "b1").await, (0, 100));

    // Overshoot: the full actual is used and both amounts stay on the request row.
    f.budgets.settle(&first, 250).await.unwrap();
    f.budgets.settle(&first, 250).await.unwrap();
    f.budgets.release(&first).await.unwrap();
    assert_eq!(budget_state(&f.pool, "b1").await, (250, 0));
    assert_eq!(request_status(&f.pool, &first).await, "SETTLED");
    let (estimate, actual): (i64, Option<i64>) =
        sqlx::query_as("SELECT estimate_nanos, actual_nanos FROM budget_requests WHERE id = $1")
            .bind(first.id.as_str())
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert_eq!((estimate, actual), (100, Some(250)));

    // Release twice, then settle: nothing moves the second and third time.
    let second = f.budgets.reserve(&org, &rid(2), 300).await.unwrap();
    f.budgets.release(&second).await.unwrap();
    f.budgets.release(&second).await.unwrap();
    f.budgets.settle(&second, 300).await.unwrap();
    assert_eq!(budget_state(&f.pool, "b1").await, (250, 0));
    assert_eq!(request_status(&f.pool, &second).await, "RELEASED");

    // A replayed request id after settlement is checked again, not admitted for free.
    assert!(f.budgets.reserve(&org, &rid(1), 800).await.is_err());
    let replay = f.budgets.reserve(&org, &rid(1), 700).await.unwrap();
    assert_eq!(replay.id, first.id);
    assert_eq!(budget_state(&f.pool, "b1").await, (250, 700));

    // Without a matching rule nothing is held.
    let none = f
        .quotas
        .reserve(&org, &rid(9), QuotaDemand::default())
        .await
        .unwrap();
    assert!(none.windows.is_empty());
    f.quotas
        .settle(&none, QuotaActuals::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn ledger_sweep_releases_expired_leases_only() {
    let f = fixture().await;
    add_budget(&f.pool, Rule::new("b1", "ORG", 1_000)).await;
    add_quota(&f.pool, Rule::new("q1", "ORG", 10), "REQUESTS").await;
    let org = principal("k_org");
    let stale = f.budgets.reserve(&org, &rid(1), 600).await.unwrap();
    let live = f.budgets.reserve(&org, &rid(2), 400).await.unwrap();
    let quota_hold = f
        .quotas
        .reserve(&org, &rid(1), QuotaDemand::default())
        .await
        .unwrap();
    assert!(f.budgets.reserve(&org, &rid(3), 1).await.is_err());

    f.clock.advance(chrono::Duration::seconds(20));
    f.budgets.refresh(&live).await.unwrap();
    assert_eq!(f.budgets.sweep_expired().await.unwrap(), 0);
    f.clock.advance(chrono::Duration::seconds(15));
    // The budget sweep leaves quota holds to the quota sweep.
    assert_eq!(f.budgets.sweep_expired().await.unwrap(), 1);
    assert_eq!(request_status(&f.pool, &stale).await, "RELEASED");
    assert_eq!(request_status(&f.pool, &live).await, "RESERVED");
    assert_eq!(budget_state(&f.pool, "b1").await, (0, 400));
    assert_eq!(quota_state(&f.pool, "q1").await, (0, 1));
    assert_eq!(f.quotas.sweep_expired().await.unwrap(), 1);
    assert_eq!(quota_state(&f.pool, "q1").await, (0, 0));
    assert_eq!(request_status(&f.pool, &quota_hold).await, "RELEASED");

    // Capacity is back; a late settle of the swept hold counts nothing.
    assert!(f.budgets.reserve(&org, &rid(3), 600).await.is_ok());
    f.budgets.settle(&stale, 600).await.unwrap();
    assert_eq!(budget_state(&f.pool, "b1").await, (0, 1_000));
}

#[tokio::test]
async fn ledger_sweeper_task_releases_in_the_background() {
    let f = fixture().await;
    add_budget(&f.pool, Rule::new("b1", "ORG", 1_000)).await;
    let hold = f
        .budgets
        .reserve(&principal("k_org"), &rid(1), 500)
        .await
        .unwrap();
    f.clock.advance(chrono::Duration::seconds(31));
    let sweeper = spawn_sweeper(f.budgets.clone(), Duration::from_millis(10));
    let mut released = false;
    for _ in 0..500 {
        if request_status(&f.pool, &hold).await == "RELEASED" {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sweeper.abort();
    assert!(released);
    assert_eq!(budget_state(&f.pool, "b1").await, (0, 0));
}

#[tokio::test]
async fn ledger_errors_and_latency_quotas_count_after_the_fact() {
    let f = fixture().await;
    add_quota(&f.pool, Rule::new("q_err", "USER:u1", 2), "ERRORS").await;
    add_quota(&f.pool, Rule::new("q_lat", "USER:u1", 1_000), "LATENCY_MS").await;
    let user = principal("k_user");
    let demand = QuotaDemand {
        requests: 1,
        tokens_in: 50,
        tokens_out: 50,
        cost_nanos: 10,
    };
    for (n, errors, latency_ms) in [(1, 1, 600), (2, 0, 300)] {
        let hold = f.quotas.reserve(&user, &rid(n), demand).await.unwrap();
        assert_eq!(quota_state(&f.pool, "q_err").await.1, 0);
        let actual = QuotaActuals {
            errors,
            latency_ms,
            ..QuotaActuals::default()
        };
        f.quotas.settle(&hold, actual).await.unwrap();
    }
    assert_eq!(quota_state(&f.pool, "q_err").await, (1, 0));
    assert_eq!(quota_state(&f.pool, "q_lat").await, (900, 0));
    // Still below both limits: admitted, and this one pushes latency past its limit.
    let hold = f.quotas.reserve(&user, &rid(3), demand).await.unwrap();
    let actual = QuotaActuals {
        errors: 1,
        latency_ms: 200,
        ..QuotaActuals::default()
    };
    f.quotas.settle(&hold, actual).await.unwrap();
    assert_eq!(quota_state(&f.pool, "q_lat").await, (1_100, 0));
    match f.quotas.reserve(&user, &rid(4), demand).await {
        Err(QuotaError::Exceeded { quota, retry_after }) => {
            // ERRORS sorts first (q_err < q_lat); the window is January (UTC: unknown zone).
            assert_eq!(quota, "quota q_err");
            let end = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
            assert_eq!(retry_after, (end - t0()).to_std().unwrap());
        }
        other => panic!("expected a quota denial, got {other:?}"),
    }
    // Other users are not bound by u1's quotas.
    assert!(f
        .quotas
        .reserve(&principal("k_user2"), &rid(5), demand)
        .await
        .is_ok());
}

#[tokio::test]
async fn ledger_token_quotas_reserve_the_estimate_and_settle_actuals() {
    let f = fixture().await;
    add_quota(&f.pool, Rule::new("q_tok", "ORG", 1_000), "TOKENS").await;
    add_quota(&f.pool, Rule::new("q_in", "ORG", 1_000), "TOKENS_IN").await;
    add_quota(&f.pool, Rule::new("q_out", "ORG", 1_000), "TOKENS_OUT").await;
    add_quota(&f.pool, Rule::new("q_cost", "ORG", 1_000), "COST").await;
    let org = principal("k_org");
    let demand = QuotaDemand {
        requests: 1,
        tokens_in: 100,
        tokens_out: 300,
        cost_nanos: 70,
    };
    let hold = f.quotas.reserve(&org, &rid(1), demand).await.unwrap();
    assert_eq!(quota_state(&f.pool, "q_tok").await, (0, 400));
    assert_eq!(quota_state(&f.pool, "q_in").await, (0, 100));
    assert_eq!(quota_state(&f.pool, "q_out").await, (0, 300));
    assert_eq!(quota_state(&f.pool, "q_cost").await, (0, 70));
    let actual = QuotaActuals {
        requests: 1,
        tokens_in: 120,
        tokens_out: 500,
        cost_nanos: 90,
        ..QuotaActuals::default()
    };
    f.quotas.settle(&hold, actual).await.unwrap();
    f.quotas.settle(&hold, actual).await.unwrap();
    assert_eq!(quota_state(&f.pool, "q_tok").await, (620, 0));
    assert_eq!(quota_state(&f.pool, "q_in").await, (120, 0));
    assert_eq!(quota_state(&f.pool, "q_out").await, (500, 0));
    assert_eq!(quota_state(&f.pool, "q_cost").await, (90, 0));
    // 620 used + 400 > 1,000.
    assert!(matches!(
        f.quotas.reserve(&org, &rid(2), demand).await,
        Err(QuotaError::Exceeded { quota, .. }) if quota == "quota q_tok"
    ));
}

/// Records every crossing it is told about.
#[derive(Default)]
struct RecordedAlerts(parking_lot::Mutex<Vec<ThresholdCrossing>>);

impl BudgetAlerts for RecordedAlerts {
    fn threshold_crossed(&self, crossing: &ThresholdCrossing) {
        self.0.lock().push(crossing.clone());
    }
}

#[tokio::test]
async fn ledger_settlements_report_each_threshold_crossing_once() {
    let f = fixture().await;
    add_budget(&f.pool, Rule::new("b_alert", "ORG", 1_000)).await;
    exec(
        &f.pool,
        "UPDATE budgets SET thresholds = '[50,80,100]' WHERE id = 'b_alert'",
    )
    .await;
    let alerts = Arc::new(RecordedAlerts::default());
    let ledger = SqlBudgetLedger::new(
        f.pool.clone(),
        Arc::new(f.clock.clone()),
        LedgerOptions::default(),
    )
    .with_alerts(alerts.clone());
    let key = principal("k_org");
    // 400 → 40 %: nothing; 450 more → 85 %: 50 and 80 at once; releasing crosses nothing;
    // 100 more → 95 %: nothing; a 200 overshoot → 100 %.
    for (n, settle) in [
        (1, Some(400)),
        (2, Some(450)),
        (3, None),
        (4, Some(100)),
        (5, Some(200)),
    ] {
        let reservation = ledger.reserve(&key, &rid(n), 50).await.unwrap();
        match settle {
            Some(actual) => ledger.settle(&reservation, actual).await.unwrap(),
            None => ledger.release(&reservation).await.unwrap(),
        }
        // Settling again changes nothing and reports nothing.
        ledger.settle(&reservation, 999).await.unwrap();
    }
    let crossed: Vec<(u32, i64)> = alerts
        .0
        .lock()
        .iter()
        .map(|c| (c.threshold, c.used_nanos))
        .collect();
    assert_eq!(crossed, vec![(50, 850), (80, 850), (100, 1_150)]);
    let first = alerts.0.lock()[0].clone();
    assert_eq!(
        (
            first.budget_id.as_str(),
            first.budget_name.as_str(),
            first.amount_nanos
        ),
        ("b_alert", "budget b_alert", 1_000)
    );
}
