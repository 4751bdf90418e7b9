//! The innermost gateway service: hands the governed request to the model's [`Provider`](crate::Provider) and turns
//! its answer into an HTTP response, feeding upstream timing and usage into the [`Meter`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::Stream;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use serde_json::json;
use tower::Service;

use crate::admission::Admission;
use crate::body::{full, BoxError, GatewayBody};
use crate::endpoint::Endpoint;
use crate::error::{GatewayError, ProviderError, ResolveError};
use crate::ids::RequestId;
use crate::layers::metering::Meter;
use crate::layers::resolve::LlmRequest;
use crate::model::ResolvedModel;
use crate::principal::Principal;
use crate::provider::{
    ProviderBody, ProviderRegistry, ProviderRequest, ProviderResponse, StreamChunk,
};
use crate::routing::{retry_after, routed_call, CircuitBreakers, KeyPools, RoutePlan};
use crate::telemetry::{RequestTrace, TRACEPARENT};
use opentelemetry::KeyValue;

/// Calls the provider registered for the resolved model's provider type — or, when routing left
/// a [`RoutePlan`], makes the plan's attempts (see [`crate::routing`]).
#[derive(Clone)]
pub struct ProviderService {
    providers: Arc<ProviderRegistry>,
    breakers: Option<Arc<CircuitBreakers>>,
    pools: Option<Arc<KeyPools>>,
    admission: Option<Arc<dyn Admission>>,
}

impl std::fmt::Debug for ProviderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderService")
            .field("providers", &self.providers)
            .field("breakers", &self.breakers)
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

impl ProviderService {
    /// A dispatcher over `providers`, without routing, breakers or key pools.
    pub fn new(providers: Arc<ProviderRegistry>) -> Self {
        Self {
            providers,
            breakers: None,
            pools: None,
            admission: None,
        }
    }

    /// Routed attempts on another model than the requested one count against that model's own
    /// rate limits through `admission` (the one the admission layer uses).
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// Rotates the keys of pooled models (see [`KeyPools`]).
    pub fn with_key_pools(mut self, pools: Arc<KeyPools>) -> Self {
        self.pools = Some(pools);
        self
    }

    /// Routed attempts consult and feed `breakers` (requests without a plan never do).
    pub fn with_breakers(mut self, breakers: Arc<CircuitBreakers>) -> Self {
        self.breakers = Some(breakers);
        self
    }
}

/// What every attempt of one request shares.
pub(crate) struct CallContext {
    pub(crate) endpoint: Endpoint,
    pub(crate) body: Bytes,
    pub(crate) content_type: Option<http::HeaderValue>,
    pub(crate) query: Option<String>,
    pub(crate) stream: bool,
    pub(crate) client_wants_usage: bool,
    pub(crate) request_id: RequestId,
    pub(crate) meter: Option<Meter>,
    pub(crate) trace: Option<RequestTrace>,
    /// The client's own `traceparent`, passed through when tracing is off.
    pub(crate) client_traceparent: Option<http::HeaderValue>,
}

impl CallContext {
    /// The provider request for one attempt on `model`; opens the attempt's upstream span.
    pub(crate) fn request(&self, model: Arc<ResolvedModel>) -> ProviderRequest {
        let traceparent = match &self.trace {
            Some(trace) => {
                trace.upstream_started(
                    self.endpoint.gen_ai_operation(),
                    &model.name,
                    vec![
                        KeyValue::new("gen_ai.operation.name", self.endpoint.gen_ai_operation()),
                        KeyValue::new(
                            "gen_ai.provider.name",
                            model.provider.provider_type.family(),
                        ),
                        KeyValue::new("gen_ai.request.model", model.name.clone()),
                        KeyValue::new("gen_ai.response.model", model.slug.clone()),
                        KeyValue::new("odock.stream", self.stream),
                    ],
                );
                trace.upstream_traceparent()
            }
            None => self.client_traceparent.clone(),
        };
        ProviderRequest {
            endpoint: self.endpoint,
            model,
            body: self.body.clone(),
            content_type: self.content_type.clone(),
            query: self.query.clone(),
            stream: self.stream,
            client_wants_usage: self.client_wants_usage,
            request_id: self.request_id.clone(),
            traceparent,
        }
    }

    /// The upstream attempt failed before answering.
    pub(crate) fn failed(&self, error: &ProviderError) {
        if let Some(trace) = &self.trace {
            trace.upstream_failed(GatewayError::from(error.clone()).code());
        }
    }

    /// Turns `model`'s answer into the client's response, feeding the meter and the span.
    pub(crate) fn respond(
        &self,
        model: &ResolvedModel,
        answer: ProviderResponse,
    ) -> Response<GatewayBody> {
        let endpoint = self.endpoint;
        let meter = self.meter.clone();
        if let Some(trace) = &self.trace {
            trace.upstream_attributes([KeyValue::new(
                "http.response.status_code",
                i64::from(answer.status.as_u16()),
            )]);
            if !answer.status.is_success() {
                trace.upstream_failed("upstream_error");
            }
        }
        if let Some(meter) = &meter {
            meter.set_provider_request_id(answer.provider_request_id.clone());
            meter.set_status(answer.status.as_u16());
            if !answer.status.is_success() {
                meter.set_error_code("upstream_error");
            }
        }
        let family = model.provider.provider_type.family();
        let body = match answer.body {
            ProviderBody::Full { bytes, usage } => {
                if let (Some(meter), Some(usage)) = (&meter, usage) {
                    meter.record_usage(usage);
                }
                let bytes = match endpoint {
                    Endpoint::UnifiedChat if answer.status.is_success() => {
                        crate::unified::normalize_completion(family, &model.name, &bytes)
                            .unwrap_or(bytes)
                    }
                    _ => bytes,
                };
                full(bytes)
            }
            ProviderBody::Stream(chunks) => UpstreamStreamBody {
                chunks: Some(chunks),
                meter,
            }
            .boxed_unsync(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = answer.status;
        *response.headers_mut() = answer.headers;
        response
    }
}

impl Service<Request<Bytes>> for ProviderService {
    type Response = Response<GatewayBody>;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let providers = self.providers.clone();
        let breakers = self.breakers.clone();
        let pools = self.pools.clone();
        let admission = self.admission.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let missing =
                |what: &str| GatewayError::Internal(format!("provider call needs {what}"));
            let model = parts
                .extensions
                .get::<Arc<ResolvedModel>>()
                .cloned()
                .ok_or_else(|| missing("a resolved model"))?;
            let llm = parts
                .extensions
                .get::<LlmRequest>()
                .ok_or_else(|| missing("a decoded request"))?;
            let endpoint = *parts
                .extensions
                .get::<Endpoint>()
                .ok_or_else(|| missing("an endpoint"))?;
            let (stream, client_wants_usage) = (llm.stream, llm.client_wants_usage);
            let request_id = parts
                .extensions
                .get::<RequestId>()
                .cloned()
                .unwrap_or_else(RequestId::generate);
            let meter = parts.extensions.get::<Meter>().cloned();
            let trace = parts.extensions.get::<RequestTrace>().cloned();
            let plan = parts.extensions.remove::<RoutePlan>();
            let context = CallContext {
                endpoint,
                body,
                content_type: parts.headers.get(http::header::CONTENT_TYPE).cloned(),
                query: forwarded_query(parts.uri.query()),
                stream,
                client_wants_usage,
                request_id,
                meter,
                trace,
                client_traceparent: parts.headers.get(TRACEPARENT).cloned(),
            };
            if let Some(plan) = plan {
                let principal = parts.extensions.get::<Principal>();
                return routed_call(
                    &providers,
                    breakers.as_deref(),
                    pools.as_deref(),
                    (admission.as_deref(), principal),
                    &context,
                    plan,
                )
                .await;
            }

            let provider_type = model.provider.provider_type;
            let provider = providers.get(provider_type).ok_or_else(|| {
                ResolveError::ProviderTypeUnsupported(provider_type.as_str().to_owned())
            })?;
            let model = match &pools {
                Some(pools) => pools.pick(&model),
                None => model,
            };
            let request = context.request(model.clone());
            if let Some(meter) = &context.meter {
                meter.upstream_started();
            }
            match provider.call(request).await {
                Ok(answer) => {
                    if let Some(pools) = pools.as_ref().filter(|_| model.key_pool.len() > 1) {
                        let status = answer.status.as_u16();
                        pools.report(&model, status, retry_after(&answer.headers));
                    }
                    Ok(context.respond(&model, answer))
                }
                Err(error) => {
                    if let (
                        Some(pools),
                        ProviderError::Upstream {
                            status,
                            retry_after,
                            ..
                        },
                    ) = (&pools, &error)
                    {
                        pools.report(&model, *status, *retry_after);
                    }
                    context.failed(&error);
                    Err(error.into())
                }
            }
        })
    }
}

/// The client's query string without Odock's own `key` parameter (a virtual key must never travel
/// upstream).
fn forwarded_query(query: Option<&str>) -> Option<String> {
    let kept: Vec<&str> = query?
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("key"))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Relays an upstream stream to the client, recording usage and generated text as it passes. A
/// failure mid-stream ends the stream with an SSE error event rather than a broken connection.
struct UpstreamStreamBody {
    chunks: Option<BoxStream<'static, Result<StreamChunk, ProviderError>>>,
    meter: Option<Meter>,
}

impl Body for UpstreamStreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(chunks) = this.chunks.as_mut() else {
                return Poll::Ready(None);
            };
            match std::task::ready!(Pin::new(chunks).poll_next(cx)) {
                Some(Ok(chunk)) => {
                    if let Some(meter) = &this.meter {
                        meter.add_output_text_bytes(chunk.output_text_bytes);
                        if let Some(usage) = chunk.usage {
                            meter.record_usage(usage);
                        }
                    }
                    if !chunk.bytes.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(chunk.bytes))));
                    }
                }
                Some(Err(error)) => {
                    this.chunks = None;
                    let error = GatewayError::from(error);
                    tracing::warn!(code = error.code(), %error, "upstream stream failed");
                    if let Some(meter) = &this.meter {
                        meter.set_error_code(error.code());
                    }
                    let event = json!({ "error": error.error_object() });
                    let event = crate::sse::encode_data(&event.to_string());
                    return Poll::Ready(Some(Ok(Frame::data(event))));
                }
                None => {
                    this.chunks = None;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded_query;

    #[test]
    fn the_virtual_key_never_leaves_in_the_query() {
        assert_eq!(
            forwarded_query(Some("alt=sse&key=sk_secret")),
            Some("alt=sse".to_owned())
        );
        assert_eq!(forwarded_query(Some("key=sk_secret")), None);
        assert_eq!(forwarded_query(None), None);
        assert_eq!(
            forwarded_query(Some("keyword=x")),
            Some("keyword=x".to_owned())
        );
    }
}
