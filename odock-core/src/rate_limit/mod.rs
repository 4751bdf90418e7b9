//! Rate limits: the policy model shared by every scope, the admission types, and the in-process
//! limiter (GCRA request rates, sliding-window tokens per minute, concurrency leases). Several
//! replicas share limits through the Redis admission (`odock-redis`).

mod admission;
mod limiter;
mod policy;

pub use admission::{
    Denied, Lease, RateAdmission, RateDenied, RatePermit, ScopeLimits, DEFAULT_LEASE_TTL,
};
pub use limiter::InMemoryRateLimiter;
pub use policy::{IpRule, Policy, PolicyError, ScopedPolicies, ScopedPolicy};
