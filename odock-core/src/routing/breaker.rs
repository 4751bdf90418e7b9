//! Circuit breakers per provider and per provider key.
//!
//! `failure_threshold` consecutive upstream failures (status ≥ 500, 429 excluded, connection
//! failure, timeout) open a circuit: routed requests skip that candidate at once instead of
//! waiting for it to time out. After `open_for` one request is let through as a probe
//! (half-open); its success closes the circuit, its failure opens it again for another `open_for`.
//! A probe that never reports (its client left) is replaced by another after `open_for`.
//!
//! State is per replica, deliberately: a breaker is a local, fast-reacting guess about an
//! upstream's health, and each replica learns it from its own traffic within `failure_threshold`
//! requests. Sharing it through Redis would put a round trip on every attempt for a fact every
//! replica observes by itself anyway; the worst case without sharing is `failure_threshold`
//! extra failed attempts per replica, each of which is retried on the next candidate.
//!
//! Time comes from a [`Clock`], so tests move it by hand.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::ids::{ProviderId, ProviderKeyId};
use crate::model::ResolvedProvider;

/// When circuits open and how long they stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitSettings {
    /// Consecutive failures that open a circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses before a probe is let through.
    pub open_for: Duration,
}

impl CircuitSettings {
    /// Default `failure_threshold`.
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
    /// Default `open_for`.
    pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);

    /// These settings with `provider`'s own over them: `config.circuitFailureThreshold` and
    /// `config.circuitOpenMs` (positive integers; anything else is ignored).
    pub fn for_provider(self, provider: &ResolvedProvider) -> Self {
        let positive = |name: &str| {
            provider
                .config
                .get(name)
                .and_then(serde_json::Value::as_u64)
                .filter(|v| *v > 0)
        };
        Self {
            failure_threshold: positive(CIRCUIT_FAILURE_THRESHOLD)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(self.failure_threshold),
            open_for: positive(CIRCUIT_OPEN_MS).map_or(self.open_for, Duration::from_millis),
        }
    }
}

/// The provider setting overriding [`CircuitSettings::failure_threshold`].
pub const CIRCUIT_FAILURE_THRESHOLD: &str = "circuitFailureThreshold";
/// The provider setting overriding [`CircuitSettings::open_for`], in milliseconds.
pub const CIRCUIT_OPEN_MS: &str = "circuitOpenMs";

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            failure_threshold: Self::DEFAULT_FAILURE_THRESHOLD,
            open_for: Self::DEFAULT_OPEN_FOR,
        }
    }
}

/// What a breaker guards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BreakerKey {
    /// A whole provider: every call to it counts.
    Provider(ProviderId),
    /// One credential, which can fail on its own (revoked, rate-limited) while the provider is
    /// fine.
    ProviderKey(ProviderKeyId),
}

/// Where a circuit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused without trying, until `open_for` has passed.
    Open,
    /// One probe call is let through; its outcome closes or re-opens the circuit.
    HalfOpen,
}

impl CircuitState {
    /// The state as the admin API spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// One breaker's state, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerStatus {
    /// Where the circuit is.
    pub state: CircuitState,
    /// Since when it is in `state`.
    pub since: DateTime<Utc>,
    /// Failures in a row since the last success.
    pub consecutive_failures: u32,
    /// The last failure's description.
    pub last_error: Option<String>,
    /// When the last failure happened.
    pub last_error_at: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Breaker {
    status: BreakerStatus,
    /// A half-open probe was let through and has not reported yet.
    probing: bool,
}

/// Told when a closed circuit opens: what opened, since when, and the error that opened it.
/// Called outside the breaker's lock on the request path, so it must not block (raise an alert,
/// spawn a task).
pub type OnOpen = Arc<dyn Fn(&BreakerKey, DateTime<Utc>, &str) + Send + Sync>;

/// Every breaker of one replica.
pub struct CircuitBreakers {
    settings: CircuitSettings,
    clock: Arc<dyn Clock>,
    breakers: RwLock<HashMap<BreakerKey, Arc<Mutex<Breaker>>>>,
    on_open: Option<OnOpen>,
}

impl std::fmt::Debug for CircuitBreakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakers")
            .field("settings", &self.settings)
            .field("breakers", &self.breakers.read().len())
            .finish()
    }
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        Self::new(CircuitSettings::default(), Arc::new(SystemClock))
    }
}

impl CircuitBreakers {
    /// Breakers with `settings`, timed by `clock`, none open yet.
    pub fn new(settings: CircuitSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            breakers: RwLock::new(HashMap::new()),
            on_open: None,
        }
    }

    /// Calls `observer` each time a closed circuit opens (not when a failed half-open probe
    /// re-opens it: the upstream was already known to be failing).
    pub fn on_open(mut self, observer: OnOpen) -> Self {
        self.on_open = Some(observer);
        self
    }

    /// The server-wide settings (before a provider's own overrides).
    pub fn settings(&self) -> CircuitSettings {
        self.settings
    }

    fn get(&self, key: &BreakerKey) -> Option<Arc<Mutex<Breaker>>> {
        self.breakers.read().get(key).cloned()
    }

    /// Whether a request may go to what `key` guards now. In an open circuit whose time is up,
    /// this lets one probe through (half-open) and refuses the rest until it reports.
    pub fn try_acquire(&self, key: &BreakerKey) -> bool {
        self.try_acquire_with(key, self.settings)
    }

    /// [`try_acquire`](Self::try_acquire) with `settings` (a provider's own) instead of these
    /// breakers' defaults.
    pub fn try_acquire_with(&self, key: &BreakerKey, settings: CircuitSettings) -> bool {
        let Some(breaker) = self.get(key) else {
            return true;
        };
        let open_for =
            chrono::Duration::from_std(settings.open_for).unwrap_or(chrono::Duration::MAX);
        let now = self.clock.now();
        let mut breaker = breaker.lock();
        let elapsed = now - breaker.status.since;
        match breaker.status.state {
            CircuitState::Closed => true,
            CircuitState::Open if elapsed >= open_for => {
                breaker.status.state = CircuitState::HalfOpen;
                breaker.status.since = now;
                breaker.probing = true;
                true
            }
            CircuitState::Open => false,
            CircuitState::HalfOpen if !breaker.probing || elapsed >= open_for => {
                breaker.status.since = now;
                breaker.probing = true;
                true
            }
            CircuitState::HalfOpen => false,
        }
    }

    /// The upstream answered (anything but a failure): the circuit closes.
    pub fn record_success(&self, key: &BreakerKey) {
        let Some(breaker) = self.get(key) else {
            return;
        };
        let now = self.clock.now();
        let mut breaker = breaker.lock();
        breaker.probing = false;
        breaker.status.consecutive_failures = 0;
        if breaker.status.state != CircuitState::Closed {
            breaker.status.state = CircuitState::Closed;
            breaker.status.since = now;
        }
    }

    /// The upstream failed with `error`: counts towards opening (a failed probe reopens).
    pub fn record_failure(&self, key: &BreakerKey, error: &str) {
        self.record_failure_with(key, error, self.settings);
    }

    /// [`record_failure`](Self::record_failure) with `settings` (a provider's own).
    pub fn record_failure_with(&self, key: &BreakerKey, error: &str, settings: CircuitSettings) {
        let now = self.clock.now();
        let breaker = match self.get(key) {
            Some(breaker) => breaker,
            None => self
                .breakers
                .write()
                .entry(key.clone())
                .or_insert_with(|| {
                    Arc::new(Mutex::new(Breaker {
                        status: BreakerStatus {
                            state: CircuitState::Closed,
                            since: now,
                            consecutive_failures: 0,
                            last_error: None,
                            last_error_at: None,
                        },
                        probing: false,
                    }))
                })
                .clone(),
        };
        let mut breaker = breaker.lock();
        breaker.probing = false;
        let status = &mut breaker.status;
        status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        status.last_error = Some(error.to_owned());
        status.last_error_at = Some(now);
        let open = match status.state {
            CircuitState::HalfOpen => true,
            CircuitState::Closed => status.consecutive_failures >= settings.failure_threshold,
            CircuitState::Open => false,
        };
        let newly_failing = open && status.state == CircuitState::Closed;
        if open {
            status.state = CircuitState::Open;
            status.since = now;
        }
        drop(breaker);
        if let (true, Some(observer)) = (newly_failing, &self.on_open) {
            observer(key, now, error);
        }
    }

    /// The state of what `key` guards (closed when it never failed).
    pub fn state(&self, key: &BreakerKey) -> CircuitState {
        self.get(key)
            .map_or(CircuitState::Closed, |b| b.lock().status.state)
    }

    /// Every breaker that has seen a failure, with its status.
    pub fn snapshot(&self) -> Vec<(BreakerKey, BreakerStatus)> {
        let breakers: Vec<_> = self
            .breakers
            .read()
            .iter()
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        breakers
            .into_iter()
            .map(|(k, b)| (k, b.lock().status.clone()))
            .collect()
    }

    /// How many circuits are in `state` (for the circuit-state gauge).
    pub fn count(&self, state: CircuitState) -> u64 {
        self.breakers
            .read()
            .values()
            .filter(|b| b.lock().status.state == state)
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn consecutive_failures_open_and_a_probe_closes() {
        let clock = ManualClock::new(Utc::now());
        let breakers = CircuitBreakers::new(
            CircuitSettings {
                failure_threshold: 3,
                open_for: Duration::from_secs(10),
            },
            Arc::new(clock.clone()),
        );
        let key = BreakerKey::Provider(ProviderId::new("p"));
        assert!(breakers.try_acquire(&key));
        breakers.record_failure(&key, "upstream 500");
        breakers.record_failure(&key, "upstream 500");
        breakers.record_success(&key);
        breakers.record_failure(&key, "upstream 500");
        breakers.record_failure(&key, "upstream 500");
        assert_eq!(
            breakers.state(&key),
            CircuitState::Closed,
            "a success resets the count"
        );
        breakers.record_failure(&key, "upstream 503");
        assert_eq!(breakers.state(&key), CircuitState::Open);
        assert!(!breakers.try_acquire(&key));
        clock.advance(chrono::Duration::seconds(10));
        assert!(breakers.try_acquire(&key), "one probe after open_for");
        assert_eq!(breakers.state(&key), CircuitState::HalfOpen);
        assert!(!breakers.try_acquire(&key), "only one probe at a time");
        breakers.record_failure(&key, "timeout");
        assert_eq!(
            breakers.state(&key),
            CircuitState::Open,
            "a failed probe reopens"
        );
        assert!(!breakers.try_acquire(&key));
        clock.advance(chrono::Duration::seconds(10));
        assert!(breakers.try_acquire(&key));
        breakers.record_success(&key);
        assert_eq!(breakers.state(&key), CircuitState::Closed);
        let (_, status) = breakers.snapshot().pop().unwrap();
        assert_eq!(status.last_error.as_deref(), Some("timeout"));
        assert_eq!(status.consecutive_failures, 0);
    }
}
