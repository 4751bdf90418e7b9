//! The innermost gateway service: hands the governed request to the model's [`Provider`] and turns
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

use crate::body::{full, BoxError, GatewayBody};
use crate::endpoint::Endpoint;
use crate::error::{GatewayError, ProviderError, ResolveError};
use crate::ids::RequestId;
use crate::layers::metering::Meter;
use crate::layers::resolve::LlmRequest;
use crate::model::ResolvedModel;
use crate::provider::{ProviderBody, ProviderRegistry, ProviderRequest, StreamChunk};
use crate::telemetry::{RequestTrace, TRACEPARENT};
use opentelemetry::KeyValue;

/// Calls the provider registered for the resolved model's provider type.
#[derive(Clone, Debug)]
pub struct ProviderService {
    providers: Arc<ProviderRegistry>,
}

impl ProviderService {
    pub fn new(providers: Arc<ProviderRegistry>) -> Self {
        Self { providers }
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
        Box::pin(async move {
            let (parts, body) = req.into_parts();
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
            let request_id = parts
                .extensions
                .get::<RequestId>()
                .cloned()
                .unwrap_or_else(RequestId::generate);
            let meter = parts.extensions.get::<Meter>().cloned();
            let trace = parts.extensions.get::<RequestTrace>().cloned();

            let provider_type = model.provider.provider_type;
            let provider = providers.get(provider_type).ok_or_else(|| {
                ResolveError::ProviderTypeUnsupported(provider_type.as_str().to_owned())
            })?;
            let content_type = parts.headers.get(http::header::CONTENT_TYPE).cloned();
            let query = forwarded_query(parts.uri.query());
            let family = model.provider.provider_type.family();
            let model_name = model.name.clone();
            let traceparent = match &trace {
                Some(trace) => {
                    trace.upstream_started(
                        endpoint.gen_ai_operation(),
                        &model.name,
                        vec![
                            KeyValue::new("gen_ai.operation.name", endpoint.gen_ai_operation()),
                            KeyValue::new("gen_ai.provider.name", family),
                            KeyValue::new("gen_ai.request.model", model.name.clone()),
                            KeyValue::new("gen_ai.response.model", model.slug.clone()),
                            KeyValue::new("odock.stream", llm.stream),
                        ],
                    );
                    trace.upstream_traceparent()
                }
                None => parts.headers.get(TRACEPARENT).cloned(),
            };
            let request = ProviderRequest {
                endpoint,
                model,
                body,
                content_type,
                query,
                stream: llm.stream,
                client_wants_usage: llm.client_wants_usage,
                request_id,
                traceparent,
            };
            if let Some(meter) = &meter {
                meter.upstream_started();
            }
            let answer = match provider.call(request).await {
                Ok(answer) => answer,
                Err(error) => {
                    if let Some(trace) = &trace {
                        trace.upstream_failed(GatewayError::from(error.clone()).code());
                    }
                    return Err(error.into());
                }
            };
            if let Some(trace) = &trace {
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
            let body = match answer.body {
                ProviderBody::Full { bytes, usage } => {
                    if let (Some(meter), Some(usage)) = (&meter, usage) {
                        meter.record_usage(usage);
                    }
                    let bytes = match endpoint {
                        Endpoint::UnifiedChat if answer.status.is_success() => {
                            crate::unified::normalize_completion(family, &model_name, &bytes)
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
            Ok(response)
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
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
                        "data: {event}\n\n"
                    ))))));
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
