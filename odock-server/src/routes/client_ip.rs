//! The client address the gateway's IP allow/block lists and sign-in throttling see: the axum
//! middleware over [`TrustedProxies`] (in `odock-core`, with the tower `ClientIpLayer` embedders use).
//!
//! Without trusted proxies it is the TCP peer. Behind load balancers, list them in
//! `ODOCK_TRUSTED_PROXIES` (IPs or CIDRs): when the peer is one of them, `X-Forwarded-For` is read
//! from the right, skipping trusted hops, and the first address not trusted is the client. A
//! client cannot spoof its address by sending its own header: entries left of the first untrusted
//! hop are never believed, and a header from an untrusted peer is ignored entirely.
//!
//! The same rule holds for `X-Forwarded-Proto` and `X-Forwarded-Host` ([`ForwardedBy`]): they are
//! believed only from a trusted proxy. They decide the session cookie's `Secure` flag and the
//! origin the admin API's CSRF check compares against.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use odock_core::layers::ClientIp;
pub use odock_core::layers::TrustedProxies;

pub use odock_admin::api::forwarded::{over_https, ForwardedBy};

/// Middleware: inserts [`ClientIp`] (and, behind a trusted proxy, [`ForwardedBy`]) for the layers
/// and handlers behind it.
pub async fn client_ip(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let client = trusted.client(peer.ip(), request.headers());
        request.extensions_mut().insert(ClientIp(client));
        if trusted.trusts(peer.ip()) {
            let forwarded = ForwardedBy::from_headers(request.headers());
            request.extensions_mut().insert(forwarded);
        }
    }
    next.run(request).await
}
