//! The metered response body: finishes the meter when the body reaches its end, fails, or is
//! dropped before its end (the client disconnected).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::meter::{Meter, Outcome};
use crate::body::{BoxError, GatewayBody};

/// A response body that finishes its request's [`Meter`] when it ends, fails or is dropped.
pub struct MeteredBody {
    inner: GatewayBody,
    meter: Meter,
    done: bool,
}

impl MeteredBody {
    /// Meters `inner`. A body that is already complete (empty: a 204, an MCP `DELETE`) finishes
    /// the meter at once: servers never poll such a body, they drop it, which would otherwise read
    /// as a client abort.
    pub fn new(inner: GatewayBody, meter: Meter) -> Self {
        let mut body = Self {
            inner,
            meter,
            done: false,
        };
        if body.inner.is_end_stream() {
            body.finish(Outcome::Completed);
        }
        body
    }

    fn finish(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            self.meter.finish(outcome);
        }
    }
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.meter.add_response_bytes(data.len() as u64);
            }
        }
        match &polled {
            Poll::Ready(None) => this.finish(Outcome::Completed),
            Poll::Ready(Some(Err(_))) => this.finish(Outcome::ClientAborted),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                this.finish(Outcome::Completed)
            }
            _ => {}
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

impl Drop for MeteredBody {
    fn drop(&mut self) {
        self.finish(Outcome::ClientAborted);
    }
}
