//! [`Admission`]: rate limits, quotas and budgets decided in one step, all or nothing.
//!
//! A request is admitted against every counted rate limit of every policy scope and every window of
//! every matching budget and quota at once; a refusal by any of them takes nothing from the others
//! (no rate-limit slot is spent on a request a budget refuses). What an admitted request holds
//! comes back as a [`Ticket`]: settled with the request's usage record when it ends, released when
//! it is dropped unsettled.
//!
//! **Cancellation safety is part of the contract.** A client may drop the request at any await
//! point. Implementations must leave nothing held when the `admit` future is dropped: either they
//! decide without awaiting between taking and returning ([`LocalAdmission`]), or they run the
//! remote step in a task of its own whose unclaimed result releases itself (the Redis admission).
//! The caller registers the ticket on the request's meter without awaiting in between, and a
//! ticket that is dropped instead of settled gives everything back.
//!
//! - [`LocalAdmission`]: the in-process limiter and [`InMemoryLedger`](crate::ledger::InMemoryLedger),
//!   authoritative for one process; microseconds, no I/O.
//! - Several replicas share one admission through Redis (`odock-redis`).

mod local;

use async_trait::async_trait;

pub use local::{rate_refusal, LocalAdmission};

use crate::error::GatewayError;
use crate::ids::RequestId;
use crate::ledger::Estimate;
use crate::principal::Principal;
use crate::rate_limit::ScopeLimits;
use crate::usage::UsageRecord;

/// One request to admit.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionRequest<'a> {
    /// Who is asking: the key, its organisation, team and user, which rules match.
    pub principal: &'a Principal,
    /// The request's id, so holds can be traced to it.
    pub request_id: &'a RequestId,
    /// The counted rate limits of every policy scope in force (may be empty).
    pub limits: &'a [ScopeLimits],
    /// What the request is expected to consume.
    pub estimate: Estimate,
}

impl AdmissionRequest<'_> {
    /// Tokens counted against tokens-per-minute limits.
    pub fn estimated_tokens(&self) -> u64 {
        self.estimate
            .tokens_in
            .saturating_add(self.estimate.tokens_out)
    }
}

/// An admitted request: the headroom left for the `x-ratelimit-*` headers and what it holds.
#[derive(Debug, Default)]
pub struct Admitted {
    /// `(limit, remaining)` of the request-rate limit with the least headroom.
    pub requests: Option<(u64, u64)>,
    /// `(limit, remaining)` of the tokens-per-minute limit with the least headroom.
    pub tokens: Option<(u64, u64)>,
    /// What the request holds until it is settled (or dropped).
    pub ticket: Ticket,
}

/// Decides admission; see the module docs for the cancellation contract.
#[async_trait]
pub trait Admission: Send + Sync + 'static {
    /// Admits `request` against every rate limit, budget and quota at once, or refuses it holding
    /// nothing.
    async fn admit(&self, request: AdmissionRequest<'_>) -> Result<Admitted, GatewayError>;

    /// Counts `request` against its `limits` only — no budget or quota is held. For a routed
    /// request's attempt on another model than the one admitted: that model's own rate limits
    /// apply to the attempt, while the request was counted once everywhere else.
    async fn admit_rates(&self, request: AdmissionRequest<'_>) -> Result<Admitted, GatewayError>;
}

/// How an admitted request's holds end. Implementations release everything in `Drop` when they
/// were never settled.
pub trait Settlement: Send + 'static {
    /// The request ended with `record`: count what it used and give back what it held. Must not
    /// block (it runs where the response body ends or is dropped); implementations that do I/O
    /// spawn it. May attach [`WindowCharge`](crate::ledger::WindowCharge)s to the record for the
    /// usage writer to store with it.
    fn settle(self: Box<Self>, record: &mut UsageRecord);
}

/// What an admitted request holds. Dropping it unsettled releases everything.
#[derive(Default)]
pub struct Ticket(Option<Box<dyn Settlement>>);

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Ticket(held)"
        } else {
            "Ticket(empty)"
        })
    }
}

impl Ticket {
    /// A ticket that settles through `settlement`.
    pub fn new(settlement: impl Settlement) -> Self {
        Self(Some(Box::new(settlement)))
    }

    /// A ticket that holds nothing.
    pub fn empty() -> Self {
        Self(None)
    }

    /// Whether the ticket holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Settles with `record`: counts what the request used and gives back what it held.
    pub fn settle(mut self, record: &mut UsageRecord) {
        if let Some(settlement) = self.0.take() {
            settlement.settle(record);
        }
    }
}
