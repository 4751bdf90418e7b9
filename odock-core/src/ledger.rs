//! `BudgetLedger` and `QuotaLedger`: admission by reservation.
//!
//! A request is admitted iff, in every matching window, `used + reserved + estimate ≤ limit`; the
//! reservation is taken in all windows atomically (all or none). Settlement moves the actual amount
//! into `used` and releases the reservation; both are idempotent per request id. The layers that use
//! these traits come with the budgets issue; the contracts are fixed here so stores can implement them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{BudgetError, QuotaError};
use crate::ids::{RequestId, ReservationId};
use crate::principal::Principal;

/// A hold taken by a ledger for one request, across every matching window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: ReservationId,
    pub request_id: RequestId,
    /// The windows held (opaque to callers; ids the ledger understands).
    pub windows: Vec<String>,
    /// When the reservation lapses unless refreshed (a crashed replica's holds expire).
    pub expires_at: DateTime<Utc>,
}

/// Why a ledger operation failed after admission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger: {0}")]
pub struct LedgerError(pub String);

#[async_trait]
pub trait BudgetLedger: Send + Sync + 'static {
    /// Reserves `estimate_nanos` in every active budget window matching the principal.
    async fn reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        estimate_nanos: i64,
    ) -> Result<Reservation, BudgetError>;

    /// Moves `actual_nanos` into `used` and releases the hold. Idempotent per request id.
    async fn settle(&self, reservation: &Reservation, actual_nanos: i64)
        -> Result<(), LedgerError>;

    /// Releases the hold without using anything.
    async fn release(&self, reservation: &Reservation) -> Result<(), LedgerError>;

    /// Extends the lease of a live reservation (called periodically while its request runs), so
    /// only the holds of requests whose replica died expire.
    async fn refresh(&self, reservation: &Reservation) -> Result<(), LedgerError>;

    /// Releases every reservation whose lease has expired; returns how many were released.
    async fn sweep_expired(&self) -> Result<u64, LedgerError>;
}

/// What a request is expected to consume, per quota metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaDemand {
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_nanos: i64,
}

/// What a request actually consumed, per quota metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaActuals {
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_nanos: i64,
    pub errors: u64,
    pub latency_ms: u64,
}

#[async_trait]
pub trait QuotaLedger: Send + Sync + 'static {
    async fn reserve(
        &self,
        principal: &Principal,
        request_id: &RequestId,
        demand: QuotaDemand,
    ) -> Result<Reservation, QuotaError>;

    async fn settle(
        &self,
        reservation: &Reservation,
        actual: QuotaActuals,
    ) -> Result<(), LedgerError>;

    async fn release(&self, reservation: &Reservation) -> Result<(), LedgerError>;

    /// See [`BudgetLedger::refresh`].
    async fn refresh(&self, reservation: &Reservation) -> Result<(), LedgerError>;

    /// See [`BudgetLedger::sweep_expired`].
    async fn sweep_expired(&self) -> Result<u64, LedgerError>;
}

/// A budget window's spend crossed one of the budget's warning thresholds (percent of its amount)
/// when a request was settled. Thresholds warn; they never refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdCrossing {
    pub organisation_id: String,
    pub budget_id: String,
    pub budget_name: String,
    /// The percentage crossed (50, 80, 90 or 100).
    pub threshold: u32,
    pub used_nanos: i64,
    pub amount_nanos: i64,
    pub window_start: DateTime<Utc>,
}

/// Told about every threshold crossing, once per window and threshold (the settlement that moved
/// spend across it). Implementations must be cheap and must not block (count, log, enqueue).
pub trait BudgetAlerts: Send + Sync + 'static {
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
