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
//! `retry_after`. Counters live behind [`RateLimiter`]: in-process ([`InMemoryRateLimiter`], the
//! default) or shared by several replicas (`odock_store::redis::RedisRateLimiter`); every counted
//! limit of every scope is admitted in one step, all or nothing.
//!
//! Needs [`Principal`], [`Governed`] (left by the LLM or the MCP resolution: whose policy applies
//! besides the owners', and the estimate), the [`Meter`]; reads [`ClientIp`] when the server
//! provides it.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::governed::Governed;
use super::metering::Meter;
use super::required;
use crate::error::{GatewayError, RateLimitError, RequestError};
use crate::key_store::KeyStore;
use crate::principal::Principal;
use crate::rate_limit::{Denied, RateDenied, RateLimiter, ScopeLimits};
use crate::usage::UsageRecord;

/// The caller's IP address, inserted by the server (from the connection; proxies are the operator's
/// concern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

#[derive(Clone)]
pub struct PolicyGateLayer {
    store: Arc<dyn KeyStore>,
    limiter: Arc<dyn RateLimiter>,
}

impl std::fmt::Debug for PolicyGateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyGateLayer")
    }
}

impl PolicyGateLayer {
    /// Use [`InMemoryRateLimiter`](crate::rate_limit::InMemoryRateLimiter) for one process.
    pub fn new(store: Arc<dyn KeyStore>, limiter: Arc<dyn RateLimiter>) -> Self {
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
            let governed =
                required::<Governed>(req.extensions(), "the policy gate", "what it governs")?;
            let policies = governed.policies(&*layer.store, principal).await?;
            if policies.is_empty() {
                return inner.call(req).await;
            }
            let meter =
                required::<Meter>(req.extensions(), "the policy gate", "the meter")?.clone();
            let client_ip = req.extensions().get::<ClientIp>().map(|ip| ip.0);
            let estimate = governed.estimate;
            let estimated_tokens = estimate.tokens_in + estimate.tokens_out;
            let body_len = req.body().len() as u64;

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

            let counted: Vec<ScopeLimits> = policies
                .iter()
                .filter_map(ScopeLimits::from_policy)
                .collect();
            let admission = if counted.is_empty() {
                Default::default()
            } else {
                layer
                    .limiter
                    .admit(&counted, estimated_tokens)
                    .await
                    .map_err(|RateDenied { scope, denied }| exceeded(scope, denied))?
            };
            if !admission.permit.is_empty() {
                // When the record is made: give the slots back and reconcile token windows.
                let limiter = layer.limiter.clone();
                let permit = admission.permit;
                meter.on_finish(Box::new(move |record: &UsageRecord| {
                    limiter.finish(permit, record.tokens.total());
                }));
            }

            let mut response = inner.call(req).await?;
            let out = response.headers_mut();
            for (name, value) in [
                (
                    "x-ratelimit-limit-requests",
                    admission.requests.map(|r| r.0),
                ),
                (
                    "x-ratelimit-remaining-requests",
                    admission.requests.map(|r| r.1),
                ),
                ("x-ratelimit-limit-tokens", admission.tokens.map(|t| t.0)),
                (
                    "x-ratelimit-remaining-tokens",
                    admission.tokens.map(|t| t.1),
                ),
            ] {
                if let Some(value) = value {
                    out.insert(name, HeaderValue::from(value));
                }
            }
            Ok(response)
        })
    }
}
