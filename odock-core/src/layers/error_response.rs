//! Error → response: the one place where a typed [`GatewayError`] becomes an HTTP response with the
//! JSON body `{"error":{"code","message","type",…}}` (plus top-level `"type":"error"` on
//! Anthropic-style routes) and a `Retry-After` header when the error carries one.
//!
//! Needs the request id layer outside it (so error responses carry `X-Request-Id`). Reads the
//! [`Endpoint`] extension, when present, to pick the error style.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use serde_json::json;
use tower::{Layer, Service};

use crate::body::{full, GatewayBody};
use crate::endpoint::{Endpoint, ErrorStyle};
use crate::error::{retry_after_secs, GatewayError};

#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorResponseLayer;

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponse<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponse { inner }
    }
}

#[derive(Debug, Clone)]
pub struct ErrorResponse<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for ErrorResponse<S>
where
    S: Service<Request<B>, Response = Response<GatewayBody>, Error = GatewayError>,
{
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // An inner service that cannot become ready is an overloaded gateway, not a dead one.
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                tracing::error!(%error, "gateway service failed to become ready");
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let style = req
            .extensions()
            .get::<Endpoint>()
            .map_or(ErrorStyle::OpenAi, |e| e.error_style());
        ResponseFuture {
            inner: self.inner.call(req),
            style,
        }
    }
}

pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        style: ErrorStyle,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<GatewayBody>, GatewayError>>,
{
    type Output = Result<Response<GatewayBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match std::task::ready!(this.inner.poll(cx)) {
            Ok(response) => Poll::Ready(Ok(response)),
            Err(error) => Poll::Ready(Ok(error_response(&error, *this.style))),
        }
    }
}

/// Renders `error` as the gateway's JSON error response.
pub fn error_response(error: &GatewayError, style: ErrorStyle) -> Response<GatewayBody> {
    let status = error.status();
    if status.is_server_error() {
        tracing::warn!(code = error.code(), %error, "request failed");
    } else {
        tracing::debug!(code = error.code(), %error, "request denied");
    }
    let body = match style {
        ErrorStyle::OpenAi => json!({ "error": error.error_object() }),
        ErrorStyle::Anthropic => json!({ "type": "error", "error": error.error_object() }),
    };
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(retry_after) = error.retry_after() {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(retry_after)),
        );
    }
    response
}
