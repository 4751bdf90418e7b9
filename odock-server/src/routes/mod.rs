//! Gateway-side routes that are not LLM calls: health, readiness, metrics, cache invalidation, and
//! the JSON answers for unknown routes and wrong methods.

pub mod client_ip;
pub mod health;
pub mod internal;
pub mod limits;
pub mod llm;
pub mod mcp;
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
