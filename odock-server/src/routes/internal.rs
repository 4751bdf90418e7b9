//! `POST /v1/internal/cache/invalidate`: mounted only when `ODOCK_CACHE_INVALIDATION_SECRET` is set.
//! The secret arrives in `X-Odock-Invalidation-Secret` (compared in constant time); the body is
//! `{"commands":[{"kind":"api_key|model|provider|provider_key|mcp_server|organisation|team|grant","id":"..."}]}`.
//! Commands are applied to this replica's caches (Redis fan-out comes with production mode).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use odock_core::{CacheInvalidator, InvalidationCommand, Secret};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

/// The header carrying the invalidation secret.
pub const SECRET_HEADER: &str = "x-odock-invalidation-secret";

/// The state of [`invalidate`].
#[derive(Clone)]
pub struct InvalidationState {
    /// The shared secret callers must present.
    pub secret: Secret,
    /// The caches the commands are applied to.
    pub invalidator: Arc<dyn CacheInvalidator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Commands {
    commands: Vec<InvalidationCommand>,
}

/// `POST /v1/internal/cache/invalidate`: 401 on a wrong secret, 400 on a bad body, else the
/// count applied (`{"applied": n}`).
pub async fn invalidate(
    State(state): State<InvalidationState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let presented = headers
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let expected = state.secret.expose().as_bytes();
    if !bool::from(presented.ct_eq(expected)) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication_error",
            "invalid invalidation secret",
        );
    }
    let commands: Commands = match serde_json::from_slice(&body) {
        Ok(commands) => commands,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "invalid_request_error",
                &format!("invalid body: {e}"),
            )
        }
    };
    for command in &commands.commands {
        state.invalidator.invalidate(command);
    }
    Json(json!({ "applied": commands.commands.len() })).into_response()
}

fn error(status: StatusCode, code: &str, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message, "type": kind } })),
    )
        .into_response()
}
