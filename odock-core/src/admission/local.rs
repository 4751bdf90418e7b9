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
    /// Rate limits from `limiter`; budgets and quotas from `ledger` when there is one.
    pub fn new(limiter: Arc<InMemoryRateLimiter>, ledger: Option<InMemoryLedger>) -> Self {
        Self { limiter, ledger }
    }

    /// Rate limits and `ledger`'s budgets and quotas.
    pub fn with_ledger(ledger: InMemoryLedger) -> Self {
        Self::new(Arc::new(InMemoryRateLimiter::new()), Some(ledger))
    }

    /// The ledger budgets and quotas are admitted against, if any.
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
        self.admit_with(hold, &request)
    }

    async fn admit_rates(&self, request: AdmissionRequest<'_>) -> Result<Admitted, GatewayError> {
        self.admit_with(None, &request)
    }
}

impl LocalAdmission {
    /// Counts the request's rate limits; the ticket holds the permit and `hold` (if any).
    fn admit_with(
        &self,
        hold: Option<LedgerHold>,
        request: &AdmissionRequest<'_>,
    ) -> Result<Admitted, GatewayError> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{ApiKeyType, BudgetPeriod};
    use crate::ids::{ApiKeyId, OrganisationId, RequestId};
    use crate::ledger::{Estimate, LedgerRule, RuleKind, RuleOwner, StaticRuleSource};
    use crate::principal::Principal;
    use crate::rate_limit::ScopeLimits;
    use crate::windows::Schedule;

    fn principal() -> Principal {
        Principal {
            api_key_id: ApiKeyId::new("k"),
            organisation_id: OrganisationId::new("o"),
            key_type: ApiKeyType::Organisation,
            team_id: None,
            user_id: None,
            expires_at: None,
            revoked: false,
        }
    }

    fn schedule() -> Schedule {
        Schedule {
            start_at: chrono::DateTime::UNIX_EPOCH,
            timezone: chrono_tz::UTC,
            period: BudgetPeriod::Monthly,
            end_at: None,
        }
    }

    fn admission(budget: i64) -> LocalAdmission {
        let rule = LedgerRule {
            id: Arc::from("b"),
            organisation_id: OrganisationId::new("o"),
            name: "budget b".into(),
            kind: RuleKind::Budget,
            owner: RuleOwner::Organisation,
            limit: budget,
            schedule: schedule(),
            thresholds: Vec::new(),
        };
        LocalAdmission::with_ledger(InMemoryLedger::new(Arc::new(StaticRuleSource::new([rule]))))
    }

    fn limits(rpm: u32, concurrent: u32) -> Vec<ScopeLimits> {
        vec![ScopeLimits {
            scope: "api_key",
            key: "api_key:k".into(),
            requests_per_second: 0,
            burst: 0,
            requests_per_minute: rpm,
            tokens_per_minute: 0,
            max_concurrent: concurrent,
            lease_ttl: Duration::from_secs(30),
        }]
    }

    async fn admit(
        admission: &LocalAdmission,
        cost: i64,
        limits: &[ScopeLimits],
    ) -> Result<Admitted, GatewayError> {
        admission
            .admit(AdmissionRequest {
                principal: &principal(),
                request_id: &RequestId::generate(),
                limits,
                estimate: Estimate {
                    tokens_in: 1,
                    tokens_out: 1,
                    cost_nanos: cost,
                },
            })
            .await
    }

    fn reserved(admission: &LocalAdmission) -> i64 {
        let window = schedule().window_at(chrono::Utc::now()).unwrap();
        admission
            .ledger()
            .unwrap()
            .window_totals(&OrganisationId::new("o"), "b", window.start)
            .map_or(0, |t| t.reserved)
    }

    #[tokio::test]
    async fn a_budget_refusal_spends_no_rate_limit_slot() {
        let admission = admission(100);
        let limits = limits(2, 0);
        let held = admit(&admission, 100, &limits).await.unwrap();
        assert_eq!(held.requests, Some((2, 1)));
        assert_eq!(
            admit(&admission, 1, &limits).await.unwrap_err().code(),
            "budget_exceeded"
        );
        drop(held);
        // The refused request did not count: one request per minute is still there.
        let second = admit(&admission, 100, &limits).await.unwrap();
        assert_eq!(second.requests, Some((2, 0)));
    }

    #[tokio::test]
    async fn a_rate_refusal_holds_nothing_in_the_ledger() {
        let admission = admission(1_000);
        let limits = limits(1, 0);
        let first = admit(&admission, 100, &limits).await.unwrap();
        assert_eq!(
            admit(&admission, 100, &limits).await.unwrap_err().code(),
            "rate_limit_exceeded"
        );
        assert_eq!(reserved(&admission), 100);
        drop(first);
        assert_eq!(reserved(&admission), 0);
    }

    #[tokio::test]
    async fn admitting_rates_only_counts_the_limits_and_holds_no_budget() {
        let admission = admission(100);
        let limits = limits(1, 0);
        let (principal, request_id) = (principal(), RequestId::generate());
        let request = |limits| AdmissionRequest {
            principal: &principal,
            request_id: &request_id,
            limits,
            estimate: Estimate {
                tokens_in: 1,
                tokens_out: 1,
                cost_nanos: 1_000,
            },
        };
        let held = admission.admit_rates(request(&limits)).await.unwrap();
        assert_eq!(reserved(&admission), 0, "over budget, yet nothing held");
        assert_eq!(
            admission
                .admit_rates(request(&limits))
                .await
                .unwrap_err()
                .code(),
            "rate_limit_exceeded"
        );
        drop(held);
    }

    #[tokio::test]
    async fn an_unsettled_ticket_gives_its_concurrency_slot_back() {
        let admission = admission(1_000_000);
        let limits = limits(0, 1);
        let first = admit(&admission, 1, &limits).await.unwrap();
        assert!(admit(&admission, 1, &limits).await.is_err());
        drop(first);
        assert!(admit(&admission, 1, &limits).await.is_ok());
    }
}
