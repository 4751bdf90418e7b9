//! Gateway-side routes that are not LLM calls: health, readiness, metrics, cache invalidation, and
//! the JSON answers for unknown routes and wrong methods.

pub mod health;
pub mod internal;
pub mod llm;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use odock_core::layers::error_response::error_response;
use odock_core::layers::ClientIp;
use odock_core::{ErrorStyle, GatewayError};

/// 404 `not_found` as a JSON error.
pub async fn not_found() -> Response {
    error_response(&GatewayError::NotFound, ErrorStyle::OpenAi).into_response()
}

/// 405 `method_not_allowed` as a JSON error.
pub async fn method_not_allowed() -> Response {
    error_response(&GatewayError::MethodNotAllowed, ErrorStyle::OpenAi).into_response()
}

/// Hands the connection's peer address to the gateway layers (IP allow/block lists). Behind a
/// proxy this is the proxy's address: trusted `X-Forwarded-For` handling is not implemented yet.
pub async fn client_ip(mut request: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        request.extensions_mut().insert(ClientIp(peer.ip()));
    }
    next.run(request).await
}
