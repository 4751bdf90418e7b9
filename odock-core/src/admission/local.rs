//! [`LocalAdmission`]: the in-process limiter and ledger, for one process (embedded mode and
//! embedders). Nothing is awaited between the first hold and the returned ticket, so a dropped
//! request cannot leave anything behind.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{Admission, AdmissionRequest, Admitted, Settlement, Ticket};
use crate::error::{GatewayError, RateLimitError};
use crate::ledger::{Actuals, InMemoryLedger, LedgerHold};
use crate::rate_limit::{InMemoryRateLimiter, RateDenied, RatePermit};
use crate::usage::UsageRecord;

/// Rate limits from an [`InMemoryRateLimiter`], budgets and quotas from an [`InMemoryLedger`]
/// (when there is one).
#[derive(Debug, Clone, Default)]
pub struct LocalAdmission {
    limiter: Arc<InMemoryRateLimiter>,
    ledger: Option<InMemoryLedger>,
}

impl LocalAdmission {
    pub fn new(limiter: Arc<InMemoryRateLimiter>, ledger: Option<InMemoryLedger>) -> Self {
        Self { limiter, ledger }
    }

    /// Rate limits and `ledger`'s budgets and quotas.
    pub fn with_ledger(ledger: InMemoryLedger) -> Self {
        Self::new(Arc::new(InMemoryRateLimiter::new()), Some(ledger))
    }

    pub fn ledger(&self) -> Option<&InMemoryLedger> {
        self.ledger.as_ref()
    }
}

/// The refusal of a rate limit, as the gateway answers it.
pub fn rate_refusal(RateDenied { scope, denied }: RateDenied) -> GatewayError {
    RateLimitError::Exceeded {
        scope,
        limit: denied.limit,
        retry_after: denied.retry_after,
    }
    .into()
}

#[async_trait]
impl Admission for LocalAdmission {
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Admitted, GatewayError> {
        // Budgets and quotas first: their hold is exactly undone (dropped) if a rate limit refuses,
        // while a spent rate-limit slot could not be given back.
        let hold = match &self.ledger {
            Some(ledger) => Some(ledger.reserve(request.principal, &request.estimate).await?),
            None => None,
        }
        .filter(|hold| !hold.is_empty());
        let rate = if request.limits.is_empty() {
            Default::default()
        } else {
            self.limiter
                .admit_at(request.limits, request.estimated_tokens(), Instant::now())
                .map_err(rate_refusal)?
        };
        let permit = (!rate.permit.is_empty()).then_some(rate.permit);
        let ticket = if hold.is_none() && permit.is_none() {
            Ticket::empty()
        } else {
            Ticket::new(LocalTicket {
                hold,
                permit: permit.map(|permit| (self.limiter.clone(), permit)),
            })
        };
        Ok(Admitted {
            requests: rate.requests,
            tokens: rate.tokens,
            ticket,
        })
    }
}

struct LocalTicket {
    hold: Option<LedgerHold>,
    permit: Option<(Arc<InMemoryRateLimiter>, RatePermit)>,
}

impl Settlement for LocalTicket {
    fn settle(mut self: Box<Self>, record: &mut UsageRecord) {
        if let Some(hold) = self.hold.take() {
            record.ledger_charges = hold.settle(&Actuals::of(record));
        }
        if let Some((limiter, permit)) = self.permit.take() {
            limiter.finish_at(&permit, record.tokens.total(), Instant::now());
        }
    }
}

impl Drop for LocalTicket {
    fn drop(&mut self) {
        // Never settled: the hold releases itself; slots go back and no tokens are counted.
        if let Some((limiter, permit)) = self.permit.take() {
            limiter.finish_at(&permit, 0, Instant::now());
        }
    }
}
