//! Policy gate: applies the rate-limit policies of every scope that has one — organisation, team
//! (TEAM keys), API key, model — additively: IP allow/block lists, max request bytes, max tokens per
//! request, requests per second (with burst), requests per minute, tokens per minute (estimate
//! reserved, reconciled to actual usage when the record is made) and concurrent requests (a leased
//! slot released when the record is made, or when its TTL lapses). Successful responses carry
//! `x-ratelimit-limit-requests` / `x-ratelimit-remaining-requests` (tightest request-rate scope) and
//! `x-ratelimit-limit-tokens` / `x-ratelimit-remaining-tokens` (tightest TPM scope).
//!
//! All checks run here, after resolution, where every scope (the model's included) is known; the
//! body has been buffered already, so the byte limit applies to its real size. Denials: 403
//! `ip_not_allowed`, 413 `payload_too_large`, 429 `rate_limit_exceeded` with `scope`, `limit`,
//! `retry_after`. Counters are in-process ([`InMemoryRateLimiter`]); several replicas need a shared
//! limiter (production mode).
//!
//! Needs [`Principal`], [`LlmRequest`], `Arc<ResolvedModel>`, the [`Meter`]; reads [`ClientIp`]
//! when the server provides it.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::metering::Meter;
use super::required;
use super::reservation::estimate;
use super::resolve::LlmRequest;
use crate::endpoint::Endpoint;
use crate::error::{GatewayError, RateLimitError, RequestError};
use crate::key_store::KeyStore;
use crate::model::ResolvedModel;
use crate::principal::Principal;
use crate::rate_limit::{Denied, InMemoryRateLimiter, Lease};
use crate::usage::UsageRecord;

/// The caller's IP address, inserted by the server (from the connection; proxies are the operator's
/// concern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct PolicyGateLayer {
    store: Arc<dyn KeyStore>,
    limiter: Arc<InMemoryRateLimiter>,
}

impl std::fmt::Debug for PolicyGateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyGateLayer")
    }
}

impl PolicyGateLayer {
    pub fn new(store: Arc<dyn KeyStore>, limiter: Arc<InMemoryRateLimiter>) -> Self {
        Self { store, limiter }
    }
}

impl<S> Layer<S> for PolicyGateLayer {
    type Service = PolicyGate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PolicyGate {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct PolicyGate<S> {
    inner: S,
    layer: PolicyGateLayer,
}

/// The headers to add to a successful response.
#[derive(Default)]
struct Quota {
    requests: Option<(u64, u64)>,
    tokens: Option<(u64, u64)>,
}

fn tighter(current: Option<(u64, u64)>, limit: u64, remaining: u64) -> Option<(u64, u64)> {
    match current {
        Some((_, left)) if left <= remaining => current,
        _ => Some((limit, remaining)),
    }
}

fn exceeded(scope: &'static str, denied: Denied) -> GatewayError {
    RateLimitError::Exceeded {
        scope,
        limit: denied.limit,
        retry_after: denied.retry_after,
    }
    .into()
}

impl<S, ResBody> Service<Request<Bytes>> for PolicyGate<S>
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
    type Future = BoxFuture<'static, Result<Self::Response, GatewayError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let principal =
                required::<Principal>(req.extensions(), "the policy gate", "a principal")?;
            let model = required::<Arc<ResolvedModel>>(
                req.extensions(),
                "the policy gate",
                "a resolved model",
            )?
            .clone();
            let policies = layer.store.policies(principal, &model.id).await?;
            if policies.is_empty() {
                return inner.call(req).await;
            }
            let llm =
                required::<LlmRequest>(req.extensions(), "the policy gate", "a decoded request")?;
            let endpoint =
                *required::<Endpoint>(req.extensions(), "the policy gate", "an endpoint")?;
            let meter =
                required::<Meter>(req.extensions(), "the policy gate", "the meter")?.clone();
            let client_ip = req.extensions().get::<ClientIp>().map(|ip| ip.0);
            let estimate = estimate(llm, &model, endpoint.billing_mode());
            let estimated_tokens = estimate.tokens_in + estimate.tokens_out;
            let body_len = req.body().len() as u64;
            let now = Instant::now();
            let limiter = &layer.limiter;

            // Checks without side effects first, so a denial consumes nothing.
            for scoped in policies.iter() {
                let p = &scoped.policy;
                if client_ip.is_some_and(|ip| !p.ip_allowed(ip)) {
                    return Err(RateLimitError::IpNotAllowed.into());
                }
                if p.max_request_bytes > 0 && body_len > p.max_request_bytes {
                    return Err(RequestError::PayloadTooLarge {
                        limit: p.max_request_bytes,
                    }
                    .into());
                }
                if p.max_tokens_per_request > 0 && estimated_tokens > p.max_tokens_per_request {
                    let denied = Denied {
                        limit: "max_tokens_per_request",
                        retry_after: Duration::ZERO,
                    };
                    return Err(exceeded(scoped.scope, denied));
                }
            }

            let mut headers = Quota::default();
            let mut token_windows = Vec::new();
            let mut leases: Vec<Lease> = Vec::new();
            let release = |leases: &[Lease]| leases.iter().for_each(|l| limiter.release(l));
            for scoped in policies.iter() {
                let p = &scoped.policy;
                let key = format!("{}:{}", scoped.scope, scoped.id);
                let burst = if p.burst > 0 {
                    p.burst
                } else {
                    p.requests_per_second
                };
                let checks = [
                    (
                        "requests_per_second",
                        p.requests_per_second,
                        Duration::from_secs(1),
                        burst,
                    ),
                    (
                        "requests_per_minute",
                        p.requests_per_minute,
                        Duration::from_secs(60),
                        p.requests_per_minute,
                    ),
                ];
                for (limit, rate, period, burst) in checks {
                    if rate == 0 {
                        continue;
                    }
                    match limiter.check_rate(&key, limit, rate, period, burst, now) {
                        Ok(remaining) => {
                            headers.requests = tighter(headers.requests, u64::from(rate), remaining)
                        }
                        Err(denied) => {
                            release(&leases);
                            return Err(exceeded(scoped.scope, denied));
                        }
                    }
                }
                if p.tokens_per_minute > 0 {
                    match limiter.check_tokens(&key, estimated_tokens, p.tokens_per_minute, now) {
                        Ok(remaining) => {
                            headers.tokens =
                                tighter(headers.tokens, p.tokens_per_minute, remaining);
                            token_windows.push(key.clone());
                        }
                        Err(denied) => {
                            release(&leases);
                            return Err(exceeded(scoped.scope, denied));
                        }
                    }
                }
                if p.max_concurrent_requests > 0 {
                    let ttl = match p.concurrency_lease_ttl_ms {
                        0 => DEFAULT_LEASE_TTL,
                        ms => Duration::from_millis(ms),
                    };
                    match limiter.acquire(&key, p.max_concurrent_requests, ttl, now) {
                        Ok(lease) => leases.extend(lease),
                        Err(denied) => {
                            release(&leases);
                            return Err(exceeded(scoped.scope, denied));
                        }
                    }
                }
            }

            // When the record is made: give the slots back and reconcile token windows.
            let limiter = layer.limiter.clone();
            meter.on_finish(Box::new(move |record: &UsageRecord| {
                for lease in &leases {
                    limiter.release(lease);
                }
                let actual = record.tokens.total();
                for key in &token_windows {
                    limiter.adjust_tokens(key, estimated_tokens, actual, Instant::now());
                }
            }));

            let mut response = inner.call(req).await?;
            let out = response.headers_mut();
            for (name, value) in [
                ("x-ratelimit-limit-requests", headers.requests.map(|r| r.0)),
                (
                    "x-ratelimit-remaining-requests",
                    headers.requests.map(|r| r.1),
                ),
                ("x-ratelimit-limit-tokens", headers.tokens.map(|t| t.0)),
                ("x-ratelimit-remaining-tokens", headers.tokens.map(|t| t.1)),
            ] {
                if let Some(value) = value {
                    out.insert(name, HeaderValue::from(value));
                }
            }
            Ok(response)
        })
    }
}
