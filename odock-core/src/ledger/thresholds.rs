//! Warning thresholds: spend crossing 50/80/90/100 % of a budget (the budget's own thresholds), or
//! use crossing [`QUOTA_THRESHOLDS`] of a quota, is reported once per window and threshold, by the
//! settlement that moved it across. Thresholds warn; they never refuse.

use chrono::{DateTime, Utc};

use crate::domain::QuotaMetric;
use crate::ledger::rules::{LedgerRule, RuleKind};

/// The thresholds (percent of the limit) at which a quota window's use is reported: quotas carry
/// no thresholds of their own.
pub const QUOTA_THRESHOLDS: [u32; 2] = [80, 100];

/// The thresholds reported for `rule`: a budget's own, or [`QUOTA_THRESHOLDS`].
pub fn thresholds_of(rule: &LedgerRule) -> &[u32] {
    match rule.kind {
        RuleKind::Budget => &rule.thresholds,
        RuleKind::Quota(_) => &QUOTA_THRESHOLDS,
    }
}

/// A budget window's spend crossed one of the budget's warning thresholds (percent of its amount),
/// or a quota window's use one of [`QUOTA_THRESHOLDS`], when a request was settled. Thresholds
/// warn; they never refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdCrossing {
    /// The organisation the budget belongs to.
    pub organisation_id: String,
    /// The budget's id (or the quota's, when `quota_metric` is set).
    pub budget_id: String,
    /// The budget's (or quota's) name, for the alert's text.
    pub budget_name: String,
    /// `None` for a budget; the quota's metric for a quota (then `used_nanos` / `amount_nanos` are
    /// in the metric's unit).
    pub quota_metric: Option<QuotaMetric>,
    /// The percentage crossed (50, 80, 90 or 100).
    pub threshold: u32,
    /// The window's total after the settlement that crossed.
    pub used_nanos: i64,
    /// The budget's (or quota's) limit.
    pub amount_nanos: i64,
    /// The start of the window the crossing happened in.
    pub window_start: DateTime<Utc>,
}

/// Told about every threshold crossing, once per window and threshold (the settlement that moved
/// spend across it). Implementations must be cheap and must not block (count, log, enqueue).
pub trait BudgetAlerts: Send + Sync + 'static {
    /// Called once per window and threshold crossed.
    fn threshold_crossed(&self, crossing: &ThresholdCrossing);
}

/// The default [`BudgetAlerts`]: one structured warning per crossing.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogBudgetAlerts;

impl BudgetAlerts for LogBudgetAlerts {
    fn threshold_crossed(&self, c: &ThresholdCrossing) {
        tracing::warn!(
            organisation_id = %c.organisation_id,
            budget_id = %c.budget_id,
            budget = %c.budget_name,
            quota_metric = c.quota_metric.map(|m| m.as_str()),
            threshold = c.threshold,
            used_nanos = c.used_nanos,
            amount_nanos = c.amount_nanos,
            window_start = %c.window_start,
            "budget threshold crossed"
        );
    }
}

/// The thresholds (percent of `amount`) that spend moving from `before` to `after` crossed:
/// those with `before < t% of amount ≤ after`. Exact integer arithmetic.
pub fn crossed_thresholds(before: i64, after: i64, amount: i64, thresholds: &[u32]) -> Vec<u32> {
    if amount <= 0 || after <= before {
        return Vec::new();
    }
    let mark = |t: u32| i128::from(t) * i128::from(amount);
    let (before, after) = (i128::from(before) * 100, i128::from(after) * 100);
    thresholds
        .iter()
        .copied()
        .filter(|&t| before < mark(t) && mark(t) <= after)
        .collect()
}

#[cfg(test)]
mod threshold_tests {
    use super::crossed_thresholds;

    #[test]
    fn crossings_are_exact_and_counted_once() {
        let all = [50, 80, 90, 100];
        assert_eq!(crossed_thresholds(0, 49, 100, &all), Vec::<u32>::new());
        assert_eq!(crossed_thresholds(0, 50, 100, &all), vec![50]);
        assert_eq!(crossed_thresholds(50, 51, 100, &all), Vec::<u32>::new());
        assert_eq!(crossed_thresholds(10, 95, 100, &all), vec![50, 80, 90]);
        assert_eq!(crossed_thresholds(95, 130, 100, &all), vec![100]);
        assert_eq!(crossed_thresholds(0, 1_000, 3, &[100]), vec![100]);
        // 80% of 7 nanos is 5.6: 5 is below it, 6 crosses it.
        assert_eq!(crossed_thresholds(0, 5, 7, &[80]), Vec::<u32>::new());
        assert_eq!(crossed_thresholds(5, 6, 7, &[80]), vec![80]);
        assert_eq!(crossed_thresholds(0, 10, 0, &all), Vec::<u32>::new());
        assert_eq!(
            crossed_thresholds(i64::MAX - 1, i64::MAX, i64::MAX, &[100]),
            vec![100]
        );
    }
}
