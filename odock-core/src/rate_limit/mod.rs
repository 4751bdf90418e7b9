//! Rate limits: the policy model shared by every scope, and the in-process limiter (GCRA request
//! rates, sliding-window tokens per minute, concurrency leases). The layer that applies them in the
//! request path comes with the budgets/quotas work.

mod limiter;
mod policy;

pub use limiter::{Denied, InMemoryRateLimiter, Lease};
pub use policy::{IpRule, Policy, PolicyError, ScopedPolicies, ScopedPolicy};
