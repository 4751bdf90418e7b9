//! The attempt loop of a routed request: each attempt on the plan's next model, the next one only
//! when the failure matches one of the policy's triggers.
//!
//! - An Odock refusal (a translation the target cannot express, the egress policy, an unknown
//!   provider type) ends the request: it is not an upstream failure.
//! - A stream counts as answered once its first chunk arrived: a failure before it (a connection
//!   closed before the first event) may fail over, one after it reaches the client as the
//!   stream's error event, as without routing.
//! - An attempt on another model than the requested one first counts against that model's own
//!   rate limits (once per request and model); a model whose limit is exhausted is skipped
//!   (`model_rate_limited`), and when no attempt could be made the client gets the refusal.
//! - The meter gets the answering model (priced at its rates: failed attempts reported no usage)
//!   and the `routing` object listing every attempt; gateway overhead ends at the first attempt.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use http::Response;
use serde_json::{json, Value};

use super::breaker::{BreakerKey, CircuitBreakers};
use super::layer::{ModelLimits, RoutePlan};
use super::policy::{RoutingPolicy, Trigger};
use super::pool::{retry_after, KeyPools};
use crate::admission::{Admission, AdmissionRequest, Ticket};
use crate::body::GatewayBody;
use crate::dispatch::CallContext;
use crate::error::{GatewayError, ProviderError, ResolveError};
use crate::ids::ModelId;
use crate::model::ResolvedModel;
use crate::principal::Principal;
use crate::provider::{ProviderBody, ProviderRegistry, ProviderResponse};

/// How an attempt failed, as the triggers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Status ≥ 500 or no connection.
    ServerError,
    Timeout,
    /// 429, or an error body about a rate limit.
    RateLimit,
    /// Any other upstream failure (a 4xx, an unusable answer).
    Other,
}

impl Failure {
    fn trigger(self) -> Trigger {
        match self {
            Failure::ServerError => Trigger::ServerError,
            Failure::Timeout => Trigger::Timeout,
            Failure::RateLimit => Trigger::RateLimit,
            Failure::Other => Trigger::Any,
        }
    }

    /// Whether the upstream looks unhealthy (what circuit breakers count).
    fn unhealthy(self) -> bool {
        matches!(self, Failure::ServerError | Failure::Timeout)
    }
}

fn mentions_rate_limit(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("rate_limit") || lower.contains("rate limit")
}

fn classify_status(status: u16, body: &[u8]) -> Failure {
    if status >= 500 {
        Failure::ServerError
    } else if status == 429 || mentions_rate_limit(&String::from_utf8_lossy(body)) {
        Failure::RateLimit
    } else {
        Failure::Other
    }
}

/// `None`: not an upstream failure, never retried.
fn classify_error(error: &ProviderError) -> Option<Failure> {
    match error {
        ProviderError::Timeout(_) => Some(Failure::Timeout),
        ProviderError::Unreachable(_) => Some(Failure::ServerError),
        ProviderError::Upstream {
            status, message, ..
        } => Some(classify_status(*status, message.as_bytes())),
        ProviderError::InvalidResponse(_) | ProviderError::ResponseTooLarge { .. } => {
            Some(Failure::Other)
        }
        ProviderError::Forbidden(_)
        | ProviderError::UnsupportedEndpoint
        | ProviderError::InvalidRequest(_) => None,
    }
}

fn retryable(policy: &RoutingPolicy, failure: Option<Failure>) -> bool {
    failure.is_some_and(|f| policy.triggers_on(f.trigger()))
}

fn breaker_keys(model: &ResolvedModel) -> [Option<BreakerKey>; 2] {
    [
        Some(BreakerKey::Provider(model.provider.id.clone())),
        model
            .provider_key
            .as_ref()
            .map(|k| BreakerKey::ProviderKey(k.id.clone())),
    ]
}

fn record_health(
    breakers: Option<&CircuitBreakers>,
    model: &ResolvedModel,
    failure: Option<(Failure, &str)>,
) {
    let Some(breakers) = breakers else { return };
    let settings = breakers.settings().for_provider(&model.provider);
    for key in breaker_keys(model).iter().flatten() {
        match failure {
            Some((failure, error)) if failure.unhealthy() => {
                breakers.record_failure_with(key, error, settings)
            }
            _ => breakers.record_success(key),
        }
    }
}

/// Waits for a successful stream's first chunk: an error before it is the attempt's failure.
async fn first_chunk(answer: ProviderResponse) -> Result<ProviderResponse, ProviderError> {
    let ProviderResponse {
        status,
        headers,
        body,
        provider_request_id,
    } = answer;
    let body = match body {
        ProviderBody::Stream(mut chunks) => match chunks.next().await {
            Some(Err(error)) => return Err(error),
            first => ProviderBody::Stream(futures::stream::iter(first).chain(chunks).boxed()),
        },
        full => full,
    };
    Ok(ProviderResponse {
        status,
        headers,
        body,
        provider_request_id,
    })
}

struct Attempts {
    list: Vec<Value>,
}

impl Attempts {
    fn push(
        &mut self,
        model: &ResolvedModel,
        success: bool,
        status: Option<u16>,
        error: Option<&str>,
        started: Option<Instant>,
    ) {
        self.list.push(json!({
            "modelId": model.id,
            "model": model.name,
            "provider": model.provider.provider_type.family(),
            "providerId": model.provider.id,
            "outcome": if success { "success" } else { "failed" },
            "status": status,
            "error": error,
            "latencyMs": started.map_or(0, |t| t.elapsed().as_millis() as u64),
        }));
    }

    /// Hands the answering (or last tried) model and the attempts to the meter.
    fn finish(self, context: &CallContext, plan: &RoutePlan, model: &Arc<ResolvedModel>) {
        let Some(meter) = &context.meter else { return };
        let rerouted = self.list.len() > 1;
        meter.set_model(model.clone());
        meter.set_routing(json!({
            "strategy": plan.policy.strategy.as_str(),
            "rerouted": rerouted,
            "attempts": self.list,
        }));
    }
}

/// Counts attempted models against their own rate limits: each model once per request, its
/// ticket held until the request ends (settled with the record when that model answered,
/// released otherwise).
struct ModelAdmissions<'a> {
    admission: Option<&'a dyn Admission>,
    principal: Option<&'a Principal>,
    admitted: Vec<(ModelId, Ticket)>,
    /// The last refusal, answered when no attempt could be made.
    refused: Option<GatewayError>,
}

impl ModelAdmissions<'_> {
    /// `Ok(false)`: `model`'s own rate limit refuses the attempt.
    async fn admit(
        &mut self,
        context: &CallContext,
        own: Option<&ModelLimits>,
    ) -> Result<bool, GatewayError> {
        let (Some(own), Some(admission), Some(principal)) = (own, self.admission, self.principal)
        else {
            return Ok(true);
        };
        if self.admitted.iter().any(|(id, _)| *id == own.model_id) {
            return Ok(true);
        }
        match admission
            .admit_rates(AdmissionRequest {
                principal,
                request_id: &context.request_id,
                limits: &own.limits,
                estimate: own.estimate,
            })
            .await
        {
            Ok(admitted) => {
                self.admitted.push((own.model_id.clone(), admitted.ticket));
                Ok(true)
            }
            Err(refusal @ GatewayError::RateLimit(_)) => {
                self.refused = Some(refusal);
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }

    /// The answering model's ticket is settled with the usage record.
    fn answered(&mut self, context: &CallContext, model: &ResolvedModel) {
        let Some(at) = self.admitted.iter().position(|(id, _)| *id == model.id) else {
            return;
        };
        let (_, ticket) = self.admitted.swap_remove(at);
        if let (Some(meter), false) = (&context.meter, ticket.is_empty()) {
            meter.on_finish(Box::new(move |record| ticket.settle(record)));
        }
    }
}

/// Makes the plan's attempts; answers with the first success, or the last failure.
/// `admission` and `principal` count attempted models against their own rate limits.
pub(crate) async fn routed_call(
    providers: &ProviderRegistry,
    breakers: Option<&CircuitBreakers>,
    pools: Option<&KeyPools>,
    (admission, principal): (Option<&dyn Admission>, Option<&Principal>),
    context: &CallContext,
    plan: RoutePlan,
) -> Result<Response<GatewayBody>, GatewayError> {
    let mut model_admissions = ModelAdmissions {
        admission,
        principal,
        admitted: Vec::new(),
        refused: None,
    };
    let total = plan.attempts.len();
    let delay = plan.retry_delay();
    let mut attempts = Attempts {
        list: Vec::with_capacity(total),
    };
    let mut last: Option<(Arc<ResolvedModel>, Result<ProviderResponse, ProviderError>)> = None;
    let mut upstream_started = false;
    for (i, planned) in plan.attempts.iter().enumerate() {
        let is_last = i + 1 == total;
        let picked = pools.map(|pools| pools.pick(planned));
        let model = picked.as_ref().unwrap_or(planned);
        if i > 0 && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(breakers) = breakers {
            let settings = breakers.settings().for_provider(&model.provider);
            let open = breaker_keys(model)
                .iter()
                .flatten()
                .any(|key| !breakers.try_acquire_with(key, settings));
            if open {
                attempts.push(model, false, None, Some("circuit_open"), None);
                continue;
            }
        }
        let own = plan.model_limits.iter().find(|m| m.model_id == model.id);
        if !model_admissions.admit(context, own).await? {
            attempts.push(model, false, Some(429), Some("model_rate_limited"), None);
            continue;
        }
        let provider_type = model.provider.provider_type;
        let Some(provider) = providers.get(provider_type) else {
            attempts.finish(context, &plan, model);
            return Err(
                ResolveError::ProviderTypeUnsupported(provider_type.as_str().to_owned()).into(),
            );
        };
        let request = context.request(model.clone());
        if !upstream_started {
            upstream_started = true;
            if let Some(meter) = &context.meter {
                meter.upstream_started();
            }
        }
        let started = Instant::now();
        let result = match provider.call(request).await {
            Ok(answer) if answer.status.is_success() => first_chunk(answer).await,
            other => other,
        };
        if let Some(pools) = pools {
            match &result {
                Ok(answer) => {
                    pools.report(model, answer.status.as_u16(), retry_after(&answer.headers))
                }
                Err(ProviderError::Upstream {
                    status,
                    retry_after,
                    ..
                }) => pools.report(model, *status, *retry_after),
                Err(_) => {}
            }
        }
        match result {
            Ok(answer) if answer.status.is_success() => {
                record_health(breakers, model, None);
                model_admissions.answered(context, model);
                attempts.push(
                    model,
                    true,
                    Some(answer.status.as_u16()),
                    None,
                    Some(started),
                );
                attempts.finish(context, &plan, model);
                return Ok(context.respond(model, answer));
            }
            Ok(answer) => {
                let status = answer.status.as_u16();
                let body: &[u8] = match &answer.body {
                    ProviderBody::Full { bytes, .. } => bytes.as_ref(),
                    ProviderBody::Stream(_) => &[][..],
                };
                let failure = classify_status(status, body);
                let error = format!("upstream returned {status}");
                record_health(breakers, model, Some((failure, &error)));
                attempts.push(model, false, Some(status), Some(&error), Some(started));
                if is_last || !retryable(&plan.policy, Some(failure)) {
                    model_admissions.answered(context, model);
                    attempts.finish(context, &plan, model);
                    return Ok(context.respond(model, answer));
                }
                if let Some(trace) = &context.trace {
                    trace.upstream_failed("upstream_error");
                }
                last = Some((model.clone(), Ok(answer)));
            }
            Err(error) => {
                let failure = classify_error(&error);
                let as_gateway = GatewayError::from(error.clone());
                let (code, status) = (as_gateway.code(), as_gateway.status().as_u16());
                if let Some(failure) = failure {
                    record_health(breakers, model, Some((failure, &error.to_string())));
                }
                attempts.push(model, false, Some(status), Some(code), Some(started));
                context.failed(&error);
                if is_last || !retryable(&plan.policy, failure) {
                    attempts.finish(context, &plan, model);
                    return Err(error.into());
                }
                last = Some((model.clone(), Err(error)));
            }
        }
    }
    // The last planned attempts were skipped (open circuits, exhausted model rate limits):
    // answer with the last failure, or the refusal when no attempt was made.
    match last {
        Some((model, Ok(answer))) => {
            model_admissions.answered(context, &model);
            attempts.finish(context, &plan, &model);
            Ok(context.respond(&model, answer))
        }
        Some((model, Err(error))) => {
            attempts.finish(context, &plan, &model);
            Err(error.into())
        }
        None => {
            if let Some(model) = plan.attempts.last() {
                attempts.finish(context, &plan, model);
            }
            if let Some(refusal) = model_admissions.refused {
                return Err(refusal);
            }
            Err(ProviderError::Unreachable(
                "every candidate's circuit is open; retry shortly".to_owned(),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_their_triggers() {
        assert_eq!(classify_status(500, b""), Failure::ServerError);
        assert_eq!(classify_status(429, b""), Failure::RateLimit);
        assert_eq!(
            classify_status(400, br#"{"error":{"type":"rate_limit_error"}}"#),
            Failure::RateLimit
        );
        assert_eq!(classify_status(400, b"bad request"), Failure::Other);
        let policy = RoutingPolicy::new(
            crate::ModelType::Chat,
            super::super::Strategy::Failover,
            vec![],
        );
        assert!(retryable(&policy, Some(Failure::ServerError)));
        assert!(retryable(&policy, Some(Failure::Timeout)));
        assert!(
            !retryable(&policy, Some(Failure::Other)),
            "a 400 is not a 5xx"
        );
        assert!(!retryable(&policy, Some(Failure::RateLimit)));
        assert!(!retryable(&policy, None));
        assert_eq!(
            classify_error(&ProviderError::InvalidRequest("no tools".into())),
            None,
            "Odock's own refusals are never retried"
        );
    }
}
