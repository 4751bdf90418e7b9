//! In-process rate limiting: GCRA for request rates (RPS with burst, RPM), a sliding window of
//! per-second buckets for tokens per minute, and leased slots for concurrency. Keys are
//! `"<scope>:<id>"`; every decision is taken under one lock, so concurrent requests can never
//! overshoot a limit. (Several replicas share limits through Redis in production mode.)

use foldhash::{HashMap, HashMapExt};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::admission::{Denied, Lease, RateAdmission, RateDenied, RatePermit, ScopeLimits};

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

/// Rate limits, token windows and concurrency slots for one process (no sharing between replicas).
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
    /// An empty limiter.
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
        let mut state = self.state.lock();
        match state.rate_decision(key, limit, rate, period, burst, now)? {
            Some((tat, remaining)) => {
                state.rates.insert((key.to_owned(), limit), Gcra { tat });
                Ok(remaining)
            }
            None => Ok(u64::MAX),
        }
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
        let second = self.second(now);
        let mut state = self.state.lock();
        let remaining = state.tokens_decision(key, tokens, limit, second)?;
        state.add_tokens(key, second, tokens);
        Ok(remaining)
    }

    /// Corrects a window by `actual - estimated` once the real usage is known.
    pub fn adjust_tokens(&self, key: &str, estimated: u64, actual: u64, now: Instant) {
        let second = self.second(now);
        self.state
            .lock()
            .adjust_tokens(key, estimated, actual, second);
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
        state.lease_decision(key, max, now)?;
        Ok(Some(state.hold_lease(key, now + ttl)))
    }

    /// Gives a concurrency slot back.
    pub fn release(&self, lease: &Lease) {
        self.state.lock().release(lease);
    }

    fn second(&self, now: Instant) -> u64 {
        now.duration_since(self.epoch).as_secs()
    }

    /// Admits one request estimated at `tokens` against every scope in `scopes` at `now`: every decision is taken first, under one lock, and applied
    /// only when all of them admit.
    pub fn admit_at(
        &self,
        scopes: &[ScopeLimits],
        tokens: u64,
        now: Instant,
    ) -> Result<RateAdmission, RateDenied> {
        let second = self.second(now);
        let mut state = self.state.lock();
        let mut admission = RateAdmission::default();
        let mut new_tats = Vec::new();
        for limits in scopes {
            let deny = |denied| RateDenied {
                scope: limits.scope,
                denied,
            };
            for (limit, rate, period, burst) in limits.rate_checks() {
                if let Some((tat, remaining)) = state
                    .rate_decision(&limits.key, limit, rate, period, burst, now)
                    .map_err(deny)?
                {
                    admission.note_requests(u64::from(rate), remaining);
                    new_tats.push((limits.key.as_str(), limit, tat));
                }
            }
            if limits.tokens_per_minute > 0 {
                let remaining = state
                    .tokens_decision(&limits.key, tokens, limits.tokens_per_minute, second)
                    .map_err(deny)?;
                admission.note_tokens(limits.tokens_per_minute, remaining);
            }
            if limits.max_concurrent > 0 {
                state
                    .lease_decision(&limits.key, limits.max_concurrent, now)
                    .map_err(deny)?;
            }
        }
        for (key, limit, tat) in new_tats {
            state.rates.insert((key.to_owned(), limit), Gcra { tat });
        }
        for limits in scopes {
            if limits.tokens_per_minute > 0 {
                state.add_tokens(&limits.key, second, tokens);
                admission.permit.token_keys.push(limits.key.clone());
            }
            if limits.max_concurrent > 0 {
                let lease = state.hold_lease(&limits.key, now + limits.lease_ttl);
                admission.permit.leases.push(lease);
            }
        }
        admission.permit.estimated_tokens = tokens;
        Ok(admission)
    }

    /// Gives back what `permit` holds once its request ended: releases the leases and corrects the
    /// token windows from the estimate to `actual_tokens`.
    pub fn finish_at(&self, permit: &RatePermit, actual_tokens: u64, now: Instant) {
        let second = self.second(now);
        let mut state = self.state.lock();
        for lease in &permit.leases {
            state.release(lease);
        }
        for key in &permit.token_keys {
            state.adjust_tokens(key, permit.estimated_tokens, actual_tokens, second);
        }
    }
}

impl State {
    /// GCRA: the new theoretical arrival time and the requests still admissible, `None` when the
    /// rate is unlimited.
    fn rate_decision(
        &self,
        key: &str,
        limit: &'static str,
        rate: u32,
        period: Duration,
        burst: u32,
        now: Instant,
    ) -> Result<Option<(Instant, u64)>, Denied> {
        if rate == 0 {
            return Ok(None);
        }
        let interval = period / rate;
        let tolerance = interval * burst.max(1).saturating_sub(1);
        let tat = self
            .rates
            .get(&(key.to_owned(), limit))
            .map_or(now, |gcra| gcra.tat.max(now));
        // Admit when the request is no more than `tolerance` ahead of schedule.
        if tat > now + tolerance {
            return Err(Denied {
                limit,
                retry_after: tat - tolerance - now,
            });
        }
        let next = tat + interval;
        let remaining = if now + tolerance >= next {
            let headroom = (now + tolerance).saturating_duration_since(next);
            headroom.as_nanos() / interval.as_nanos().max(1) + 1
        } else {
            0
        };
        Ok(Some((next, u64::try_from(remaining).unwrap_or(u64::MAX))))
    }

    /// Whether `tokens` more fit in the window's last minute; the tokens that would be left.
    fn tokens_decision(
        &mut self,
        key: &str,
        tokens: u64,
        limit: u64,
        second: u64,
    ) -> Result<u64, Denied> {
        let Some(window) = self.tokens.get_mut(key) else {
            return if tokens > limit {
                // More than a whole minute's worth: no wait makes it fit.
                Err(Denied {
                    limit: "tokens_per_minute",
                    retry_after: Duration::from_secs(60),
                })
            } else {
                Ok(limit - tokens)
            };
        };
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
        Ok(limit - used - tokens)
    }

    fn add_tokens(&mut self, key: &str, second: u64, tokens: u64) {
        let window = self
            .tokens
            .entry(key.to_owned())
            .or_insert_with(|| TokenWindow {
                buckets: Vec::new(),
            });
        add_tokens(window, second, tokens);
    }

    fn adjust_tokens(&mut self, key: &str, estimated: u64, actual: u64, second: u64) {
        let Some(window) = self.tokens.get_mut(key) else {
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

    /// Whether one more slot fits under `max` (expired leases are dropped first).
    fn lease_decision(&mut self, key: &str, max: u32, now: Instant) -> Result<(), Denied> {
        let Some(leases) = self.leases.get_mut(key) else {
            return Ok(());
        };
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
        Ok(())
    }

    fn hold_lease(&mut self, key: &str, expiry: Instant) -> Lease {
        self.next_lease += 1;
        let id = self.next_lease;
        self.leases
            .entry(key.to_owned())
            .or_insert_with(|| Leases {
                held: HashMap::new(),
            })
            .held
            .insert(id, expiry);
        Lease {
            key: key.to_owned(),
            id,
        }
    }

    fn release(&mut self, lease: &Lease) {
        if let Some(leases) = self.leases.get_mut(&lease.key) {
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

    #[test]
    fn admission_is_all_or_nothing_across_scopes() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        let org = scope("organisation", |l| {
            l.requests_per_minute = 10;
            l.tokens_per_minute = 1_000;
            l.max_concurrent = 5;
        });
        let key = scope("api_key", |l| l.requests_per_minute = 1);
        let both = [org.clone(), key];
        let first = limiter.admit_at(&both, 100, t0).unwrap();
        assert_eq!(first.requests, Some((1, 0)));
        assert_eq!(first.tokens, Some((1_000, 900)));
        assert_eq!(first.permit.leases.len(), 1);
        assert_eq!(first.permit.token_keys, vec!["organisation:1".to_owned()]);
        // The key scope refuses: the organisation's request slot, tokens and lease stay untouched.
        let denied = limiter.admit_at(&both, 100, t0).unwrap_err();
        assert_eq!(denied.scope, "api_key");
        assert_eq!(denied.denied.limit, "requests_per_minute");
        let org_only = limiter
            .admit_at(std::slice::from_ref(&org), 100, t0)
            .unwrap();
        assert_eq!(org_only.requests, Some((10, 8)));
        assert_eq!(org_only.tokens, Some((1_000, 800)));
        // Finishing gives the lease back and reconciles 100 estimated tokens to 40 actual.
        limiter.finish_at(&org_only.permit, 40, t0);
        let third = limiter.admit_at(&[org], 0, t0).unwrap();
        assert_eq!(third.tokens, Some((1_000, 860)));
        assert_eq!(limiter.state.lock().leases["organisation:1"].held.len(), 2);
    }
}
