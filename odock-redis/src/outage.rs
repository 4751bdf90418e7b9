//! What the gateway does while Redis is unreachable (the readiness check that reports it is
//! `RedisHealth`, beside the connection).
//!
//! - **Budgets and quotas** fail closed by default: admission answers 503 `budget_unavailable` /
//!   `quota_unavailable`, because admitting without a shared ledger could overspend. With
//!   [`OutagePolicy::FailOpen`] the request is admitted unledgered (logged) and its actual usage is
//!   added to the windows best-effort when it settles.
//! - **Rate limits** always fail open with a warning: refusing all traffic because a counter is
//!   unreachable would turn a Redis outage into a full outage.
//! - **Recovery:** the connection manager reconnects by itself; a window whose counters were lost
//!   is rebuilt from the database before the next admission (see `ledger.rs`).

use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};

/// Budget/quota admission while Redis is unreachable (`fail-closed` or `fail-open` in config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum OutagePolicy {
    /// Refuse governed requests (503) until Redis is back.
    #[default]
    FailClosed,
    /// Admit them unledgered, log it, and add their usage best-effort when they settle.
    FailOpen,
}

impl FromStr for OutagePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fail-closed" | "fail_closed" | "closed" => Ok(Self::FailClosed),
            "fail-open" | "fail_open" | "open" => Ok(Self::FailOpen),
            other => Err(format!(
                "unknown Redis outage policy `{other}` (expected `fail-closed` or `fail-open`)"
            )),
        }
    }
}

impl TryFrom<String> for OutagePolicy {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl std::fmt::Display for OutagePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::FailClosed => "fail-closed",
            Self::FailOpen => "fail-open",
        })
    }
}

/// Logs an outage warning at most once per interval, so a Redis outage under load does not flood
/// the logs with one line per request.
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    last_ms: AtomicI64,
}

impl OutageLog {
    const EVERY_MS: i64 = 5_000;

    /// Whether this occurrence should be logged.
    pub(crate) fn should_log(&self) -> bool {
        let now = odock_store::db::now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        now - last >= Self::EVERY_MS
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_policy_parses_its_spellings_and_defaults_to_fail_closed() {
        assert_eq!(OutagePolicy::default(), OutagePolicy::FailClosed);
        assert_eq!("fail-open".parse(), Ok(OutagePolicy::FailOpen));
        assert_eq!("CLOSED".parse(), Ok(OutagePolicy::FailClosed));
        assert!("maybe".parse::<OutagePolicy>().is_err());
        assert_eq!(OutagePolicy::FailOpen.to_string(), "fail-open");
    }

    #[test]
    fn outage_warnings_are_throttled() {
        let log = OutageLog::default();
        assert!(log.should_log());
        assert!(!log.should_log());
    }
}
