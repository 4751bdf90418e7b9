//! One accepted connection: the socket wrapper ([`GuardedIo`]) that closes connections a client
//! holds without sending a request, and answers hyper's own refusals with JSON; and the service
//! wrapper ([`ConnectionService`]) that tells it which requests are in flight.
//!
//! Timeouts, all measured while no request of the connection is in flight (a streaming answer
//! may run as long as it likes; request bodies have their own timeout in `routes::limits`):
//! - **header read**: a request head must arrive whole within this time of the connection
//!   opening or of its first byte; a partial head is answered 408 `request_timeout`;
//! - **keep-alive idle**: a connection with no request in flight and no byte received for this
//!   long is closed.
//!
//! hyper's own `header_read_timeout` is not used: it starts when the connection goes idle, so it
//! cannot tell an idle keep-alive connection from a slow head.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::{Buf, Bytes};
use http::{Method, Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use parking_lot::Mutex;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::rewrite::{self, Calls, Out, Unfollowable};

/// The connection timeouts (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    /// Time for a request head to arrive, once started (or from the connection's opening).
    pub header_read: Duration,
    /// Idle time between requests before the connection is closed.
    pub keep_alive: Duration,
}

/// What the socket wrapper and the service wrapper of one connection share.
#[derive(Debug)]
pub struct ConnectionState {
    calls: Calls,
    timing: Mutex<Timing>,
}

#[derive(Debug)]
struct Timing {
    in_flight: usize,
    /// When the head being received started (the connection's opening, then its first byte).
    head_started: Option<Instant>,
    /// Whether any byte of that head arrived.
    head_bytes: bool,
    idle_since: Instant,
}

/// Why the socket wrapper gave up on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Head { partial: bool },
    Idle,
}

impl ConnectionState {
    /// The state of a connection just opened.
    pub fn new() -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            calls: Calls::default(),
            timing: Mutex::new(Timing {
                in_flight: 0,
                head_started: Some(now),
                head_bytes: false,
                idle_since: now,
            }),
        })
    }

    fn request_started(&self, is_head: bool) {
        self.calls.push(is_head);
        let mut timing = self.timing.lock();
        timing.in_flight += 1;
        timing.head_started = None;
        timing.head_bytes = false;
    }

    fn request_finished(&self) {
        let mut timing = self.timing.lock();
        timing.in_flight = timing.in_flight.saturating_sub(1);
        if timing.in_flight == 0 {
            timing.idle_since = Instant::now();
            timing.head_started = None;
            timing.head_bytes = false;
        }
    }

    fn bytes_read(&self) {
        let mut timing = self.timing.lock();
        if timing.in_flight == 0 {
            if timing.head_started.is_none() {
                timing.head_started = Some(Instant::now());
            }
            timing.head_bytes = true;
        }
    }

    fn deadline(&self, timeouts: &ConnectionTimeouts) -> Option<(Instant, Expiry)> {
        let timing = self.timing.lock();
        if timing.in_flight > 0 {
            return None;
        }
        Some(match timing.head_started {
            Some(started) => (
                started + timeouts.header_read,
                Expiry::Head {
                    partial: timing.head_bytes,
                },
            ),
            None => (timing.idle_since + timeouts.keep_alive, Expiry::Idle),
        })
    }
}

/// The accepted socket, watched (see the module doc).
pub struct GuardedIo<T> {
    inner: T,
    state: Arc<ConnectionState>,
    timeouts: ConnectionTimeouts,
    timer: Option<Pin<Box<Sleep>>>,
    timer_deadline: Option<Instant>,
    /// Set once a timeout closed the connection: reads see the end of the stream.
    expired: bool,
    out: Out,
    /// Bytes accepted from hyper and not yet written to the socket.
    owed: Bytes,
}

impl<T> GuardedIo<T> {
    /// Wraps the socket `inner` of the connection sharing `state`.
    pub fn new(inner: T, state: Arc<ConnectionState>, timeouts: ConnectionTimeouts) -> Self {
        Self {
            inner,
            state,
            timeouts,
            timer: None,
            timer_deadline: None,
            expired: false,
            out: Out::Head(Vec::new()),
            owed: Bytes::new(),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> GuardedIo<T> {
    /// Arms the timer for the current deadline and reports whether it has passed.
    fn poll_expiry(&mut self, cx: &mut Context<'_>) -> Poll<Expiry> {
        loop {
            let Some((deadline, expiry)) = self.state.deadline(&self.timeouts) else {
                return Poll::Pending;
            };
            if self.timer_deadline != Some(deadline) {
                match &mut self.timer {
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                self.timer_deadline = Some(deadline);
            }
            let Some(timer) = &mut self.timer else {
                return Poll::Pending;
            };
            ready!(timer.as_mut().poll(cx));
            // The deadline may have moved while the timer ran (a request started or ended).
            if self.state.deadline(&self.timeouts).map(|(d, _)| d) == Some(deadline) {
                return Poll::Ready(expiry);
            }
        }
    }

    /// Stops following the connection for good.
    fn pass_through(&mut self) {
        self.out = Out::Passthrough;
        self.state.calls.stop();
    }

    /// hyper flushes whole heads; a partial one at a flush is not what this tracker expects, so
    /// it is sent as it is and the connection is no longer followed.
    fn give_up_partial_head(&mut self) {
        if let Out::Head(acc) = &mut self.out {
            if !acc.is_empty() {
                let mut owed = std::mem::take(&mut self.owed).to_vec();
                owed.extend_from_slice(acc);
                self.owed = Bytes::from(owed);
                self.pass_through();
            }
        }
    }

    /// Writes what hyper handed over and the socket has not taken yet.
    fn poll_owed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.owed.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.owed))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.owed.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// The 408 for a head that did not arrive in time, written straight to the socket when
    /// nothing else is being written (best effort: the connection closes either way).
    fn answer_head_timeout(&mut self, cx: &mut Context<'_>) {
        let idle_output =
            matches!(&self.out, Out::Head(acc) if acc.is_empty()) && self.owed.is_empty();
        if idle_output {
            let answer = rewrite::json_answer(408);
            let _ = Pin::new(&mut self.inner).poll_write(cx, &answer);
            let _ = Pin::new(&mut self.inner).poll_flush(cx);
        }
    }

    fn write_tracked(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_owed(cx))?;
            match &mut self.out {
                Out::Passthrough => return Pin::new(&mut self.inner).poll_write(cx, buf),
                Out::Body(framing) => {
                    let span = match framing.span(buf) {
                        Ok(0) => {
                            self.out = Out::Head(Vec::new());
                            continue;
                        }
                        Ok(span) => span,
                        Err(Unfollowable) => {
                            self.pass_through();
                            continue;
                        }
                    };
                    let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..span]))?;
                    match framing.consume(&buf[..n]) {
                        Ok(true) => self.out = Out::Head(Vec::new()),
                        Ok(false) => {}
                        Err(Unfollowable) => self.pass_through(),
                    }
                    return Poll::Ready(Ok(n));
                }
                Out::Head(acc) => {
                    if buf.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    let scanned = acc.len();
                    acc.extend_from_slice(buf);
                    let not_http = acc.len() >= 5 && !acc.starts_with(b"HTTP/");
                    let end = rewrite::head_end(acc, scanned);
                    match end {
                        Some(end) => {
                            let taken = end - scanned;
                            acc.truncate(end);
                            let head = std::mem::take(acc);
                            let (bytes, next) = rewrite::decide(head, &self.state.calls);
                            self.owed = bytes;
                            if matches!(next, Out::Passthrough) {
                                self.pass_through();
                            } else {
                                self.out = next;
                            }
                            // Start writing now; what the socket refuses waits for the flush.
                            if let Poll::Ready(Err(error)) = self.poll_owed(cx) {
                                return Poll::Ready(Err(error));
                            }
                            return Poll::Ready(Ok(taken));
                        }
                        None if not_http || acc.len() > rewrite::MAX_TRACKED_HEAD => {
                            // HTTP/2 frames, or something we will not follow: pass it all on.
                            self.owed = Bytes::from(std::mem::take(acc));
                            self.pass_through();
                            if let Poll::Ready(Err(error)) = self.poll_owed(cx) {
                                return Poll::Ready(Err(error));
                            }
                            return Poll::Ready(Ok(buf.len()));
                        }
                        None => return Poll::Ready(Ok(buf.len())),
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                let expiry = ready!(this.poll_expiry(cx));
                this.expired = true;
                match expiry {
                    Expiry::Head { partial: true } => {
                        tracing::debug!(
                            "closing a connection whose request head did not arrive in time"
                        );
                        this.answer_head_timeout(cx);
                    }
                    Expiry::Head { partial: false } | Expiry::Idle => {
                        tracing::trace!("closing an idle connection");
                    }
                }
                // The end of the stream: hyper closes the connection.
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_tracked(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.give_up_partial_head();
        ready!(this.poll_owed(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.give_up_partial_head();
        ready!(this.poll_owed(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The router as one connection's hyper service: adds the peer address, and tells the
/// connection's [`ConnectionState`] when each request starts and when its answer is done.
#[derive(Clone)]
pub struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    state: Arc<ConnectionState>,
}

impl ConnectionService {
    /// The service of the connection from `peer` sharing `state`.
    pub fn new(router: Router, peer: SocketAddr, state: Arc<ConnectionState>) -> Self {
        Self {
            router,
            peer,
            state,
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        self.state.request_started(request.method() == Method::HEAD);
        let done = InFlight(self.state.clone());
        let answer = self.router.clone().oneshot(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| {
                Body::new(UntilDone {
                    inner: body,
                    _done: done,
                })
            }))
        })
    }
}

/// Ends the request's in-flight period when dropped (answer finished, or abandoned).
struct InFlight(Arc<ConnectionState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project! {
    /// A response body that holds something until it ends or is dropped.
    struct UntilDone<T> {
        #[pin]
        inner: Body,
        _done: T,
    }
}

impl<T> http_body::Body for UntilDone<T> {
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::rewrite::Framing;
    use super::*;

    /// Feeds `writes` through a tracker over an in-memory pipe and returns what came out.
    async fn through(calls: &[bool], writes: &[&[u8]]) -> String {
        let (client, server) = tokio::io::duplex(1 << 16);
        let state = ConnectionState::new();
        for is_head in calls {
            state.calls.push(*is_head);
        }
        let timeouts = ConnectionTimeouts {
            header_read: Duration::from_secs(60),
            keep_alive: Duration::from_secs(60),
        };
        let mut io = GuardedIo::new(server, state, timeouts);
        for write in writes {
            io.write_all(write).await.unwrap();
        }
        io.shutdown().await.unwrap();
        drop(io);
        let mut out = String::new();
        let mut client = client;
        client.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn app_answers_pass_untouched_and_hyper_answers_become_json() {
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nHTTP\r\n0\r\n\r\n";
        let hyper_400 =
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let out = through(
            &[false],
            &[
                &chunked.as_bytes()[..30],
                &chunked.as_bytes()[30..],
                hyper_400.as_bytes(),
            ],
        )
        .await;
        let (app, refused) = out.split_at(chunked.len());
        assert_eq!(app, chunked);
        assert!(
            refused.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json"),
            "{refused}"
        );
        assert!(refused.ends_with("\"code\":\"malformed_request\",\"message\":\"the request is not valid HTTP\",\"type\":\"invalid_request_error\"}}"), "{refused}");
    }

    #[tokio::test]
    async fn bodies_that_look_like_heads_are_left_alone() {
        let body = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let out = through(&[false], &[answer.as_bytes()]).await;
        assert_eq!(out, answer);
        // After a HEAD answer the next bytes are a new head.
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n";
        let hyper_431 = "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let out = through(&[true], &[head.as_bytes(), hyper_431.as_bytes()]).await;
        assert!(out.starts_with(head));
        assert!(out.contains("\"code\":\"headers_too_large\""), "{out}");
    }

    #[tokio::test]
    async fn http2_is_passed_through_and_its_calls_are_not_recorded() {
        let frames: &[u8] = b"\x00\x00\x12\x04\x00\x00\x00\x00\x00HTTP/1.1 400 x\r\n\r\n";
        let out = through(&[], &[frames]).await;
        assert_eq!(out.as_bytes(), frames);

        let (_client, server) = tokio::io::duplex(1 << 16);
        let state = ConnectionState::new();
        let timeouts = ConnectionTimeouts {
            header_read: Duration::from_secs(60),
            keep_alive: Duration::from_secs(60),
        };
        let mut io = GuardedIo::new(server, state.clone(), timeouts);
        io.write_all(frames).await.unwrap();
        io.flush().await.unwrap();
        assert!(state.calls.is_stopped());
        state.request_started(false);
        assert!(state.calls.is_stopped());
    }

    #[test]
    fn framing_span_stops_at_the_end() {
        let framing = Framing::Length(3);
        assert_eq!(framing.span(b"abcdef"), Ok(3));
    }
}
