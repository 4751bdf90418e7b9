use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use odock_core::rate_limit::{RateLimiter, ScopeLimits};
use odock_core::ManualClock;

use super::super::RedisRateLimiter;
use super::support;

fn scope(scope: &'static str, f: impl FnOnce(&mut ScopeLimits)) -> ScopeLimits {
    let mut limits = ScopeLimits {
        scope,
        key: format!("{scope}:1"),
        requests_per_second: 0,
        burst: 0,
        requests_per_minute: 0,
        tokens_per_minute: 0,
        max_concurrent: 0,
        lease_ttl: Duration::from_secs(30),
    };
    f(&mut limits);
    limits
}

/// Two limiters on separate connections sharing one Redis prefix: two replicas.
async fn replicas(test: &str) -> Option<(RedisRateLimiter, RedisRateLimiter, ManualClock)> {
    let settings = support::settings(test)?;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    let a = RedisRateLimiter::new(
        support::connect_with(&settings).await,
        Arc::new(clock.clone()),
    );
    let b = RedisRateLimiter::new(
        support::connect_with(&settings).await,
        Arc::new(clock.clone()),
    );
    Some((a, b, clock))
}

#[tokio::test]
async fn redis_requests_per_second_and_minute_are_shared_by_two_replicas() {
    let Some((a, b, clock)) = replicas("redis_rps_rpm").await else {
        return;
    };
    // 10 per second with a burst of 4: four at once, whichever replica they reach.
    let rps = [scope("api_key", |l| {
        l.requests_per_second = 10;
        l.burst = 4;
    })];
    let mut admitted = 0;
    for i in 0..8 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        if limiter.admit(&rps, 0).await.is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4);
    let denied = a.admit(&rps, 0).await.unwrap_err();
    assert_eq!(denied.scope, "api_key");
    assert_eq!(denied.denied.limit, "requests_per_second");
    assert_eq!(denied.denied.retry_after, Duration::from_millis(100));
    clock.advance(chrono::Duration::milliseconds(100));
    assert!(b.admit(&rps, 0).await.is_ok());
    assert!(a.admit(&rps, 0).await.is_err());

    // 3 per minute: the headers count down across replicas, the fourth waits 20 s.
    let rpm = [scope("organisation", |l| l.requests_per_minute = 3)];
    for (limiter, left) in [(&a, 2), (&b, 1), (&a, 0)] {
        let admission = limiter.admit(&rpm, 0).await.unwrap();
        assert_eq!(admission.requests, Some((3, left)));
    }
    let denied = b.admit(&rpm, 0).await.unwrap_err();
    assert_eq!(denied.denied.limit, "requests_per_minute");
    assert_eq!(denied.denied.retry_after, Duration::from_secs(20));
    clock.advance(chrono::Duration::seconds(20));
    assert!(a.admit(&rpm, 0).await.is_ok());
}

#[tokio::test]
async fn redis_tokens_per_minute_slide_and_reconcile_across_replicas() {
    let Some((a, b, clock)) = replicas("redis_tpm").await else {
        return;
    };
    let tpm = [scope("model", |l| l.tokens_per_minute = 1_000)];
    let first = a.admit(&tpm, 600).await.unwrap();
    assert_eq!(first.tokens, Some((1_000, 400)));
    clock.advance(chrono::Duration::seconds(10));
    let denied = b.admit(&tpm, 500).await.unwrap_err();
    assert_eq!(denied.denied.limit, "tokens_per_minute");
    assert_eq!(denied.denied.retry_after, Duration::from_secs(50));
    // The first request used only 100 of its 600 (finished on replica A, asynchronously).
    a.finish(first.permit, 100);
    let mut second = None;
    for _ in 0..200 {
        if let Ok(admission) = b.admit(&tpm, 500).await {
            second = Some(admission);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(second.expect("tokens came back").tokens, Some((1_000, 400)));
    assert!(a.admit(&tpm, 500).await.is_err());
    // A minute after the first bucket, it has left the window: 500 still counted.
    clock.advance(chrono::Duration::seconds(50));
    assert_eq!(a.admit(&tpm, 100).await.unwrap().tokens, Some((1_000, 400)));
}

#[tokio::test]
async fn redis_concurrency_leases_cap_both_replicas_and_expire() {
    let Some((a, b, clock)) = replicas("redis_concurrency").await else {
        return;
    };
    let conc = [scope("api_key", |l| l.max_concurrent = 2)];
    let first = a.admit(&conc, 0).await.unwrap();
    let _second = b.admit(&conc, 0).await.unwrap();
    let denied = a.admit(&conc, 0).await.unwrap_err();
    assert_eq!(denied.denied.limit, "max_concurrent_requests");
    assert_eq!(denied.denied.retry_after, Duration::from_secs(30));
    // Released on B's admission side, freed for A.
    a.finish(first.permit, 0);
    let mut third = None;
    for _ in 0..200 {
        if let Ok(admission) = b.admit(&conc, 0).await {
            third = Some(admission);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(third.is_some(), "the released slot never came back");
    assert!(a.admit(&conc, 0).await.is_err());
    // A crashed replica's leases lapse after their TTL.
    clock.advance(chrono::Duration::seconds(31));
    assert!(a.admit(&conc, 0).await.is_ok());
}

#[tokio::test]
async fn redis_admission_is_all_or_nothing_across_scopes() {
    let Some((a, b, _clock)) = replicas("redis_all_or_nothing").await else {
        return;
    };
    let org = scope("organisation", |l| {
        l.requests_per_minute = 10;
        l.tokens_per_minute = 1_000;
        l.max_concurrent = 5;
    });
    let key = scope("api_key", |l| l.requests_per_minute = 1);
    let both = [org.clone(), key];
    let first = a.admit(&both, 100).await.unwrap();
    assert_eq!(first.requests, Some((1, 0)));
    assert_eq!(first.permit.leases.len(), 1);
    let denied = b.admit(&both, 100).await.unwrap_err();
    assert_eq!(denied.scope, "api_key");
    // The denial took nothing from the organisation scope.
    let org_only = b.admit(std::slice::from_ref(&org), 100).await.unwrap();
    assert_eq!(org_only.requests, Some((10, 8)));
    assert_eq!(org_only.tokens, Some((1_000, 800)));
}

/// A limit above one request per microsecond still tolerates replicas whose clocks (or whose
/// concurrent callers' readings) are a little apart: the later reading never locks out the earlier.
#[tokio::test]
async fn redis_very_high_request_rates_tolerate_clock_readings_out_of_order() {
    let Some(settings) = support::settings("redis_high_rate") else {
        return;
    };
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let ahead = ManualClock::new(start + chrono::Duration::milliseconds(5));
    let behind = ManualClock::new(start);
    let a = RedisRateLimiter::new(support::connect_with(&settings).await, Arc::new(ahead));
    let b = RedisRateLimiter::new(support::connect_with(&settings).await, Arc::new(behind));
    let rpm = [scope("api_key", |l| l.requests_per_minute = 100_000_000)];
    for _ in 0..50 {
        assert!(a.admit(&rpm, 0).await.is_ok());
        assert!(
            b.admit(&rpm, 0).await.is_ok(),
            "the replica 5 ms behind was refused"
        );
    }
}
