//! The governed MCP route as an axum [`Router`] (feature `axum`): `GET|POST|DELETE
//! /v1/mcp/{slug-or-id}` and `/v1/mcp/{slug-or-id}/{path}`, the core MCP stack
//! ([`GatewayBuilder::mcp`]) in front of [`McpCall`].
//!
//! A `{path}` after the reference is accepted (some clients append one) and not forwarded: the
//! server's configured endpoint is the only upstream address. Session affinity between replicas
//! (forwarding a request to the replica that holds its stdio/SSE session) is the reference
//! server's, layered around this router: it needs the server's advertised address and peers.

use axum::body::Body;
use axum::routing::{any_service, on_service, MethodFilter};
use axum::Router;
use odock_core::GatewayBuilder;

use crate::{McpCall, McpTransports};

/// The MCP routes over `transports`.
pub fn mcp_router(gateway: &GatewayBuilder, transports: McpTransports) -> Router {
    let governed = gateway.mcp::<Body, _>(McpCall::new(transports));
    let methods = MethodFilter::GET
        .or(MethodFilter::POST)
        .or(MethodFilter::DELETE);
    Router::new()
        // No reference: 400 `invalid_mcp_ref` from the stack's first check.
        .route("/v1/mcp", any_service(governed.clone()))
        .route("/v1/mcp/", any_service(governed.clone()))
        .route("/v1/mcp/{mcp_ref}", on_service(methods, governed.clone()))
        .route("/v1/mcp/{mcp_ref}/{*path}", on_service(methods, governed))
}
