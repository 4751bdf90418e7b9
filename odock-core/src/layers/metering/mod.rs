//! MeteringService: opens a [`Meter`] for every authenticated request and guarantees that exactly one usage
//! record is enqueued for it — with the gateway error when the request is refused, and otherwise
//! when the response body ends **or is dropped** (client abort), so nothing goes unrecorded and
//! nothing is written on the hot path.
//!
//! Needs [`Principal`] (auth layer) and [`RequestId`] before it.
//! Leaves the [`Meter`] in the request extensions: resolution adds the model, the provider dispatch
//! adds upstream timing and usage, and later ledgers register settlement hooks with
//! [`Meter::on_finish`].

mod body;
mod meter;

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower::{Layer, Service};

pub use body::MeteredBody;
pub use meter::{FinishHook, Meter, Outcome};

use crate::body::GatewayBody;
use crate::endpoint::Endpoint;
use crate::error::GatewayError;
use crate::ids::RequestId;
use crate::layers::request_id::RequestStart;
use crate::principal::Principal;
use crate::telemetry::{incoming_trace_id, RequestTrace};
use crate::usage::UsageSink;

/// Tower layer opening a [`Meter`] for each authenticated request, so it leaves exactly one usage
/// record (see the module docs).
#[derive(Clone)]
pub struct MeteringLayer {
    sink: Arc<dyn UsageSink>,
}

impl std::fmt::Debug for MeteringLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeteringLayer")
    }
}

impl MeteringLayer {
    /// A layer enqueuing records into `sink`.
    pub fn new(sink: Arc<dyn UsageSink>) -> Self {
        Self { sink }
    }
}

impl<S> Layer<S> for MeteringLayer {
    type Service = MeteringService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeteringService {
            inner,
            sink: self.sink.clone(),
        }
    }
}

/// The service [`MeteringLayer`] wraps around the inner service.
#[derive(Clone)]
pub struct MeteringService<S> {
    inner: S,
    sink: Arc<dyn UsageSink>,
}

/// The response future of [`MeteringService`].
pub type ResponseFuture = BoxFuture<'static, Result<Response<GatewayBody>, GatewayError>>;

impl<S, B> Service<Request<B>> for MeteringService<S>
where
    S: Service<Request<B>, Response = Response<GatewayBody>, Error = GatewayError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<GatewayBody>;
    type Error = GatewayError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(principal) = req.extensions().get::<Principal>().cloned() else {
            // Unauthenticated requests are not metered (they only reach logs and metrics).
            return Box::pin(inner.call(req));
        };
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        let start = req
            .extensions()
            .get::<RequestStart>()
            .copied()
            .unwrap_or_else(RequestStart::now);
        let endpoint = req.extensions().get::<Endpoint>().copied();
        let trace = req.extensions().get::<RequestTrace>().cloned();
        let trace_id = match &trace {
            Some(trace) => {
                trace.principal(&principal);
                Some(trace.trace_id())
            }
            None => incoming_trace_id(req.headers()),
        };
        let meter = Meter::new(self.sink.clone(), request_id, principal, endpoint, start);
        if trace.is_some() || trace_id.is_some() {
            meter.set_trace(trace, trace_id);
        }
        req.extensions_mut().insert(meter.clone());
        Box::pin(async move {
            match inner.call(req).await {
                Ok(response) => {
                    meter.set_status(response.status().as_u16());
                    Ok(response.map(|body| MeteredBody::new(body, meter).boxed_unsync()))
                }
                Err(error) => {
                    meter.fail(&error);
                    Err(error)
                }
            }
        })
    }
}
