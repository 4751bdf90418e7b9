//! The server's own routes and middleware: health, readiness, cache invalidation, client IP,
//! request limits, MCP session affinity between replicas, and the JSON answers for unknown routes
//! and wrong methods. The LLM and MCP route tables are the libraries' (`odock_core::axum_routes`,
//! `odock_mcp::axum_routes`).

pub mod client_ip;
pub mod health;
pub mod internal;
pub mod limits;
pub mod mcp_affinity;

use axum::response::{IntoResponse, Response};
use odock_core::layers::error_response::error_response;
use odock_core::{ErrorStyle, GatewayError};

/// 404 `not_found` as a JSON error.
pub async fn not_found() -> Response {
    error_response(&GatewayError::NotFound, ErrorStyle::OpenAi).into_response()
}

/// 405 `method_not_allowed` as a JSON error.
pub async fn method_not_allowed() -> Response {
    error_response(&GatewayError::MethodNotAllowed, ErrorStyle::OpenAi).into_response()
}
