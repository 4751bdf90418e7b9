#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use parking_lot::Mutex;

use super::*;
use crate::cache::CacheKind;
use crate::clock::ManualClock;
use crate::domain::{ApiKeyType, BudgetPeriod, QuotaMetric};
use crate::ids::{ApiKeyId, OrganisationId, TeamId};
use crate::ledger::rules::{RuleOwner, RuleSet, StoredWindow};
use crate::windows::Schedule;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap()
}

fn principal(org: &str, key: &str) -> Principal {
    Principal {
        api_key_id: ApiKeyId::new(key),
        organisation_id: OrganisationId::new(org),
        key_type: ApiKeyType::Organisation,
        team_id: None,
        user_id: None,
        expires_at: None,
        revoked: false,
    }
}

fn rule(id: &str, kind: RuleKind, limit: i64, period: BudgetPeriod) -> LedgerRule {
    LedgerRule {
        id: Arc::from(id),
        organisation_id: OrganisationId::new("o1"),
        name: format!("rule {id}"),
        kind,
        owner: RuleOwner::Organisation,
        limit,
        schedule: Schedule {
            start_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            timezone: chrono_tz::UTC,
            period,
            end_at: None,
        },
        thresholds: vec![50, 80, 90, 100],
    }
}

fn budget(id: &str, limit: i64) -> LedgerRule {
    rule(id, RuleKind::Budget, limit, BudgetPeriod::Monthly)
}

fn quota(id: &str, metric: QuotaMetric, limit: i64) -> LedgerRule {
    rule(id, RuleKind::Quota(metric), limit, BudgetPeriod::Daily)
}

fn cost(nanos: i64) -> Estimate {
    Estimate {
        tokens_in: 10,
        tokens_out: 20,
        cost_nanos: nanos,
    }
}

fn spent(nanos: i64) -> Actuals {
    Actuals {
        tokens_in: 10,
        tokens_out: 20,
        cost_nanos: nanos,
        errors: 0,
        latency_ms: 5,
    }
}

/// A rule source the tests steer: its rules and stored windows, how often it was read, and an
/// optional gate a load waits behind.
#[derive(Default)]
struct TestSource {
    set: Mutex<RuleSet>,
    loads: AtomicUsize,
    fail: Mutex<bool>,
    gate: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

#[async_trait]
impl RuleSource for TestSource {
    async fn load(
        &self,
        _organisation: &OrganisationId,
        _now: DateTime<Utc>,
    ) -> Result<RuleSet, crate::ledger::LedgerError> {
        let gate = self.gate.lock().clone();
        if let Some(gate) = gate {
            gate.notified().await;
        }
        self.loads.fetch_add(1, Ordering::SeqCst);
        if *self.fail.lock() {
            return Err(crate::ledger::LedgerError("database unreachable".into()));
        }
        Ok(self.set.lock().clone())
    }
}

fn ledger_with(rules: Vec<LedgerRule>) -> (InMemoryLedger, Arc<TestSource>, ManualClock) {
    let source = Arc::new(TestSource::default());
    source.set.lock().rules = rules;
    let clock = ManualClock::new(t0());
    let ledger = InMemoryLedger::with_settings(
        source.clone(),
        Arc::new(clock.clone()),
        std::time::Duration::from_secs(3_600),
    );
    (ledger, source, clock)
}

fn totals(ledger: &InMemoryLedger, rule: &str, start: DateTime<Utc>) -> WindowTotals {
    ledger
        .window_totals(&OrganisationId::new("o1"), rule, start)
        .unwrap_or_default()
}

fn march() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_admits_exactly_what_it_can_pay_for_under_concurrency() {
    let (ledger, _, _) = ledger_with(vec![budget("b", 7_000)]);
    let attempts: Vec<_> = (0..200)
        .map(|i| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                ledger
                    .reserve(&principal("o1", &format!("k{}", i % 3)), &cost(1_000))
                    .await
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut refused = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(hold) => held.push(hold),
            Err(GatewayError::Budget(BudgetError::Exceeded { budget })) => {
                assert_eq!(budget, "rule b");
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((held.len(), refused), (7, 193));
    assert_eq!(
        totals(&ledger, "b", march()),
        WindowTotals {
            used: 0,
            reserved: 7_000
        }
    );
    let charges: Vec<_> = held.into_iter().map(|h| h.settle(&spent(900))).collect();
    assert_eq!(
        totals(&ledger, "b", march()),
        WindowTotals {
            used: 6_300,
            reserved: 0
        }
    );
    assert!(charges.iter().all(|c| c.len() == 1 && c[0].used == 900));
    assert_eq!(charges[0][0].start, march());
    assert_eq!(
        charges[0][0].end,
        Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap()
    );
}

#[tokio::test]
async fn a_refusal_in_one_window_holds_nothing_in_the_others() {
    let (ledger, _, _) = ledger_with(vec![
        budget("roomy", 1_000_000),
        quota("tight", QuotaMetric::Requests, 1),
    ]);
    let first = ledger
        .reserve(&principal("o1", "k"), &cost(100))
        .await
        .unwrap();
    let refused = ledger.reserve(&principal("o1", "k"), &cost(100)).await;
    match refused {
        Err(GatewayError::Quota(QuotaError::Exceeded { quota, retry_after })) => {
            assert_eq!(quota, "rule tight");
            // The daily window ends at midnight, 12 hours after t0.
            assert_eq!(retry_after, std::time::Duration::from_secs(12 * 3_600));
        }
        other => panic!("expected a quota refusal, got {other:?}"),
    }
    assert_eq!(totals(&ledger, "roomy", march()).reserved, 100);
    drop(first);
    assert_eq!(totals(&ledger, "roomy", march()), WindowTotals::default());
}

#[tokio::test]
async fn a_dropped_hold_releases_everything_and_counts_nothing() {
    let (ledger, _, _) = ledger_with(vec![budget("b", 1_000)]);
    for _ in 0..10 {
        let hold = ledger
            .reserve(&principal("o1", "k"), &cost(1_000))
            .await
            .unwrap();
        assert_eq!(totals(&ledger, "b", march()).reserved, 1_000);
        drop(hold);
    }
    assert_eq!(totals(&ledger, "b", march()), WindowTotals::default());
}

#[tokio::test]
async fn the_overshoot_is_recorded_and_refuses_what_comes_next() {
    let (ledger, _, _) = ledger_with(vec![budget("b", 1_000)]);
    let hold = ledger
        .reserve(&principal("o1", "k"), &cost(400))
        .await
        .unwrap();
    let charges = hold.settle(&spent(1_500));
    assert_eq!(charges[0].used, 1_500);
    assert_eq!(totals(&ledger, "b", march()).used, 1_500);
    assert!(ledger
        .reserve(&principal("o1", "k"), &cost(0))
        .await
        .is_err());
}

#[tokio::test]
async fn errors_and_latency_are_counted_after_the_fact() {
    let (ledger, _, _) = ledger_with(vec![quota("e", QuotaMetric::Errors, 2)]);
    let today = Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap();
    let failed = Actuals {
        errors: 1,
        ..spent(10)
    };
    for _ in 0..2 {
        // Nothing is held, and a request admitted while `used < limit` counts its error.
        let hold = ledger
            .reserve(&principal("o1", "k"), &cost(10))
            .await
            .unwrap();
        assert_eq!(totals(&ledger, "e", today).reserved, 0);
        let charges = hold.settle(&failed);
        assert_eq!(charges[0].metric, Some(QuotaMetric::Errors));
    }
    assert_eq!(totals(&ledger, "e", today).used, 2);
    assert!(matches!(
        ledger.reserve(&principal("o1", "k"), &cost(10)).await,
        Err(GatewayError::Quota(_))
    ));
}

#[tokio::test]
async fn a_new_window_starts_empty_and_the_old_one_keeps_late_settlements() {
    let (ledger, _, clock) = ledger_with(vec![quota("q", QuotaMetric::Requests, 1)]);
    let day1 = Utc.with_ymd_and_hms(2026, 3, 10, 0, 0, 0).unwrap();
    let day2 = day1 + Span::days(1);
    let late = ledger
        .reserve(&principal("o1", "k"), &cost(1))
        .await
        .unwrap();
    assert!(ledger
        .reserve(&principal("o1", "k"), &cost(1))
        .await
        .is_err());
    clock.set(day2 + Span::hours(1));
    let next = ledger
        .reserve(&principal("o1", "k"), &cost(1))
        .await
        .unwrap();
    // The request admitted yesterday settles into yesterday's window.
    let charges = late.settle(&spent(1));
    assert_eq!((charges[0].start, charges[0].end), (day1, day2));
    assert_eq!(totals(&ledger, "q", day1).used, 1);
    assert_eq!(
        totals(&ledger, "q", day2),
        WindowTotals {
            used: 0,
            reserved: 1
        }
    );
    drop(next);
}

#[tokio::test]
async fn stored_totals_seed_the_windows_and_memory_stays_ahead_after_a_reload() {
    let (ledger, source, _) = ledger_with(vec![budget("b", 10_000)]);
    source.set.lock().windows = vec![StoredWindow {
        rule_id: Arc::from("b"),
        start: march(),
        end: Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap(),
        used: 9_000,
    }];
    ledger
        .reserve(&principal("o1", "k"), &cost(500))
        .await
        .unwrap()
        .settle(&spent(500));
    assert_eq!(totals(&ledger, "b", march()).used, 9_500);
    // An admin change reloads the rules; the stored total (not yet 9,500) must not rewind memory.
    source.set.lock().rules = vec![budget("b", 20_000)];
    ledger.invalidate(&InvalidationCommand::new(CacheKind::Budget, "o1"));
    let hold = ledger
        .reserve(&principal("o1", "k"), &cost(10_000))
        .await
        .unwrap();
    assert_eq!(
        totals(&ledger, "b", march()),
        WindowTotals {
            used: 9_500,
            reserved: 10_000
        }
    );
    assert_eq!(source.loads.load(Ordering::SeqCst), 2);
    drop(hold);
}

#[tokio::test]
async fn rules_are_read_once_until_invalidated() {
    let (ledger, source, _) = ledger_with(vec![budget("b", 10_000)]);
    for _ in 0..50 {
        ledger
            .reserve(&principal("o1", "k"), &cost(1))
            .await
            .unwrap();
    }
    assert_eq!(source.loads.load(Ordering::SeqCst), 1);
    // Another organisation's change does not reload this one.
    ledger.invalidate(&InvalidationCommand::new(CacheKind::Budget, "o2"));
    ledger
        .reserve(&principal("o1", "k"), &cost(1))
        .await
        .unwrap();
    assert_eq!(source.loads.load(Ordering::SeqCst), 1);
    // A new budget applies to the very next request after the invalidation.
    source.set.lock().rules.push(budget("tiny", 1));
    ledger.invalidate(&InvalidationCommand::new(CacheKind::Budget, "o1"));
    assert!(matches!(
        ledger.reserve(&principal("o1", "k"), &cost(2)).await,
        Err(GatewayError::Budget(BudgetError::Exceeded { .. }))
    ));
}

#[tokio::test]
async fn only_matching_owners_count() {
    let mut team_budget = budget("team", 100);
    team_budget.owner = RuleOwner::Team(TeamId::new("t1"));
    let (ledger, _, _) = ledger_with(vec![team_budget]);
    // An organisation key is not counted by a team's budget.
    let hold = ledger
        .reserve(&principal("o1", "k"), &cost(1_000))
        .await
        .unwrap();
    assert!(hold.is_empty());
    let mut team_key = principal("o1", "k2");
    team_key.key_type = ApiKeyType::Team;
    team_key.team_id = Some(TeamId::new("t1"));
    assert!(ledger.reserve(&team_key, &cost(1_000)).await.is_err());
    assert!(!ledger
        .reserve(&team_key, &cost(100))
        .await
        .unwrap()
        .is_empty());
}

#[derive(Default)]
struct Alerts(Mutex<Vec<u32>>);

impl BudgetAlerts for Alerts {
    fn threshold_crossed(&self, crossing: &ThresholdCrossing) {
        self.0.lock().push(crossing.threshold);
    }
}

#[tokio::test]
async fn thresholds_are_reported_once_per_window() {
    let source = Arc::new(TestSource::default());
    source.set.lock().rules = vec![budget("b", 1_000)];
    let alerts = Arc::new(Alerts::default());
    let ledger = InMemoryLedger::with_settings(
        source,
        Arc::new(ManualClock::new(t0())),
        std::time::Duration::from_secs(3_600),
    )
    .with_alerts(alerts.clone());
    for spend in [400, 150, 300, 100, 200] {
        ledger
            .reserve(&principal("o1", "k"), &cost(0))
            .await
            .unwrap()
            .settle(&spent(spend));
    }
    assert_eq!(*alerts.0.lock(), vec![50, 80, 90, 100]);
}

#[tokio::test]
async fn an_unreachable_source_refuses_with_503_and_recovers() {
    let (ledger, source, _) = ledger_with(vec![budget("b", 1_000)]);
    *source.fail.lock() = true;
    let refused = ledger.reserve(&principal("o1", "k"), &cost(1)).await;
    match refused {
        Err(error @ GatewayError::Budget(BudgetError::Unavailable(_))) => {
            assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    *source.fail.lock() = false;
    assert!(ledger
        .reserve(&principal("o1", "k"), &cost(1))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_request_cancelled_while_the_rules_load_leaves_the_load_to_finish() {
    let (ledger, source, _) = ledger_with(vec![budget("b", 1_000)]);
    let gate = Arc::new(tokio::sync::Notify::new());
    *source.gate.lock() = Some(gate.clone());
    // The first request waits on the load, then gives up.
    let waiting = tokio::time::timeout(
        std::time::Duration::from_millis(20),
        ledger.reserve(&principal("o1", "k"), &cost(1)),
    )
    .await;
    assert!(waiting.is_err(), "the load was blocked");
    *source.gate.lock() = None;
    gate.notify_one();
    // The load it started finishes on its own; the next request is decided without another one.
    let hold = ledger
        .reserve(&principal("o1", "k"), &cost(1))
        .await
        .unwrap();
    assert_eq!(totals(&ledger, "b", march()).reserved, 1);
    assert_eq!(source.loads.load(Ordering::SeqCst), 1);
    drop(hold);
    assert_eq!(totals(&ledger, "b", march()).reserved, 0);
}

#[tokio::test]
async fn rules_are_refreshed_in_the_background_after_their_age() {
    let source = Arc::new(TestSource::default());
    source.set.lock().rules = vec![budget("b", 1_000)];
    let clock = ManualClock::new(t0());
    let ledger = InMemoryLedger::with_settings(
        source.clone(),
        Arc::new(clock.clone()),
        std::time::Duration::from_secs(60),
    );
    ledger
        .reserve(&principal("o1", "k"), &cost(1))
        .await
        .unwrap();
    source.set.lock().rules = vec![budget("b", 1)];
    clock.advance(Span::seconds(61));
    // This request is decided on the loaded rules while the reload runs behind it.
    assert!(ledger
        .reserve(&principal("o1", "k"), &cost(5))
        .await
        .is_ok());
    while source.loads.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    // Wait until the reload has been installed.
    loop {
        if ledger
            .reserve(&principal("o1", "k"), &cost(5))
            .await
            .is_err()
        {
            break;
        }
        tokio::task::yield_now().await;
    }
}
