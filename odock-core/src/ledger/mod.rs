//! Budgets and quotas: admission by reservation.
//!
//! A request is admitted iff, in every window of every matching active rule,
//! `used + reserved + estimate ≤ limit` (ERRORS and LATENCY_MS quotas, counted after the fact:
//! `used < limit`); the hold is taken in all windows or in none. When the request ends its hold is
//! settled: the actual amount moves into `used` (an overshoot is recorded, never clipped) and the
//! reservation is released.
//!
//! - [`rules`]: which budgets and quotas apply to a principal ([`LedgerRule`]) and where they come
//!   from ([`RuleSource`]).
//! - [`cache`]: [`RuleCache`], each organisation's rules loaded once, reloaded on invalidation.
//! - [`memory`]: [`InMemoryLedger`], the authoritative engine of one process: counters in memory,
//!   admission in microseconds, durability write-behind through [`WindowCharge`]s that the usage
//!   writer stores with the usage records.
//! - [`thresholds`]: warning thresholds reported once per window.
//!
//! Shared runtime state for several replicas (Redis) implements the same semantics elsewhere
//! (`odock-redis`), over the same rules and metric arithmetic.

pub mod cache;
pub mod memory;
pub mod rules;
pub mod thresholds;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::QuotaMetric;
use crate::ids::OrganisationId;

pub use cache::{OrgRules, RuleCache, DEFAULT_REFRESH_AFTER};
pub use memory::{refusal, InMemoryLedger, LedgerHold, WindowTotals};
pub use rules::{
    LedgerRule, RuleKind, RuleOwner, RuleSet, RuleSource, StaticRuleSource, StoredWindow,
};
pub use thresholds::{
    crossed_thresholds, thresholds_of, BudgetAlerts, LogBudgetAlerts, ThresholdCrossing,
    QUOTA_THRESHOLDS,
};

/// What a request is expected to consume (admitted against every matching window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Input tokens expected (the prompt's estimate).
    pub tokens_in: u64,
    /// Output tokens expected (the request's output cap, else the model's, else a default).
    pub tokens_out: u64,
    /// Expected cost in nanos USD, held against budgets until settlement.
    pub cost_nanos: i64,
}

/// What a request actually consumed, as its usage record says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Actuals {
    /// Input tokens used.
    pub tokens_in: u64,
    /// Output tokens used.
    pub tokens_out: u64,
    /// The request's cost in nanos USD.
    pub cost_nanos: i64,
    /// 1 when the request failed (status ≥ 400 after admission, or an upstream failure).
    pub errors: u64,
    /// The request's latency, for `LATENCY_MS` quotas.
    pub latency_ms: u64,
}

/// Why a ledger could not decide (its backing store is unreachable, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger: {0}")]
pub struct LedgerError(pub String);

/// Which book a window belongs to: budgets (money) or quotas (one metric each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// Budgets: windows count money (nanos USD).
    Budget,
    /// Quotas: windows count one usage metric.
    Quota,
}

impl LedgerKind {
    /// The kind as stored and shown (`budget`, `quota`).
    pub const fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Budget => "budget",
            LedgerKind::Quota => "quota",
        }
    }
}

/// A settled amount that must reach the database: add `used` to the window `[start, end)` of rule
/// `rule_id`. The usage writer stores charges in the same transaction as the usage record that
/// caused them, and only when that record is newly stored, so the durable window totals always
/// equal what the stored records account for (and a replayed record is never counted twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowCharge {
    /// Budget or quota.
    pub kind: LedgerKind,
    /// The rule whose window was charged.
    pub rule_id: Arc<str>,
    /// The quota's metric; `None` for budgets.
    pub metric: Option<QuotaMetric>,
    /// The window's start (inclusive).
    pub start: DateTime<Utc>,
    /// The window's end (exclusive).
    pub end: DateTime<Utc>,
    /// The amount to add to the window, in the rule's unit.
    pub used: i64,
}

/// Window totals held outside the database — by this process's [`InMemoryLedger`], or in Redis —
/// which are ahead of the stored ones (and hold what the database never sees: reservations). The
/// admin API shows these for the windows they know.
#[async_trait]
pub trait LiveWindows: Send + Sync + 'static {
    /// The live totals of `rule_id`'s window starting at `start`, or `None` when this source does
    /// not hold it.
    async fn live_totals(
        &self,
        organisation: &OrganisationId,
        kind: LedgerKind,
        rule_id: &str,
        start: DateTime<Utc>,
    ) -> Option<WindowTotals>;
}

/// No live totals anywhere: the stored ones are authoritative.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoredWindowsOnly;

#[async_trait]
impl LiveWindows for StoredWindowsOnly {
    async fn live_totals(
        &self,
        _organisation: &OrganisationId,
        _kind: LedgerKind,
        _rule_id: &str,
        _start: DateTime<Utc>,
    ) -> Option<WindowTotals> {
        None
    }
}

/// What `kind` holds for a request estimated at `estimate`.
pub fn hold_amount(kind: RuleKind, estimate: &Estimate) -> i64 {
    match kind {
        RuleKind::Budget => estimate.cost_nanos.max(0),
        RuleKind::Quota(metric) => match metric {
            QuotaMetric::Requests => 1,
            QuotaMetric::Tokens => {
                saturating_i64(estimate.tokens_in.saturating_add(estimate.tokens_out))
            }
            QuotaMetric::TokensIn => saturating_i64(estimate.tokens_in),
            QuotaMetric::TokensOut => saturating_i64(estimate.tokens_out),
            QuotaMetric::Cost => estimate.cost_nanos.max(0),
            // Counted after the fact: nothing is held.
            QuotaMetric::Errors | QuotaMetric::LatencyMs => 0,
        },
    }
}

/// What `kind` counts when a request with `actual` usage settles.
pub fn used_amount(kind: RuleKind, actual: &Actuals) -> i64 {
    match kind {
        RuleKind::Budget => actual.cost_nanos.max(0),
        RuleKind::Quota(metric) => match metric {
            QuotaMetric::Requests => 1,
            QuotaMetric::Tokens => {
                saturating_i64(actual.tokens_in.saturating_add(actual.tokens_out))
            }
            QuotaMetric::TokensIn => saturating_i64(actual.tokens_in),
            QuotaMetric::TokensOut => saturating_i64(actual.tokens_out),
            QuotaMetric::Cost => actual.cost_nanos.max(0),
            QuotaMetric::Errors => saturating_i64(actual.errors),
            QuotaMetric::LatencyMs => saturating_i64(actual.latency_ms),
        },
    }
}

/// Whether a window with `used` and `reserved` admits `amount` more under `limit`.
pub fn admits(kind: RuleKind, used: i64, reserved: i64, amount: i64, limit: i64) -> bool {
    if kind.counted_after_the_fact() {
        used < limit
    } else {
        used.saturating_add(reserved).saturating_add(amount) <= limit
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_metric_holds_and_counts_its_part() {
        let estimate = Estimate {
            tokens_in: 10,
            tokens_out: 20,
            cost_nanos: 300,
        };
        let actual = Actuals {
            tokens_in: 7,
            tokens_out: 5,
            cost_nanos: 120,
            errors: 1,
            latency_ms: 42,
        };
        let cases = [
            (RuleKind::Budget, 300, 120),
            (RuleKind::Quota(QuotaMetric::Requests), 1, 1),
            (RuleKind::Quota(QuotaMetric::Tokens), 30, 12),
            (RuleKind::Quota(QuotaMetric::TokensIn), 10, 7),
            (RuleKind::Quota(QuotaMetric::TokensOut), 20, 5),
            (RuleKind::Quota(QuotaMetric::Cost), 300, 120),
            (RuleKind::Quota(QuotaMetric::Errors), 0, 1),
            (RuleKind::Quota(QuotaMetric::LatencyMs), 0, 42),
        ];
        for (kind, held, used) in cases {
            assert_eq!(hold_amount(kind, &estimate), held, "{kind:?} holds");
            assert_eq!(used_amount(kind, &actual), used, "{kind:?} counts");
        }
    }

    #[test]
    fn admission_is_inclusive_and_after_the_fact_metrics_admit_below_the_limit() {
        let budget = RuleKind::Budget;
        assert!(admits(budget, 60, 30, 10, 100));
        assert!(!admits(budget, 60, 30, 11, 100));
        let errors = RuleKind::Quota(QuotaMetric::Errors);
        assert!(admits(errors, 99, 50, 0, 100));
        assert!(!admits(errors, 100, 0, 0, 100));
        // No overflow at the extremes.
        assert!(!admits(budget, i64::MAX, i64::MAX, i64::MAX, i64::MAX - 1));
    }
}
