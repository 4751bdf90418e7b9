//! The listener: accepts connections and serves the router on each with hyper (HTTP/1.1 and
//! HTTP/2), with the connection guards of [`connection`] and graceful shutdown.
//!
//! This replaces `axum::serve`, which offers no header or idle timeout and lets hyper answer
//! malformed requests with an empty, non-JSON body. Limits on requests themselves (in-flight count,
//! body sizes, body read time) are the router's middleware, `routes::limits`.

pub mod connection;
pub mod rewrite;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use connection::ConnectionTimeouts;
use connection::{ConnectionService, ConnectionState, GuardedIo};

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Header-read and keep-alive timeouts.
    pub timeouts: ConnectionTimeouts,
    /// Largest request head (request line and headers) hyper reads; beyond it, 431.
    pub max_header_bytes: usize,
}

/// The smallest head limit hyper accepts.
pub const MIN_HEADER_BYTES: usize = 8_192;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits for the
/// open connections to finish (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(options.max_header_bytes.max(MIN_HEADER_BYTES));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small writes (SSE events, short JSON answers) must not wait behind Nagle + delayed ACK.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let state = ConnectionState::new();
        let io = TokioIo::new(GuardedIo::new(stream, state.clone(), options.timeouts));
        let service = ConnectionService::new(router.clone(), peer, state);
        let connection = builder.serve_connection(io, service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Accept errors are per connection (the client hung up) or resource exhaustion (too many open
/// files): log and, for the latter, back off briefly instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
