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
