use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use odock_core::{
    ApiKeyId, LedgerKind, OrganisationId, QuotaMetric, RuleKind, RuleOwner, RuleSource, UsageSink,
    WindowCharge,
};
use serde_json::json;

use super::{apply_charges, window_used, SqlRuleSource};
use crate::db::Db;
use crate::test_fixtures::{self as fixtures, org, pool};

async fn budget(pool: &Db, org: &str, body: serde_json::Value) -> String {
    fixtures::budget(pool, org, body).await
}

async fn quota(pool: &Db, org: &str, body: serde_json::Value) -> String {
    fixtures::quota(pool, org, body).await
}

async fn key(pool: &Db, org: &str) -> String {
    fixtures::api_key(pool, org).await
}

fn charge(kind: LedgerKind, rule: &str, metric: Option<QuotaMetric>, used: i64) -> WindowCharge {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    WindowCharge {
        kind,
        rule_id: Arc::from(rule),
        metric,
        start,
        end: start + Duration::days(31),
        used,
    }
}

#[tokio::test]
async fn the_rule_source_reads_active_rules_of_one_organisation_with_their_owners() {
    let pool = pool().await;
    let acme = org(&pool, "Acme").await;
    let other = org(&pool, "Other").await;
    let key_id = key(&pool, &acme).await;
    let b = budget(
        &pool,
        &acme,
        json!({"name": "monthly", "ownerType": "ORG", "amountNanos": 5_000,
        "period": "MONTHLY", "thresholds": [50, 90]}),
    )
    .await;
    let q = quota(
        &pool,
        &acme,
        json!({"name": "requests", "ownerType": "APIKEY", "ownerId": key_id,
        "metric": "REQUESTS", "limit": 10, "period": "DAILY", "timezone": "Europe/Paris"}),
    )
    .await;
    let off = budget(
        &pool,
        &acme,
        json!({"name": "off", "ownerType": "ORG", "amountNanos": 1,
        "period": "DAILY"}),
    )
    .await;
    fixtures::set_active(&pool, "budgets", &off, false).await;
    budget(
        &pool,
        &other,
        json!({"name": "theirs", "ownerType": "ORG", "amountNanos": 1,
        "period": "DAILY"}),
    )
    .await;

    let set = SqlRuleSource::new(pool.clone())
        .load(&OrganisationId::new(acme.as_str()), Utc::now())
        .await
        .unwrap();
    let ids: Vec<&str> = set.rules.iter().map(|r| &*r.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let budget_rule = set.rules.iter().find(|r| *r.id == *b).unwrap();
    assert_eq!(budget_rule.kind, RuleKind::Budget);
    assert_eq!(budget_rule.owner, RuleOwner::Organisation);
    assert_eq!(
        (budget_rule.limit, budget_rule.thresholds.clone()),
        (5_000, vec![50, 90])
    );
    let quota_rule = set.rules.iter().find(|r| *r.id == *q).unwrap();
    assert_eq!(quota_rule.kind, RuleKind::Quota(QuotaMetric::Requests));
    assert_eq!(
        quota_rule.owner,
        RuleOwner::ApiKey(ApiKeyId::new(key_id.as_str()))
    );
    assert_eq!(quota_rule.schedule.timezone, chrono_tz::Europe::Paris);
    assert!(set.windows.is_empty());
}

#[tokio::test]
async fn charges_are_summed_per_window_and_rows_created_on_first_use() {
    let pool = pool().await;
    let acme = org(&pool, "Acme").await;
    let b = budget(
        &pool,
        &acme,
        json!({"name": "m", "ownerType": "ORG", "amountNanos": 5_000,
        "period": "MONTHLY", "startAt": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let q = quota(
        &pool,
        &acme,
        json!({"name": "t", "ownerType": "ORG", "metric": "TOKENS",
        "limit": 99, "period": "MONTHLY", "startAt": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let charges = [
        charge(LedgerKind::Budget, &b, None, 100),
        charge(LedgerKind::Budget, &b, None, 250),
        charge(LedgerKind::Quota, &q, Some(QuotaMetric::Tokens), 7),
        // A rule deleted meanwhile: dropped, and it must not fail the others.
        charge(LedgerKind::Budget, "gone", None, 1_000),
    ];
    let mut conn = pool.acquire().await.unwrap();
    apply_charges(&mut conn, &charges).await.unwrap();
    apply_charges(&mut conn, &charges[..1]).await.unwrap();
    drop(conn);
    let march = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    assert_eq!(
        window_used(&pool, LedgerKind::Budget, &b, march)
            .await
            .unwrap(),
        450
    );
    assert_eq!(
        window_used(&pool, LedgerKind::Quota, &q, march)
            .await
            .unwrap(),
        7
    );
    assert_eq!(
        window_used(&pool, LedgerKind::Budget, "gone", march)
            .await
            .unwrap(),
        0
    );

    // Stored windows that have not ended come back with the rules.
    let set = SqlRuleSource::new(pool.clone())
        .load(
            &OrganisationId::new(acme.as_str()),
            Utc.with_ymd_and_hms(2026, 3, 5, 0, 0, 0).unwrap(),
        )
        .await
        .unwrap();
    let mut stored: Vec<(String, i64)> = set
        .windows
        .iter()
        .map(|w| (w.rule_id.to_string(), w.used))
        .collect();
    stored.sort();
    let mut expected = vec![(b.clone(), 450), (q.clone(), 7)];
    expected.sort();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn the_usage_writer_stores_charges_with_their_records_once() {
    let pool = pool().await;
    let acme = org(&pool, "Acme").await;
    let b = budget(
        &pool,
        &acme,
        json!({"name": "m", "ownerType": "ORG", "amountNanos": 5_000,
        "period": "MONTHLY", "startAt": "2026-01-01T00:00:00Z"}),
    )
    .await;
    let sink = crate::SqlUsageSink::start(pool.clone(), crate::UsageWriterOptions::default());
    let mut first = crate::usage_records::tests::record("r1", 1_000);
    first.ledger_charges = vec![charge(LedgerKind::Budget, &b, None, 300)];
    let mut second = crate::usage_records::tests::record("r2", 2_000);
    second.ledger_charges = vec![charge(LedgerKind::Budget, &b, None, 200)];
    sink.enqueue(first.clone());
    sink.enqueue(second);
    // The same record again (a retried batch, a replayed spill): stored and charged once.
    sink.enqueue(first);
    sink.flush().await.unwrap();
    let march = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    assert_eq!(
        window_used(&pool, LedgerKind::Budget, &b, march)
            .await
            .unwrap(),
        500
    );
}
