//! In-process rate limiting: GCRA for request rates (RPS with burst, RPM), a sliding window of
//! per-second buckets for tokens per minute, and leased slots for concurrency. Keys are
//! `"<scope>:<id>"`; every decision is taken under one lock, so concurrent requests can never
//! overshoot a limit. (Several replicas share limits through Redis in production mode.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A rate-limit denial: which limit, and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub limit: &'static str,
    pub retry_after: Duration,
}

/// GCRA state: the theoretical arrival time of the next request.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    tat: Instant,
}

/// Tokens per second over the last 60 seconds.
#[derive(Debug)]
struct TokenWindow {
    /// (second index since `epoch`, tokens) — at most 60 entries, oldest first.
    buckets: Vec<(u64, u64)>,
}

#[derive(Debug)]
struct Leases {
    /// lease id → expiry
    held: HashMap<u64, Instant>,
}

#[derive(Debug, Default)]
struct State {
    rates: HashMap<(String, &'static str), Gcra>,
    tokens: HashMap<String, TokenWindow>,
    leases: HashMap<String, Leases>,
    next_lease: u64,
}

/// A held concurrency slot; give it back with [`InMemoryRateLimiter::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    pub id: u64,
}

#[derive(Debug)]
pub struct InMemoryRateLimiter {
    epoch: Instant,
    state: Mutex<State>,
}

impl Default for InMemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryRateLimiter {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// GCRA admission of one request against `rate` requests per `period`, allowing `burst`
    /// requests at once. `limit` names it in denials (`requests_per_second`, …). Returns how many
    /// more requests would be admitted right now.
    pub fn check_rate(
        &self,
        key: &str,
        limit: &'static str,
        rate: u32,
        period: Duration,
        burst: u32,
        now: Instant,
    ) -> Result<u64, Denied> {
        if rate == 0 {
            return Ok(u64::MAX);
        }
        let interval = period / rate;
        let tolerance = interval * burst.max(1).saturating_sub(1);
        let mut state = self.state.lock();
        let entry = state
            .rates
            .entry((key.to_owned(), limit))
            .or_insert(Gcra { tat: now });
        let tat = entry.tat.max(now);
        // Admit when the request is no more than `tolerance` ahead of schedule.
        if tat > now + tolerance {
            return Err(Denied {
                limit,
                retry_after: tat - tolerance - now,
            });
        }
        entry.tat = tat + interval;
        let headroom = (now + tolerance).saturating_duration_since(entry.tat);
        let remaining = if now + tolerance >= entry.tat {
            headroom.as_nanos() / interval.as_nanos().max(1) + 1
        } else {
            0
        };
        Ok(u64::try_from(remaining).unwrap_or(u64::MAX))
    }

    /// Sliding-window admission of `tokens` against `limit` tokens per minute; the tokens are
    /// counted at once (reconcile later with [`Self::adjust_tokens`]). Returns the tokens left.
    pub fn check_tokens(
        &self,
        key: &str,
        tokens: u64,
        limit: u64,
        now: Instant,
    ) -> Result<u64, Denied> {
        if limit == 0 {
            return Ok(u64::MAX);
        }
        let second = now.duration_since(self.epoch).as_secs();
        let mut state = self.state.lock();
        let window = state
            .tokens
            .entry(key.to_owned())
            .or_insert_with(|| TokenWindow {
                buckets: Vec::new(),
            });
        window.buckets.retain(|(s, _)| s + 60 > second);
        let used: u64 = window.buckets.iter().map(|(_, t)| t).sum();
        if used.saturating_add(tokens) > limit {
            // Capacity returns when the oldest bucket leaves the window.
            let oldest = window.buckets.first().map_or(second, |(s, _)| *s);
            return Err(Denied {
                limit: "tokens_per_minute",
                retry_after: Duration::from_secs((oldest + 60).saturating_sub(second).max(1)),
            });
        }
        add_tokens(window, second, tokens);
        Ok(limit - used - tokens)
    }

    /// Corrects a window by `actual - estimated` once the real usage is known.
    pub fn adjust_tokens(&self, key: &str, estimated: u64, actual: u64, now: Instant) {
        let second = now.duration_since(self.epoch).as_secs();
        let mut state = self.state.lock();
        let Some(window) = state.tokens.get_mut(key) else {
            return;
        };
        if actual >= estimated {
            add_tokens(window, second, actual - estimated);
        } else {
            // Take the excess back from the newest buckets first.
            let mut excess = estimated - actual;
            for (_, tokens) in window.buckets.iter_mut().rev() {
                let taken = excess.min(*tokens);
                *tokens -= taken;
                excess -= taken;
                if excess == 0 {
                    break;
                }
            }
        }
    }

    /// Takes a concurrency slot if fewer than `max` unexpired leases are held.
    pub fn acquire(
        &self,
        key: &str,
        max: u32,
        ttl: Duration,
        now: Instant,
    ) -> Result<Option<Lease>, Denied> {
        if max == 0 {
            return Ok(None);
        }
        let mut state = self.state.lock();
        state.next_lease += 1;
        let id = state.next_lease;
        let leases = state
            .leases
            .entry(key.to_owned())
            .or_insert_with(|| Leases {
                held: HashMap::new(),
            });
        leases.held.retain(|_, expiry| *expiry > now);
        if leases.held.len() >= max as usize {
            let soonest = leases.held.values().min().copied().unwrap_or(now);
            return Err(Denied {
                limit: "max_concurrent_requests",
                retry_after: soonest
                    .saturating_duration_since(now)
                    .max(Duration::from_secs(1)),
            });
        }
        leases.held.insert(id, now + ttl);
        Ok(Some(Lease {
            key: key.to_owned(),
            id,
        }))
    }

    pub fn release(&self, lease: &Lease) {
        if let Some(leases) = self.state.lock().leases.get_mut(&lease.key) {
            leases.held.remove(&lease.id);
        }
    }
}

fn add_tokens(window: &mut TokenWindow, second: u64, tokens: u64) {
    match window.buckets.last_mut() {
        Some((s, t)) if *s == second => *t = t.saturating_add(tokens),
        _ => window.buckets.push((second, tokens)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_admits_the_rate_plus_burst_and_says_when_to_retry() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        // 10 per second with a burst of 5: five at once, then one every 100 ms.
        for _ in 0..5 {
            assert!(limiter
                .check_rate("k", "requests_per_second", 10, second, 5, t0)
                .is_ok());
        }
        let denied = limiter
            .check_rate("k", "requests_per_second", 10, second, 5, t0)
            .unwrap_err();
        assert_eq!(denied.limit, "requests_per_second");
        assert_eq!(denied.retry_after, Duration::from_millis(100));
        assert!(limiter
            .check_rate(
                "k",
                "requests_per_second",
                10,
                second,
                5,
                t0 + Duration::from_millis(100)
            )
            .is_ok());
        // Other keys are independent.
        assert!(limiter
            .check_rate("other", "requests_per_second", 10, second, 5, t0)
            .is_ok());
    }

    #[test]
    fn rpm_without_burst_spaces_requests_evenly() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        assert!(limiter
            .check_rate("k", "requests_per_minute", 2, minute, 0, t0)
            .is_ok());
        let denied = limiter
            .check_rate("k", "requests_per_minute", 2, minute, 0, t0)
            .unwrap_err();
        assert_eq!(denied.retry_after, Duration::from_secs(30));
        assert!(limiter
            .check_rate(
                "k",
                "requests_per_minute",
                2,
                minute,
                0,
                t0 + Duration::from_secs(30)
            )
            .is_ok());
    }

    #[test]
    fn tokens_per_minute_slide_and_reconcile() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = limiter.epoch;
        assert!(limiter.check_tokens("k", 600, 1000, t0).is_ok());
        assert!(limiter
            .check_tokens("k", 500, 1000, t0 + Duration::from_secs(10))
            .is_err());
        // The request used only 100 of its 600: 500 come back.
        limiter.adjust_tokens("k", 600, 100, t0 + Duration::from_secs(10));
        assert!(limiter
            .check_tokens("k", 500, 1000, t0 + Duration::from_secs(10))
            .is_ok());
        assert!(limiter
            .check_tokens("k", 500, 1000, t0 + Duration::from_secs(20))
            .is_err());
        // A minute after the first bucket it has left the window.
        assert!(limiter
            .check_tokens("k", 100, 1000, t0 + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn concurrency_leases_cap_in_flight_requests_and_expire() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(30);
        let a = limiter.acquire("k", 2, ttl, t0).unwrap().unwrap();
        let _b = limiter.acquire("k", 2, ttl, t0).unwrap().unwrap();
        assert_eq!(
            limiter.acquire("k", 2, ttl, t0).unwrap_err().limit,
            "max_concurrent_requests"
        );
        limiter.release(&a);
        assert!(limiter.acquire("k", 2, ttl, t0).unwrap().is_some());
        // A crashed request's lease lapses after its TTL.
        assert!(limiter
            .acquire("k", 2, ttl, t0 + ttl + Duration::from_millis(1))
            .unwrap()
            .is_some());
        assert_eq!(limiter.acquire("k", 0, ttl, t0), Ok(None));
    }
}
