//! Admission: the policy checks that consume nothing, then rate limits, quotas and budgets in one
//! all-or-nothing step through [`Admission`].
//!
//! First, for every scope's policy (organisation, team for TEAM keys, API key, model or MCP server):
//! IP allow/block lists (403 `ip_not_allowed`), max request bytes (413 `payload_too_large`) and max
//! tokens per request (429 `rate_limit_exceeded`). Then one admission against requests per second
//! (with burst), requests per minute, tokens per minute, concurrent requests, and every window of
//! every matching quota (429 `quota_exceeded`) and budget (402 `budget_exceeded`), holding the
//! request's estimate in all of them. The [`Ticket`](crate::admission::Ticket) is registered on the
//! [`Meter`] with no await in between, so the holds are settled with the actual usage exactly when
//! the usage record is made (body end, client abort or failure) and released if the request is
//! dropped before that. Successful responses carry `x-ratelimit-limit-requests` /
//! `x-ratelimit-remaining-requests` (tightest request-rate scope) and `x-ratelimit-limit-tokens` /
//! `x-ratelimit-remaining-tokens` (tightest TPM scope).
//!
//! Needs [`Principal`], [`AdmissionFacts`] (left by the LLM or the MCP resolution: whose policy applies
//! besides the owners', and the estimate) and the [`Meter`]; reads [`ClientIp`] when the server
//! provides it and [`RequestId`]. Leaves nothing in the extensions.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::admission_facts::AdmissionFacts;
use super::metering::Meter;
use super::required;
use crate::admission::{Admission, AdmissionRequest, Admitted};
use crate::error::{GatewayError, RateLimitError, RequestError};
use crate::ids::RequestId;
use crate::key_store::KeyStore;
use crate::principal::Principal;
use crate::rate_limit::{ScopeLimits, ScopedPolicies};

/// The caller's IP address, inserted by the server (from the connection, or from trusted proxies'
/// `X-Forwarded-For`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Tower layer admitting each request against its rate limits, budgets and quotas at once (see the
/// module docs).
#[derive(Clone)]
pub struct AdmissionLayer {
    store: Arc<dyn KeyStore>,
    admission: Arc<dyn Admission>,
}

impl std::fmt::Debug for AdmissionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdmissionLayer")
    }
}

impl AdmissionLayer {
    /// A layer reading policies from `store` and admitting through `admission`.
    pub fn new(store: Arc<dyn KeyStore>, admission: Arc<dyn Admission>) -> Self {
        Self { store, admission }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = AdmissionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdmissionService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AdmissionLayer`] wraps around the inner service.
#[derive(Clone)]
pub struct AdmissionService<S> {
    inner: S,
    layer: AdmissionLayer,
}

/// The response future of [`AdmissionService`].
pub type ResponseFuture<R> = BoxFuture<'static, Result<R, GatewayError>>;

/// The checks that consume nothing: IP lists, request size, tokens per request. IP lists fail
/// closed: a policy with IP rules refuses a request whose client address is unknown (an embedder
/// that forgot to insert [`ClientIp`] gets refusals it can see, not silently unchecked traffic).
pub(crate) fn check_request(
    policies: &ScopedPolicies,
    client_ip: Option<IpAddr>,
    body_len: u64,
    estimated_tokens: u64,
) -> Result<(), GatewayError> {
    for scoped in policies.iter() {
        let p = &scoped.policy;
        let has_ip_rules = !p.ip_allowlist.is_empty() || !p.ip_blocklist.is_empty();
        match client_ip {
            Some(ip) if has_ip_rules && !p.ip_allowed(ip) => {
                return Err(RateLimitError::IpNotAllowed.into())
            }
            None if has_ip_rules => {
                tracing::warn!(
                    scope = scoped.scope,
                    "IP rules apply but the client address is unknown (no ClientIp extension); refused"
                );
                return Err(RateLimitError::IpNotAllowed.into());
            }
            _ => {}
        }
        if p.max_request_bytes > 0 && body_len > p.max_request_bytes {
            return Err(RequestError::PayloadTooLarge {
                limit: p.max_request_bytes,
            }
            .into());
        }
        if p.max_tokens_per_request > 0 && estimated_tokens > p.max_tokens_per_request {
            return Err(RateLimitError::Exceeded {
                scope: scoped.scope,
                limit: "max_tokens_per_request",
                retry_after: Duration::ZERO,
            }
            .into());
        }
    }
    Ok(())
}

impl<S, ResBody> Service<Request<Bytes>> for AdmissionService<S>
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
            let extensions = req.extensions();
            let principal = required::<Principal>(extensions, "admission", "a principal")?;
            let governed = required::<AdmissionFacts>(extensions, "admission", "what it governs")?;
            let meter = required::<Meter>(extensions, "admission", "the meter")?.clone();
            let estimate = governed.estimate;
            let policies = governed.policies(&*layer.store, principal).await?;
            let limits: Vec<ScopeLimits> = if policies.is_empty() {
                Vec::new()
            } else {
                let client_ip = extensions.get::<ClientIp>().map(|ip| ip.0);
                let tokens = estimate.tokens_in.saturating_add(estimate.tokens_out);
                check_request(&policies, client_ip, req.body().len() as u64, tokens)?;
                policies
                    .iter()
                    .filter_map(ScopeLimits::from_policy)
                    .collect()
            };
            let request_id = extensions
                .get::<RequestId>()
                .cloned()
                .unwrap_or_else(RequestId::generate);
            let Admitted {
                requests,
                tokens,
                ticket,
            } = layer
                .admission
                .admit(AdmissionRequest {
                    principal,
                    request_id: &request_id,
                    limits: &limits,
                    estimate,
                })
                .await?;
            // No await between admission and this line: the ticket is either on the meter (settled
            // when the record is made) or dropped with this future (released).
            if !ticket.is_empty() {
                meter.on_finish(Box::new(move |record| ticket.settle(record)));
            }

            let mut response = inner.call(req).await?;
            let out = response.headers_mut();
            for (name, value) in [
                ("x-ratelimit-limit-requests", requests.map(|r| r.0)),
                ("x-ratelimit-remaining-requests", requests.map(|r| r.1)),
                ("x-ratelimit-limit-tokens", tokens.map(|t| t.0)),
                ("x-ratelimit-remaining-tokens", tokens.map(|t| t.1)),
            ] {
                if let Some(value) = value {
                    out.insert(name, HeaderValue::from(value));
                }
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::{Policy, ScopedPolicy};

    fn policies(policy: Policy) -> ScopedPolicies {
        vec![ScopedPolicy {
            scope: "api_key",
            id: "k".into(),
            policy,
        }]
    }

    #[test]
    fn ip_rules_check_the_client_and_fail_closed_without_one() {
        let allow_lan = policies(Policy {
            ip_allowlist: vec!["10.0.0.0/8".into()],
            ..Policy::default()
        });
        let lan = Some("10.1.2.3".parse().unwrap());
        let outside = Some("192.0.2.1".parse().unwrap());
        assert!(check_request(&allow_lan, lan, 10, 10).is_ok());
        assert_eq!(
            check_request(&allow_lan, outside, 10, 10)
                .unwrap_err()
                .code(),
            "ip_not_allowed"
        );
        assert_eq!(
            check_request(&allow_lan, None, 10, 10).unwrap_err().code(),
            "ip_not_allowed",
            "an unknown client address must not pass an allow-list"
        );
        // Without IP rules the client address is not needed.
        assert!(check_request(&policies(Policy::default()), None, 10, 10).is_ok());
    }
}
