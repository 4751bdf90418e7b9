//! [`RoutingLayer`]: between resolution and admission, turns the key's routing policy for the
//! requested model's type into a [`RoutePlan`] — the models to attempt, in order — and raises the
//! request's estimate to the most expensive of them, so the one admission covers any attempt.
//!
//! Needs [`Principal`], [`Endpoint`], [`LlmRequest`], `Arc<ResolvedModel>` and [`AdmissionFacts`] (from
//! resolution). Leaves [`RoutePlan`] for the provider dispatch, which makes the attempts. Without a
//! policy (the organisation's `routingEnabled` off, or no policy for the type) the request passes
//! untouched after one policy lookup.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, Either};
use http::{Request, Response};
use rand::Rng;
use tower::{Layer, Service};

use super::breaker::CircuitBreakers;
use super::cursor::{InMemoryRoundRobinCursors, RoundRobinCursors};
use super::policy::{RoutingPolicy, Strategy};
use super::pool::KeyPools;
use super::source::RoutingPolicySource;
use crate::endpoint::Endpoint;
use crate::error::{GatewayError, ResolveError};
use crate::ids::ModelId;
use crate::key_store::KeyStore;
use crate::layers::admission::{check_request, ClientIp};
use crate::layers::admission_facts::{estimate, AdmissionFacts};
use crate::layers::required;
use crate::layers::resolve::{check_model, check_provider_pin, LlmRequest};
use crate::ledger::Estimate;
use crate::model::ResolvedModel;
use crate::principal::Principal;
use crate::rate_limit::{ScopeLimits, ScopedPolicies};

/// What routing shares across requests: the policy source, the circuit breakers and the
/// round-robin cursors (per key and model type: in this process unless shared).
pub struct Routing {
    source: Arc<dyn RoutingPolicySource>,
    breakers: Arc<CircuitBreakers>,
    pools: Arc<KeyPools>,
    cursors: Arc<dyn RoundRobinCursors>,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing")
            .field("breakers", &self.breakers)
            .finish_non_exhaustive()
    }
}

impl Routing {
    /// Routing with `source`'s policies and `breakers`, key pools and round-robin counters local to
    /// this process.
    pub fn new(source: Arc<dyn RoutingPolicySource>, breakers: Arc<CircuitBreakers>) -> Self {
        Self {
            source,
            breakers,
            pools: Arc::default(),
            cursors: Arc::new(InMemoryRoundRobinCursors::default()),
        }
    }

    /// Takes `round_robin` starts from `cursors` (shared by the replicas through Redis in
    /// production mode) instead of this process's counters.
    pub fn with_round_robin(mut self, cursors: Arc<dyn RoundRobinCursors>) -> Self {
        self.cursors = cursors;
        self
    }

    /// Rotates pooled provider keys with `pools` (shared with the admin API's health view).
    pub fn with_key_pools(mut self, pools: Arc<KeyPools>) -> Self {
        self.pools = pools;
        self
    }

    /// The circuit breakers attempts report to.
    pub fn breakers(&self) -> &Arc<CircuitBreakers> {
        &self.breakers
    }

    /// The rotation state of pooled provider keys.
    pub fn key_pools(&self) -> &Arc<KeyPools> {
        &self.pools
    }
}

/// Request extension: the attempts routing will make, in order (already wrapped around the
/// candidate list, at most `1 + maxRetries`).
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// The policy that made the plan.
    pub policy: Arc<RoutingPolicy>,
    /// The models to try, in order.
    pub attempts: Vec<Arc<ResolvedModel>>,
    /// The model-level rate limits of attempted models other than the requested one (whose
    /// limits admission counted): each is admitted before that model's first attempt.
    pub model_limits: Vec<ModelLimits>,
}

/// One candidate model's own counted rate limits and the estimate they are admitted with.
#[derive(Debug, Clone)]
pub struct ModelLimits {
    /// The candidate model.
    pub model_id: ModelId,
    /// Its counted rate limits.
    pub limits: Vec<ScopeLimits>,
    /// The estimate they are admitted with.
    pub estimate: Estimate,
}

impl RoutePlan {
    /// The pause between attempts.
    pub fn retry_delay(&self) -> Duration {
        self.policy.retry_delay()
    }
}

/// Tower layer that looks up the key's routing policy and inserts a [`RoutePlan`] when there is
/// one.
#[derive(Clone)]
pub struct RoutingLayer {
    routing: Arc<Routing>,
    store: Arc<dyn KeyStore>,
}

impl std::fmt::Debug for RoutingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoutingLayer")
    }
}

impl RoutingLayer {
    /// A layer on `routing`, resolving candidate models through `store`.
    pub fn new(routing: Arc<Routing>, store: Arc<dyn KeyStore>) -> Self {
        Self { routing, store }
    }
}

impl<S> Layer<S> for RoutingLayer {
    type Service = RoutingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RoutingService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RoutingLayer`] wraps around the inner service.
#[derive(Clone)]
pub struct RoutingService<S> {
    inner: S,
    layer: RoutingLayer,
}

/// The inner service's future untouched (no policy: the fast path), or the routing future.
pub type ResponseFuture<F, R> = Either<F, BoxFuture<'static, Result<R, GatewayError>>>;

impl<S, ResBody> Service<Request<Bytes>> for RoutingService<S>
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
    type Future = ResponseFuture<S::Future, Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Bytes>) -> Self::Future {
        // A cache hit answers synchronously; "no policy" then costs nothing more.
        let cached = {
            let extensions = req.extensions();
            match (
                extensions.get::<Principal>(),
                extensions.get::<Arc<ResolvedModel>>(),
            ) {
                (Some(principal), Some(model)) => self
                    .layer
                    .routing
                    .source
                    .cached_policy(principal, model.model_type),
                _ => None,
            }
        };
        if let Some(None) = cached {
            return Either::Left(self.inner.call(req));
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Either::Right(Box::pin(async move {
            let extensions = req.extensions();
            let principal = required::<Principal>(extensions, "routing", "a principal")?;
            let model = required::<Arc<ResolvedModel>>(extensions, "routing", "a resolved model")?;
            let policy = match cached {
                Some(policy) => policy,
                None => {
                    layer
                        .routing
                        .source
                        .policy(principal, model.model_type)
                        .await?
                }
            };
            if let Some(policy) = policy {
                let endpoint = *required::<Endpoint>(extensions, "routing", "an endpoint")?;
                let llm = required::<LlmRequest>(extensions, "routing", "a decoded request")?;
                let facts = RequestFacts {
                    principal,
                    endpoint,
                    llm,
                    client_ip: extensions.get::<ClientIp>().map(|ip| ip.0),
                    body_len: req.body().len() as u64,
                };
                let plan = plan(&layer.routing, &*layer.store, &facts, model, policy).await?;
                if let Some(plan) = plan {
                    let mode = endpoint.billing_mode();
                    let mut governed =
                        required::<AdmissionFacts>(extensions, "routing", "what it governs")?
                            .clone();
                    for candidate in &plan.attempts {
                        let e = estimate(llm, candidate, mode);
                        governed.estimate.cost_nanos =
                            governed.estimate.cost_nanos.max(e.cost_nanos);
                        governed.estimate.tokens_in = governed.estimate.tokens_in.max(e.tokens_in);
                        governed.estimate.tokens_out =
                            governed.estimate.tokens_out.max(e.tokens_out);
                    }
                    if let Some(trace) = extensions.get::<crate::telemetry::RequestTrace>() {
                        trace.annotate_stage(vec![
                            opentelemetry::KeyValue::new(
                                "odock.routing.strategy",
                                plan.policy.strategy.as_str(),
                            ),
                            opentelemetry::KeyValue::new(
                                "odock.routing.attempts",
                                plan.attempts.len() as i64,
                            ),
                        ]);
                    }
                    let extensions = req.extensions_mut();
                    extensions.insert(governed);
                    extensions.insert(plan);
                }
            }
            inner.call(req).await
        }))
    }
}

/// What the plan needs to know about the request.
#[derive(Clone, Copy)]
struct RequestFacts<'a> {
    principal: &'a Principal,
    endpoint: Endpoint,
    llm: &'a LlmRequest,
    client_ip: Option<IpAddr>,
    body_len: u64,
}

/// The attempts for a request under `policy`: the candidates the key may use on this route (same
/// type, granted, family accepted, provider enabled and keyed — routing never bypasses a check
/// resolution makes), ordered by the strategy, wrapped around to `1 + maxRetries`. `None` when no
/// candidate is usable (the requested model is then called directly).
async fn plan(
    routing: &Routing,
    store: &dyn KeyStore,
    facts: &RequestFacts<'_>,
    requested: &Arc<ResolvedModel>,
    policy: Arc<RoutingPolicy>,
) -> Result<Option<RoutePlan>, GatewayError> {
    let RequestFacts {
        principal,
        endpoint,
        llm,
        client_ip,
        body_len,
    } = *facts;
    let mut usable = Vec::with_capacity(policy.candidates.len());
    let mut model_limits = Vec::new();
    for candidate in &policy.candidates {
        let model = if candidate.model_id == requested.id {
            requested.clone()
        } else {
            match store
                .model(&principal.organisation_id, &candidate.model_name)
                .await
            {
                Ok(model) => model,
                Err(ResolveError::ModelNotFound(_) | ResolveError::ProviderKeyNotConfigured) => {
                    continue
                }
                Err(other) => return Err(other.into()),
            }
        };
        if model.id != candidate.model_id || model.model_type != requested.model_type {
            continue;
        }
        match check_model(store, principal, endpoint, &model).await {
            Ok(()) => {}
            Err(e @ (ResolveError::LookupUnavailable | ResolveError::AccessUnavailable)) => {
                return Err(e.into())
            }
            Err(_) => continue,
        }
        if check_provider_pin(llm, &model).is_err() {
            continue;
        }
        // Another model's own policy applies to its attempts too (the requested model's was
        // checked by admission): a candidate whose IP lists, request size or tokens per request
        // refuse this request is skipped; its rate limits are admitted before its attempt.
        if model.id != requested.id {
            let policies = store.policies(principal, &model.id).await?;
            let own: ScopedPolicies = policies
                .iter()
                .filter(|p| p.scope == "model")
                .cloned()
                .collect();
            if !own.is_empty() {
                let e = estimate(llm, &model, endpoint.billing_mode());
                let tokens = e.tokens_in.saturating_add(e.tokens_out);
                if check_request(&own, client_ip, body_len, tokens).is_err() {
                    continue;
                }
                let limits: Vec<ScopeLimits> =
                    own.iter().filter_map(ScopeLimits::from_policy).collect();
                if !limits.is_empty()
                    && !model_limits
                        .iter()
                        .any(|m: &ModelLimits| m.model_id == model.id)
                {
                    model_limits.push(ModelLimits {
                        model_id: model.id.clone(),
                        limits,
                        estimate: e,
                    });
                }
            }
        }
        usable.push((candidate, model));
    }
    if usable.is_empty() {
        return Ok(None);
    }
    if policy.strategy == Strategy::Priority {
        usable.sort_by_key(|(candidate, _)| candidate.priority.unwrap_or(0));
    }
    let n = usable.len();
    let start = match policy.strategy {
        Strategy::Failover | Strategy::Priority => 0,
        Strategy::RoundRobin => {
            let cursor = routing
                .cursors
                .next(&principal.api_key_id, requested.model_type)
                .await;
            (cursor % n as u64) as usize
        }
        Strategy::Weighted => {
            let weights: Vec<u64> = usable
                .iter()
                .map(|(c, _)| u64::from(c.weight.unwrap_or(1)))
                .collect();
            let total: u64 = weights.iter().sum();
            if total == 0 {
                0
            } else {
                let mut draw = rand::thread_rng().gen_range(0..total);
                weights
                    .iter()
                    .position(|w| {
                        if draw < *w {
                            true
                        } else {
                            draw -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            }
        }
    };
    let attempts = (0..policy.max_attempts())
        .map(|i| usable[(start + i) % n].1.clone())
        .collect();
    Ok(Some(RoutePlan {
        policy,
        attempts,
        model_limits,
    }))
}
