//! [`RedisRateLimiter`]: rate-limit counters shared by every replica, so N replicas enforce one
//! limit instead of N.
//!
//! Same algorithms as the in-process limiter — GCRA for requests per second (with burst) and per
//! minute, a sliding window of per-second buckets for tokens per minute, leases with a TTL for
//! concurrency — in one Lua script per admission over every scope (`lua/rate_admit.lua`), all or
//! nothing. Keys: `{prefix}rl:{scope}:{id}:{rps|rpm|tpm|conc}`, each with an expiry so idle
//! scopes leave nothing behind. Time comes from the limiter's [`Clock`] (replicas run NTP; tests
//! use a manual clock).
//!
//! When Redis is unreachable, admission fails **open** with a (throttled) warning: a counter
//! outage must not become a traffic outage.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use odock_core::rate_limit::{
    Denied, Lease, RateAdmission, RateDenied, RateLimiter, RatePermit, ScopeLimits,
};
use odock_core::Clock;
use redis::Script;

use super::connection::{RedisConnection, RedisStoreError};
use super::outage::OutageLog;

/// The limit names of the admission script's denial codes.
const LIMITS: [&str; 4] = [
    "requests_per_second",
    "requests_per_minute",
    "tokens_per_minute",
    "max_concurrent_requests",
];

/// The Redis [`RateLimiter`]. Cheap to clone.
#[derive(Clone)]
pub struct RedisRateLimiter(Arc<Inner>);

struct Inner {
    conn: RedisConnection,
    clock: Arc<dyn Clock>,
    admit: Script,
    finish: Script,
    outage: OutageLog,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("conn", &self.0.conn)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    pub fn new(conn: RedisConnection, clock: Arc<dyn Clock>) -> Self {
        Self(Arc::new(Inner {
            conn,
            clock,
            admit: Script::new(include_str!("lua/rate_admit.lua")),
            finish: Script::new(include_str!("lua/rate_finish.lua")),
            outage: OutageLog::default(),
        }))
    }
}

impl Inner {
    fn key(&self, scope_key: &str, counter: &str) -> String {
        self.conn.key(&format!("rl:{scope_key}:{counter}"))
    }

    fn now_us(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    async fn try_admit(
        &self,
        scopes: &[ScopeLimits],
        tokens: u64,
    ) -> Result<Result<RateAdmission, RateDenied>, RedisStoreError> {
        let lease_id: u64 = rand::random();
        let mut invocation = self.admit.prepare_invoke();
        invocation.arg(self.now_us()).arg(tokens).arg(lease_id);
        for limits in scopes {
            for counter in ["rps", "rpm", "tpm", "conc"] {
                invocation.key(self.key(&limits.key, counter));
            }
            invocation
                .arg(limits.requests_per_second)
                .arg(limits.burst)
                .arg(limits.requests_per_minute)
                .arg(limits.tokens_per_minute)
                .arg(limits.max_concurrent)
                .arg(u64::try_from(limits.lease_ttl.as_millis()).unwrap_or(u64::MAX));
        }
        let mut conn = self.conn.manager();
        let reply: Vec<i64> = self
            .conn
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        decode_admission(&reply, scopes, tokens, lease_id)
    }

    async fn try_finish(&self, permit: &RatePermit, actual: u64) -> Result<(), RedisStoreError> {
        // Every lease of one admission carries the same random id.
        let lease_id = permit.leases.first().map_or(0, |lease| lease.id);
        let mut invocation = self.finish.prepare_invoke();
        for lease in &permit.leases {
            invocation.key(self.key(&lease.key, "conc"));
        }
        for key in &permit.token_keys {
            invocation.key(self.key(key, "tpm"));
        }
        invocation
            .arg(lease_id)
            .arg(permit.leases.len())
            .arg(permit.estimated_tokens)
            .arg(actual)
            .arg(self.now_us());
        let mut conn = self.conn.manager();
        let _: i64 = self
            .conn
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }
}

/// Turns the admission script's reply into an admission or a denial.
fn decode_admission(
    reply: &[i64],
    scopes: &[ScopeLimits],
    tokens: u64,
    lease_id: u64,
) -> Result<Result<RateAdmission, RateDenied>, RedisStoreError> {
    let malformed = || RedisStoreError::Reply(format!("rate admission: {reply:?}"));
    match reply.first() {
        Some(0) => {
            let [_, scope, limit, retry_us] = reply else {
                return Err(malformed());
            };
            let scope = usize::try_from(*scope - 1)
                .ok()
                .and_then(|i| scopes.get(i))
                .ok_or_else(malformed)?;
            let limit = usize::try_from(*limit - 1)
                .ok()
                .and_then(|i| LIMITS.get(i))
                .ok_or_else(malformed)?;
            Ok(Err(RateDenied {
                scope: scope.scope,
                denied: Denied {
                    limit,
                    retry_after: Duration::from_micros(u64::try_from(*retry_us).unwrap_or(0)),
                },
            }))
        }
        Some(1) if reply.len() == 1 + 3 * scopes.len() => {
            let mut admission = RateAdmission::default();
            for (limits, left) in scopes.iter().zip(reply[1..].chunks_exact(3)) {
                let left = |i: usize| u64::try_from(left[i]).ok();
                if let Some(remaining) = left(0) {
                    admission.note_requests(u64::from(limits.requests_per_second), remaining);
                }
                if let Some(remaining) = left(1) {
                    admission.note_requests(u64::from(limits.requests_per_minute), remaining);
                }
                if let Some(remaining) = left(2) {
                    admission.note_tokens(limits.tokens_per_minute, remaining);
                    admission.permit.token_keys.push(limits.key.clone());
                }
                if limits.max_concurrent > 0 {
                    admission.permit.leases.push(Lease {
                        key: limits.key.clone(),
                        id: lease_id,
                    });
                }
            }
            admission.permit.estimated_tokens = tokens;
            Ok(Ok(admission))
        }
        _ => Err(malformed()),
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn admit(
        &self,
        scopes: &[ScopeLimits],
        tokens: u64,
    ) -> Result<RateAdmission, RateDenied> {
        match self.0.try_admit(scopes, tokens).await {
            Ok(decision) => decision,
            Err(error) => {
                if self.0.outage.should_log() {
                    tracing::warn!(%error, "rate limits unavailable: admitting without counting (fail open)");
                }
                Ok(RateAdmission::default())
            }
        }
    }

    fn finish(&self, permit: RatePermit, actual_tokens: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "no runtime to release rate-limit leases on; they expire with their TTL"
            );
            return;
        };
        let limiter = self.0.clone();
        runtime.spawn(async move {
            if let Err(error) = limiter.try_finish(&permit, actual_tokens).await {
                tracing::warn!(%error, "rate-limit leases not released; they expire with their TTL");
            }
        });
    }
}
