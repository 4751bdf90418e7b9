//! The admin API's one error type and its one mapping to responses:
//! `{"error":{"code","message","type"[,"field"]}}`, never a plain-text body.

use crate::services::AdminError;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

/// Everything an admin route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`; `field` names the bad field when one is at fault.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The request field at fault, if one is.
        field: Option<String>,
    },
    /// 401 `unauthorized`.
    #[error("missing or invalid admin credentials")]
    Unauthorized,
    /// 403 `forbidden`: the caller may see the resource but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 403 `stdio_not_allowed`: a stdio command (or environment) only a SUPER_ADMIN may configure.
    #[error("{0}")]
    StdioNotAllowed(String),
    /// 403 `csrf_rejected`: a cookie-authenticated (or sign-in) write that a browser on another
    /// origin could have sent.
    #[error("{0}")]
    CsrfRejected(String),
    /// 404 `not_found`, also for objects of another organisation.
    #[error("{0}")]
    NotFound(String),
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409 `conflict` (duplicate slug, name, …).
    #[error("{0}")]
    Conflict(String),
    /// 413 `payload_too_large`.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 429 `too_many_attempts` with `Retry-After`: too many failed credential tries.
    #[error("too many failed attempts; try again later")]
    TooManyAttempts {
        /// Seconds until another attempt may be made (the `Retry-After` value).
        retry_after_secs: u64,
    },
    /// 500 `internal_error`; the cause is logged where it happens, never sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// 400 `invalid_request` about `field` (`None`: the request as a whole).
    pub fn invalid(field: Option<&str>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::StdioNotAllowed(_) | ApiError::CsrfRejected(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error.code` of the answer body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. } => "invalid_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::StdioNotAllowed(_) => "stdio_not_allowed",
            ApiError::CsrfRejected(_) => "csrf_rejected",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::Internal => "internal_error",
        }
    }

    /// The OpenAI-style category (DECISIONS.md "Errors").
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Invalid { .. }
            | ApiError::NotFound(_)
            | ApiError::MethodNotAllowed
            | ApiError::Conflict(_)
            | ApiError::PayloadTooLarge => "invalid_request_error",
            ApiError::Unauthorized => "authentication_error",
            ApiError::Forbidden(_) | ApiError::StdioNotAllowed(_) | ApiError::CsrfRejected(_) => {
                "permission_error"
            }
            ApiError::TooManyAttempts { .. } => "rate_limit_error",
            ApiError::Internal => "api_error",
        }
    }

    /// The response body.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code()));
        error.insert("message".into(), json!(self.to_string()));
        error.insert("type".into(), json!(self.kind()));
        if let ApiError::Invalid {
            field: Some(field), ..
        } = self
        {
            error.insert("field".into(), json!(field));
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::TooManyAttempts { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Invalid { message, field } => ApiError::Invalid { message, field },
            AdminError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            AdminError::Conflict(message) => ApiError::Conflict(message),
            AdminError::Database(error) => internal(&error),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        internal(&error)
    }
}

/// Logs the cause and hides it from the client.
pub fn internal(error: &dyn std::error::Error) -> ApiError {
    tracing::error!(error = %error, "admin API request failed");
    ApiError::Internal
}

/// The 405 answer for known paths called with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_documented_shape() {
        let body = ApiError::invalid(Some("slug"), "bad slug").body();
        assert_eq!(
            body,
            json!({"error": {"code": "invalid_request", "message": "bad slug", "type": "invalid_request_error", "field": "slug"}})
        );
        let body = ApiError::Conflict("dup".into()).body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"].get("field").is_none());
        assert_eq!(ApiError::Unauthorized.kind(), "authentication_error");
        assert_eq!(ApiError::Forbidden("no".into()).kind(), "permission_error");
        let stdio = ApiError::StdioNotAllowed("no".into());
        assert_eq!(
            (stdio.status(), stdio.code(), stdio.kind()),
            (
                StatusCode::FORBIDDEN,
                "stdio_not_allowed",
                "permission_error"
            )
        );
        assert_eq!(
            ApiError::Internal.body()["error"]["message"],
            "internal error"
        );
    }
}
