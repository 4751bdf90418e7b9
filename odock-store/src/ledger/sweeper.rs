//! The background task that returns the capacity held by crashed replicas.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use odock_core::LedgerError;
use tokio::task::JoinHandle;

/// A ledger whose expired leases can be released.
#[async_trait]
pub trait SweepExpired: Send + Sync + 'static {
    /// Releases every hold whose lease has expired; returns how many.
    async fn sweep_expired_leases(&self) -> Result<u64, LedgerError>;
}

#[async_trait]
impl SweepExpired for super::SqlBudgetLedger {
    async fn sweep_expired_leases(&self) -> Result<u64, LedgerError> {
        odock_core::BudgetLedger::sweep_expired(self).await
    }
}

#[async_trait]
impl SweepExpired for super::SqlQuotaLedger {
    async fn sweep_expired_leases(&self) -> Result<u64, LedgerError> {
        odock_core::QuotaLedger::sweep_expired(self).await
    }
}

/// Sweeps `ledger` every `every` until the handle is aborted. Errors are logged and retried on the
/// next tick; the first sweep runs after one period.
pub fn spawn_sweeper<L: SweepExpired + ?Sized>(ledger: Arc<L>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(error) = ledger.sweep_expired_leases().await {
                tracing::warn!(%error, "ledger sweep failed");
            }
        }
    })
}
