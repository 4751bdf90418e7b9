//! Request id: honours a valid incoming `X-Request-Id` (1–128 of `[A-Za-z0-9._:-]`), else mints one
//! (32 hex characters), and echoes it on every response.
//!
//! Needs nothing before it. Leaves [`RequestId`] and [`RequestStart`] in the request extensions for
//! every later layer. Idempotent: when an outer router already set an id, it is kept.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::{DateTime, Utc};
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::ids::RequestId;

/// The header a request id is read from and echoed in.
pub const X_REQUEST_ID: &str = "x-request-id";

/// When the gateway received the request (monotonic and wall clock).
#[derive(Debug, Clone, Copy)]
pub struct RequestStart {
    /// For latency: immune to wall-clock changes.
    pub instant: Instant,
    /// For the record's timestamps.
    pub at: DateTime<Utc>,
}

impl RequestStart {
    /// The current instant and time.
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            at: Utc::now(),
        }
    }
}

/// Tower layer giving every request an id and echoing it on the response (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service [`RequestIdLayer`] wraps around the inner service.
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, ResBody> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = match req.extensions().get::<RequestId>() {
            Some(id) => id.clone(),
            None => {
                let id = req
                    .headers()
                    .get(X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .and_then(RequestId::parse)
                    .unwrap_or_else(RequestId::generate);
                req.extensions_mut().insert(id.clone());
                id
            }
        };
        if req.extensions().get::<RequestStart>().is_none() {
            req.extensions_mut().insert(RequestStart::now());
        }
        ResponseFuture {
            inner: self.inner.call(req),
            id,
        }
    }
}

pin_project! {
    /// Sets `X-Request-Id` on the response.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: RequestId,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if !response.headers().contains_key(X_REQUEST_ID) {
            if let Ok(value) = HeaderValue::from_str(this.id.as_str()) {
                response.headers_mut().insert(X_REQUEST_ID, value);
            }
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::ServiceExt;

    async fn echo_id(req: Request<()>) -> Result<Response<String>, Infallible> {
        let id = req.extensions().get::<RequestId>().map(|id| id.to_string());
        Ok(Response::new(id.unwrap_or_default()))
    }

    #[tokio::test]
    async fn keeps_a_valid_incoming_id_and_echoes_it() {
        let svc = RequestIdLayer.layer(tower::service_fn(echo_id));
        let req = Request::builder()
            .header(X_REQUEST_ID, "client-id.1")
            .body(())
            .unwrap_or_default();
        let res = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
        assert_eq!(res.headers()[X_REQUEST_ID], "client-id.1");
        assert_eq!(res.body(), "client-id.1");
    }

    #[tokio::test]
    async fn replaces_an_invalid_id_with_a_fresh_one() {
        let svc = RequestIdLayer.layer(tower::service_fn(echo_id));
        let req = Request::builder()
            .header(X_REQUEST_ID, "bad id!")
            .body(())
            .unwrap_or_default();
        let res = svc.oneshot(req).await.unwrap_or_else(|e| match e {});
        let echoed = res.headers()[X_REQUEST_ID]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(echoed.len(), 32);
        assert_eq!(res.body(), &echoed);
    }
}
