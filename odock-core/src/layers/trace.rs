//! Tracing: opens the request's server span ([`RequestTrace`]) and ends it when the response body
//! ends or is dropped ([`TraceLayer`]); marks where each governance stage starts
//! ([`TraceStageLayer`]), so each stage is one child span that ends where the next begins (or with
//! the error that stopped the request there).
//!
//! Only in the stack when tracing is on ([`GatewayBuilder::tracing`](crate::GatewayBuilder::tracing)):
//! with tracing off there is nothing to skip. [`TraceLayer`] needs [`RequestId`] and [`Endpoint`]
//! before it and sits outside error → response, so it sees every answer's final status. It leaves
//! [`RequestTrace`] in the extensions: metering names the caller and records usage on it, the
//! provider call opens the upstream span and passes its `traceparent` upstream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tower::{Layer, Service};

use crate::body::{BoxError, GatewayBody};
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::ids::RequestId;
use crate::telemetry::{RequestTrace, Tracing};

/// Opens the server span of every request (see the module docs).
#[derive(Clone, Debug)]
pub struct TraceLayer {
    tracing: Tracing,
}

impl TraceLayer {
    /// A layer opening spans through `tracing`.
    pub fn new(tracing: Tracing) -> Self {
        Self { tracing }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService {
            inner,
            tracing: self.tracing.clone(),
        }
    }
}

/// The service [`TraceLayer`] wraps around the inner service.
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
    tracing: Tracing,
}

impl<S, B> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>, Response = Response<GatewayBody>> + Send,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<GatewayBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<GatewayBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let route = req
            .extensions()
            .get::<Endpoint>()
            .map_or("unknown", |e| e.route());
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map_or("", |id| id.as_str());
        let trace = RequestTrace::start(
            &self.tracing,
            req.method(),
            route,
            req.headers(),
            request_id,
        );
        req.extensions_mut().insert(trace.clone());
        let future = self.inner.call(req);
        Box::pin(async move {
            match future.await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    Ok(response.map(|body| TracedBody::new(body, trace, status).boxed_unsync()))
                }
                Err(error) => {
                    trace.end(500);
                    Err(error)
                }
            }
        })
    }
}

/// Ends the server span when the body ends, fails or is dropped; marks the first byte.
struct TracedBody {
    inner: GatewayBody,
    trace: RequestTrace,
    status: u16,
}

impl TracedBody {
    fn new(inner: GatewayBody, trace: RequestTrace, status: u16) -> Self {
        if inner.is_end_stream() {
            trace.end(status);
        }
        Self {
            inner,
            trace,
            status,
        }
    }
}

impl Body for TracedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_data() {
                    this.trace.first_byte();
                }
                if this.inner.is_end_stream() {
                    this.trace.end(this.status);
                }
            }
            Poll::Ready(None) => this.trace.end(this.status),
            Poll::Ready(Some(Err(_))) => this.trace.end(this.status.max(500)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TracedBody {
    fn drop(&mut self) {
        // The client went away before the end (a no-op when the span already ended).
        self.trace.end(499);
    }
}

/// Starts the span of one governance stage (`odock.auth`, `odock.resolve`, `odock.admission`) when
/// the request reaches it; the stage ends when the next one begins, or is marked failed with the
/// error that stops the request in it.
#[derive(Clone, Copy, Debug)]
pub struct TraceStageLayer {
    stage: &'static str,
}

impl TraceStageLayer {
    /// A layer starting the span of `stage` (one of the `telemetry::stage` names).
    pub const fn new(stage: &'static str) -> Self {
        Self { stage }
    }
}

impl<S> Layer<S> for TraceStageLayer {
    type Service = TraceStageService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceStageService {
            inner,
            stage: self.stage,
        }
    }
}

/// The service [`TraceStageLayer`] wraps around the inner service.
#[derive(Clone, Debug)]
pub struct TraceStageService<S> {
    inner: S,
    stage: &'static str,
}

impl<S, B> Service<Request<B>> for TraceStageService<S>
where
    S: Service<Request<B>, Error = GatewayError> + Send,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = GatewayError;
    type Future = BoxFuture<'static, Result<S::Response, GatewayError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let trace = req.extensions().get::<RequestTrace>().cloned();
        if let Some(trace) = &trace {
            trace.begin_stage(self.stage);
        }
        let future = self.inner.call(req);
        Box::pin(async move {
            let result = future.await;
            if let (Err(error), Some(trace)) = (&result, &trace) {
                trace.fail_stage(error);
            }
            result
        })
    }
}
