//! Limits on requests as a whole, applied before any route: how many are served at once, how many
//! request-body bytes are held in memory at once, how large a declared body may be, and how long a
//! body may take to arrive.
//!
//! - **In flight**: at most `max_in_flight` requests (counted until their answer's body ends, so a
//!   stream counts while it streams); beyond, 503 `overloaded`. Liveness, readiness and metrics
//!   are exempt so a saturated gateway can still be observed.
//! - **Body memory budget**: every route buffers its request body, so the bytes of request bodies
//!   being received or held are charged to one budget (`max_buffered_body_bytes`) until the answer
//!   ends: a declared `Content-Length` up front, a chunked body as it arrives. A request that does
//!   not fit is 503 `overloaded` (the body is acceptable, the gateway is busy; retry later).
//! - **Declared size**: a `Content-Length` above `max_body_bytes` is 413 `payload_too_large` at once,
//!   before a byte of the body is read.
//! - **Body read timeout**: the whole body must arrive within `body_read_timeout` of the head; a
//!   client that trickles it is answered 408 `request_timeout`.
//!
//! Refusals of an unread body close the connection (`Connection: close`), so its bytes are never
//! read.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH};
use http::HeaderValue;
use http_body::{Frame, SizeHint};
use odock_core::layers::error_response::error_response;
use odock_core::{ErrorStyle, GatewayError, HttpError, RequestError};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Paths never refused for load: probes and scrapes.
const EXEMPT: &[&str] = &["/v1/health", "/v1/healthz", "/metrics"];

/// The limits and their shared counters; cheap to clone.
#[derive(Clone)]
pub struct RequestLimits {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    budget: Arc<BodyBudget>,
    max_body_bytes: usize,
    body_read_timeout: Duration,
    overloaded: Arc<AtomicU64>,
}

/// The settings of [`RequestLimits`].
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Requests served at once; beyond, 503 `overloaded`.
    pub max_in_flight: usize,
    /// Request-body bytes held in memory at once, across requests.
    pub max_buffered_body_bytes: usize,
    /// Largest declared `Content-Length`; beyond, 413 `payload_too_large`.
    pub max_body_bytes: usize,
    /// Time for a whole body to arrive after the head; beyond, 408 `request_timeout`.
    pub body_read_timeout: Duration,
}

impl RequestLimits {
    /// Limits with fresh counters.
    pub fn new(settings: LimitSettings) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            max_in_flight: settings.max_in_flight,
            budget: Arc::new(BodyBudget {
                used: AtomicUsize::new(0),
                limit: settings.max_buffered_body_bytes,
            }),
            max_body_bytes: settings.max_body_bytes,
            body_read_timeout: settings.body_read_timeout,
            overloaded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Request-body bytes charged to the budget now.
    pub fn buffered_body_bytes(&self) -> usize {
        self.budget.used.load(Ordering::Relaxed)
    }

    /// Requests refused with 503 `overloaded` so far.
    pub fn overloaded_total(&self) -> u64 {
        self.overloaded.load(Ordering::Relaxed)
    }

    fn refuse_overloaded(&self) -> Response {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
        closing(GatewayError::Overloaded)
    }
}

/// The JSON answer for `error`, closing the connection so an unread body is never read.
fn closing(error: GatewayError) -> Response {
    let mut response = error_response(&error, ErrorStyle::OpenAi).into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Middleware enforcing [`RequestLimits`].
pub async fn limits(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    if EXEMPT.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(permit) = limits.in_flight.clone().try_acquire_owned() else {
        tracing::warn!("refusing a request: too many requests in flight");
        return limits.refuse_overloaded();
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return closing(
            RequestError::PayloadTooLarge {
                limit: limits.max_body_bytes as u64,
            }
            .into(),
        );
    }
    let charge = Arc::new(Charge {
        budget: limits.budget.clone(),
        bytes: AtomicUsize::new(0),
    });
    let declared = declared.and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    if !charge.add(declared) {
        tracing::warn!(
            declared,
            "refusing a request: the request-body memory budget is spent"
        );
        return limits.refuse_overloaded();
    }
    let flags = Arc::new(BodyFlags::default());
    let request = if http_body::Body::is_end_stream(request.body()) {
        request
    } else {
        let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
        request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                deadline,
                timer: None,
                prepaid: declared,
                received: 0,
                charge: charge.clone(),
                flags: flags.clone(),
            })
        })
    };
    let response = next.run(request).await;
    if flags.timed_out.load(Ordering::Relaxed) {
        tracing::info!("request body not received in time");
        return closing(HttpError::Timeout.into());
    }
    if flags.over_budget.load(Ordering::Relaxed) {
        tracing::warn!("refusing a request: the request-body memory budget is spent");
        return limits.refuse_overloaded();
    }
    response.map(|body| {
        Body::new(Holding {
            inner: body,
            _held: (permit, charge),
        })
    })
}

/// The process-wide count of request-body bytes held.
struct BodyBudget {
    used: AtomicUsize,
    limit: usize,
}

/// One request's share of the budget, returned when the request is done.
struct Charge {
    budget: Arc<BodyBudget>,
    bytes: AtomicUsize,
}

impl Charge {
    /// Charges `n` more bytes; `false` (and nothing charged) when the budget cannot hold them.
    fn add(&self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let limit = self.budget.limit;
        let charged = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= limit)
            })
            .is_ok();
        if charged {
            self.bytes.fetch_add(n, Ordering::Relaxed);
        }
        charged
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        self.budget.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct BodyFlags {
    timed_out: AtomicBool,
    over_budget: AtomicBool,
}

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
enum BodyLimitError {
    #[error("the request body was not received in time")]
    Timeout,
    #[error("the gateway is holding too many request bodies")]
    OverBudget,
}

pin_project! {
    /// The request body, with its read deadline and its charge to the memory budget.
    struct LimitedBody {
        #[pin]
        inner: Body,
        deadline: tokio::time::Instant,
        // Armed on the first wait: most bodies are already buffered when first read.
        timer: Option<Pin<Box<Sleep>>>,
        // Bytes the declared length already charged.
        prepaid: usize,
        received: usize,
        charge: Arc<Charge>,
        flags: Arc<BodyFlags>,
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let before = *this.received;
                    *this.received = before.saturating_add(data.len());
                    let unpaid = (*this.received).saturating_sub((*this.prepaid).max(before));
                    if !this.charge.add(unpaid) {
                        this.flags.over_budget.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(axum::Error::new(
                            BodyLimitError::OverBudget,
                        ))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let deadline = *this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(timer.as_mut().poll(cx));
                this.flags.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(BodyLimitError::Timeout))))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The response body, holding the request's in-flight permit and memory charge until it ends.
    struct Holding {
        #[pin]
        inner: Body,
        _held: (OwnedSemaphorePermit, Arc<Charge>),
    }
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_charges_all_or_nothing_and_returns_on_drop() {
        let budget = Arc::new(BodyBudget {
            used: AtomicUsize::new(0),
            limit: 100,
        });
        let a = Charge {
            budget: budget.clone(),
            bytes: AtomicUsize::new(0),
        };
        assert!(a.add(60));
        let b = Charge {
            budget: budget.clone(),
            bytes: AtomicUsize::new(0),
        };
        assert!(!b.add(41));
        assert!(b.add(40));
        assert_eq!(budget.used.load(Ordering::Relaxed), 100);
        drop(a);
        assert_eq!(budget.used.load(Ordering::Relaxed), 40);
        drop(b);
        assert_eq!(budget.used.load(Ordering::Relaxed), 0);
    }
}
