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

/// Tower layer turning every [`GatewayError`] into its JSON error response (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorResponseLayer;

impl<S> Layer<S> for ErrorResponseLayer {
    type Service = ErrorResponseService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorResponseService {
            inner,
            not_ready: None,
        }
    }
}

/// The service [`ErrorResponseLayer`] wraps around the inner service; it never fails.
#[derive(Debug, Clone)]
pub struct ErrorResponseService<S> {
    inner: S,
    /// The inner service failed to become ready: the next call answers this error instead of
    /// calling it (tower forbids calling a service that is not ready).
    not_ready: Option<GatewayError>,
}

impl<S, B> Service<Request<B>> for ErrorResponseService<S>
where
    S: Service<Request<B>, Response = Response<GatewayBody>, Error = GatewayError>,
{
    type Response = Response<GatewayBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        // An inner service that cannot become ready is an overloaded gateway, not a dead one: the
        // request it was polled for is answered with the error, and the inner service is polled
        // afresh for the next one.
        match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                tracing::error!(%error, "gateway service failed to become ready");
                self.not_ready = Some(error);
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
        let state = match self.not_ready.take() {
            Some(error) => State::NotReady { error: Some(error) },
            None => State::Called {
                inner: self.inner.call(req),
            },
        };
        ResponseFuture { state, style }
    }
}

pin_project! {
    /// The response future of [`ErrorResponseService`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        style: ErrorStyle,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] inner: F },
        NotReady { error: Option<GatewayError> },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<GatewayBody>, GatewayError>>,
{
    type Output = Result<Response<GatewayBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = match this.state.project() {
            StateProj::Called { inner } => std::task::ready!(inner.poll(cx)),
            StateProj::NotReady { error } => Err(error
                .take()
                .unwrap_or_else(|| GatewayError::Internal("polled after completion".into()))),
        };
        Poll::Ready(Ok(match outcome {
            Ok(response) => response,
            Err(error) => error_response(&error, *this.style),
        }))
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

#[cfg(test)]
mod tests {
    use tower::Service;
    use tower_test::mock;

    use super::*;

    /// tower forbids calling a service that did not report ready: an inner readiness failure is
    /// answered as an error response without calling the inner service.
    #[tokio::test]
    async fn an_inner_readiness_failure_is_answered_without_calling_the_inner_service() {
        let (service, mut handle) = mock::pair::<Request<()>, Response<GatewayBody>>();
        let mut service = ErrorResponseService {
            inner: tower::util::MapErr::new(service, |_| {
                GatewayError::Internal("inner service broke".into())
            }),
            not_ready: None,
        };
        handle.send_error("broken");
        let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
        assert!(ready.is_ok());
        // The mock panics if it is called without having reported ready.
        let response = service.call(Request::new(())).await.unwrap();
        assert_eq!(response.status(), 500);
    }
}
