//! Reservation: admits a request only if every matching quota and budget window has room for its
//! estimate, holding that estimate until the request ends — so concurrent requests cannot overspend.
//!
//! Estimate (DECISIONS.md): input tokens ≈ ⌈prompt text bytes / 4⌉, output = the request's cap,
//! else the model's `maxOutputTokens`, else 4,096; cost = the model's pricing of those tokens.
//! Quotas are reserved first (429 `quota_exceeded`), then budgets (402 `budget_exceeded`; the quota
//! hold is released). Settlement is registered on the [`Meter`]: when the usage record is made (body
//! end, client abort or failure) the actual cost and counts are settled and the holds released. While
//! the request runs, the leases are refreshed so only a dead replica's holds expire.
//!
//! MCP calls go through the same layer: their [`Governed`] estimate is the MCP price of the call
//! (call price + request bytes), settled with the actual price (response bytes included).
//!
//! Needs [`Principal`], [`Governed`] (the estimate, left by the LLM or MCP resolution) and the
//! [`Meter`] before it; leaves nothing in the extensions.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use tower::{Layer, Service};

use super::governed::Governed;
use super::metering::Meter;
use super::required;
use super::resolve::LlmRequest;
use crate::error::GatewayError;
use crate::ids::RequestId;
use crate::ledger::{BudgetLedger, QuotaActuals, QuotaDemand, QuotaLedger, Reservation};
use crate::model::ResolvedModel;
use crate::pricing::bill;
use crate::principal::Principal;
use crate::usage::{TokenUsage, UsageRecord};

/// Output tokens assumed when neither the request nor the model caps them.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 4_096;
const BYTES_PER_TOKEN: u64 = 4;

#[derive(Clone)]
pub struct ReservationLayer {
    budgets: Arc<dyn BudgetLedger>,
    quotas: Arc<dyn QuotaLedger>,
    refresh_every: Duration,
}

impl std::fmt::Debug for ReservationLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservationLayer")
            .field("refresh_every", &self.refresh_every)
            .finish()
    }
}

impl ReservationLayer {
    /// `refresh_every` should be about a third of the ledgers' lease (10 s for the default 30 s).
    pub fn new(
        budgets: Arc<dyn BudgetLedger>,
        quotas: Arc<dyn QuotaLedger>,
        refresh_every: Duration,
    ) -> Self {
        Self {
            budgets,
            quotas,
            refresh_every,
        }
    }
}

impl<S> Layer<S> for ReservationLayer {
    type Service = Reserve<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Reserve {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Reserve<S> {
    inner: S,
    layer: ReservationLayer,
}

pub type ResponseFuture<R> = BoxFuture<'static, Result<R, GatewayError>>;

/// What a request is expected to consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_nanos: i64,
}

/// The estimate for a decoded request on a model.
pub fn estimate(
    request: &LlmRequest,
    model: &ResolvedModel,
    mode: crate::pricing::BillingMode,
) -> Estimate {
    let tokens_in = request.prompt_text_bytes.div_ceil(BYTES_PER_TOKEN);
    let tokens_out = request
        .max_output_tokens
        .or(model.max_output_tokens)
        .unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    let usage = TokenUsage {
        input: tokens_in,
        output: tokens_out,
        ..TokenUsage::default()
    };
    Estimate {
        tokens_in,
        tokens_out,
        cost_nanos: bill(&model.pricing, &usage, mode).cost_nanos_usd,
    }
}

impl<S, ResBody> Service<Request<Bytes>> for Reserve<S>
where
    S: Service<Request<Bytes>, Response = Response<ResBody>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = GatewayError;
    type Future = ResponseFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let principal =
                required::<Principal>(req.extensions(), "reservation", "a principal")?.clone();
            let estimate =
                required::<Governed>(req.extensions(), "reservation", "what it governs")?.estimate;
            let meter = required::<Meter>(req.extensions(), "reservation", "the meter")?.clone();
            let request_id = req
                .extensions()
                .get::<RequestId>()
                .cloned()
                .unwrap_or_else(RequestId::generate);

            let demand = QuotaDemand {
                requests: 1,
                tokens_in: estimate.tokens_in,
                tokens_out: estimate.tokens_out,
                cost_nanos: estimate.cost_nanos,
            };
            let quota = layer
                .quotas
                .reserve(&principal, &request_id, demand)
                .await?;
            let budget = match layer
                .budgets
                .reserve(&principal, &request_id, estimate.cost_nanos)
                .await
            {
                Ok(budget) => budget,
                Err(error) => {
                    if let Err(release) = layer.quotas.release(&quota).await {
                        tracing::error!(%release, "quota hold could not be released after a budget denial");
                    }
                    return Err(error.into());
                }
            };

            let refresher = spawn_refresher(&layer, &budget, &quota);
            let (budgets, quotas) = (layer.budgets.clone(), layer.quotas.clone());
            meter.on_finish(Box::new(move |record: &UsageRecord| {
                if let Some(refresher) = refresher {
                    refresher.abort();
                }
                settle(budgets, quotas, budget, quota, record);
            }));
            inner.call(req).await
        })
    }
}

/// Keeps the holds' leases alive while the request runs (only when something is held).
fn spawn_refresher(
    layer: &ReservationLayer,
    budget: &Reservation,
    quota: &Reservation,
) -> Option<tokio::task::JoinHandle<()>> {
    if budget.windows.is_empty() && quota.windows.is_empty() {
        return None;
    }
    let (budgets, quotas) = (layer.budgets.clone(), layer.quotas.clone());
    let (budget, quota) = (budget.clone(), quota.clone());
    let every = layer.refresh_every;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if !budget.windows.is_empty() {
                let _ = budgets.refresh(&budget).await;
            }
            if !quota.windows.is_empty() {
                let _ = quotas.refresh(&quota).await;
            }
        }
    }))
}

/// Settles both holds with the record's actuals, off the request path.
fn settle(
    budgets: Arc<dyn BudgetLedger>,
    quotas: Arc<dyn QuotaLedger>,
    budget: Reservation,
    quota: Reservation,
    record: &UsageRecord,
) {
    let cost = record.cost_nanos_usd;
    let actual = QuotaActuals {
        requests: 1,
        tokens_in: record.tokens.input,
        tokens_out: record.tokens.output,
        cost_nanos: cost,
        errors: u64::from(record.http_status >= 400 || record.error_code.is_some()),
        latency_ms: record.latency_ms,
    };
    let work = async move {
        if let Err(error) = budgets.settle(&budget, cost).await {
            tracing::error!(%error, "budget settlement failed; the hold expires with its lease");
        }
        if let Err(error) = quotas.settle(&quota, actual).await {
            tracing::error!(%error, "quota settlement failed; the hold expires with its lease");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(work);
        }
        Err(_) => tracing::error!("no runtime to settle on; the holds expire with their leases"),
    }
}
