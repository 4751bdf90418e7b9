//! What a rate-limit admission takes and gives: the counted limits of each scope
//! ([`ScopeLimits`]), the headroom left ([`RateAdmission`]) and what an admitted request holds
//! until it ends ([`RatePermit`]). One request is admitted against every scope's request rates,
//! tokens per minute and concurrency in one step, all or nothing: a denial by one scope consumes
//! nothing in the others. The in-process limiter and the shared (Redis) one speak these types.

use std::time::Duration;

use super::policy::ScopedPolicy;

/// A rate-limit denial: which limit, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// Which limit refused (`requests_per_second`, `tokens_per_minute`, …).
    pub limit: &'static str,
    /// How long until the request would be admitted.
    pub retry_after: Duration,
}

/// A held concurrency slot; give it back with
/// [`InMemoryRateLimiter::release`](super::InMemoryRateLimiter::release) (or
/// [`finish_at`](super::InMemoryRateLimiter::finish_at)). Shared limiters use a random `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The concurrency counter the slot belongs to (`ScopeLimits::key`).
    pub key: String,
    /// The slot's own id, so releasing it twice frees one slot only.
    pub id: u64,
}

/// How long a concurrency slot lives when the policy does not say.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// The counted limits one scope puts on a request (0 = no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeLimits {
    /// `organisation`, `team`, `api_key`, `model`, `mcp_server`.
    pub scope: &'static str,
    /// `"<scope>:<id>"`: the counters' key.
    pub key: String,
    /// Sustained requests per second (with `burst`).
    pub requests_per_second: u32,
    /// Requests admitted at once under the per-second rate (the rate itself when unset).
    pub burst: u32,
    /// Requests per minute.
    pub requests_per_minute: u32,
    /// Input plus output tokens per minute, counted from the estimate and corrected at the end.
    pub tokens_per_minute: u64,
    /// Requests in flight at once.
    pub max_concurrent: u32,
    /// How long a concurrency slot is held if its request never reports back.
    pub lease_ttl: Duration,
}

impl ScopeLimits {
    /// The counted limits of one scope's policy, or `None` when it counts nothing.
    pub fn from_policy(scoped: &ScopedPolicy) -> Option<Self> {
        let p = &scoped.policy;
        if p.requests_per_second == 0
            && p.requests_per_minute == 0
            && p.tokens_per_minute == 0
            && p.max_concurrent_requests == 0
        {
            return None;
        }
        Some(Self {
            scope: scoped.scope,
            key: format!("{}:{}", scoped.scope, scoped.id),
            requests_per_second: p.requests_per_second,
            burst: if p.burst > 0 {
                p.burst
            } else {
                p.requests_per_second
            },
            requests_per_minute: p.requests_per_minute,
            tokens_per_minute: p.tokens_per_minute,
            max_concurrent: p.max_concurrent_requests,
            lease_ttl: match p.concurrency_lease_ttl_ms {
                0 => DEFAULT_LEASE_TTL,
                ms => Duration::from_millis(ms),
            },
        })
    }

    /// The request-rate checks of this scope: `(limit name, rate, period, burst)`; RPM admits its
    /// whole minute at once.
    pub fn rate_checks(&self) -> [(&'static str, u32, Duration, u32); 2] {
        [
            (
                "requests_per_second",
                self.requests_per_second,
                Duration::from_secs(1),
                self.burst,
            ),
            (
                "requests_per_minute",
                self.requests_per_minute,
                Duration::from_secs(60),
                self.requests_per_minute,
            ),
        ]
    }
}

/// What an admitted request holds until it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RatePermit {
    /// Concurrency slots to give back.
    pub leases: Vec<Lease>,
    /// Token windows the estimate was counted in (`ScopeLimits::key`).
    pub token_keys: Vec<String>,
    /// The tokens counted in each of those windows.
    pub estimated_tokens: u64,
}

impl RatePermit {
    /// Whether the permit holds nothing to give back.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty() && self.token_keys.is_empty()
    }
}

/// An admission: the tightest request-rate and token limits (for the `x-ratelimit-*` headers) and
/// what the request holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateAdmission {
    /// `(limit, remaining)` of the request-rate limit with the least headroom.
    pub requests: Option<(u64, u64)>,
    /// `(limit, remaining)` of the tokens-per-minute limit with the least headroom.
    pub tokens: Option<(u64, u64)>,
    /// What the request holds until it ends.
    pub permit: RatePermit,
}

impl RateAdmission {
    /// Keeps the request-rate figure with the least headroom.
    pub fn note_requests(&mut self, limit: u64, remaining: u64) {
        self.requests = tighter(self.requests, limit, remaining);
    }

    /// Keeps the token figure with the least headroom.
    pub fn note_tokens(&mut self, limit: u64, remaining: u64) {
        self.tokens = tighter(self.tokens, limit, remaining);
    }
}

fn tighter(current: Option<(u64, u64)>, limit: u64, remaining: u64) -> Option<(u64, u64)> {
    match current {
        Some((_, left)) if left <= remaining => current,
        _ => Some((limit, remaining)),
    }
}

/// Which scope refused the request, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDenied {
    /// The scope whose limit refused (`organisation`, `team`, `api_key`, `model`, `mcp_server`).
    pub scope: &'static str,
    /// Which limit, and when to retry.
    pub denied: Denied,
}
