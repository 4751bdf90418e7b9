//! Rate limits: the policy model shared by every scope, the [`RateLimiter`] trait the policy gate
//! counts through, and the in-process limiter (GCRA request rates, sliding-window tokens per
//! minute, concurrency leases). A shared limiter for several replicas lives in `odock-store`
//! (`RedisRateLimiter`).

mod admission;
mod limiter;
mod policy;

pub use admission::{
    RateAdmission, RateDenied, RateLimiter, RatePermit, ScopeLimits, DEFAULT_LEASE_TTL,
};
pub use limiter::{Denied, InMemoryRateLimiter, Lease};
pub use policy::{IpRule, Policy, PolicyError, ScopedPolicies, ScopedPolicy};
