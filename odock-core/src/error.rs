//! The error model: one small enum per concern, converging on [`GatewayError`], whose `status()` and
//! `code()` are exhaustive so a new error cannot silently become a 500.
//!
//! Only the error-response layer turns a `GatewayError` into an HTTP response; inner layers return
//! typed errors that tests can match on.

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::egress::EgressDenied;

/// Authentication failures (all 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key in `Authorization`, `X-API-Key`, `x-goog-api-key` or `?key=`.
    #[error("missing API key")]
    Missing,
    /// The key matches no virtual key (answered like a missing one, so keys cannot be probed).
    #[error("invalid API key")]
    Unknown,
    /// The key was revoked.
    #[error("API key has been revoked")]
    Revoked,
    /// The key is past its expiry.
    #[error("API key has expired")]
    Expired,
    /// The key store could not be asked (database down): 503, not 401.
    #[error("key lookup unavailable")]
    Unavailable,
}

/// The request itself is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body could not be read or is not JSON.
    #[error("{0}")]
    InvalidBody(String),
    /// The body is JSON but a field is missing or wrong.
    #[error("{message}")]
    Invalid {
        /// What is wrong, for the client.
        message: String,
        /// The offending field, when there is one.
        field: Option<&'static str>,
    },
    /// The body is larger than the route accepts.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The route's limit in bytes.
        limit: u64,
    },
}

/// Model resolution, grants and provider-family checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No enabled model of that name in the key's organisation.
    #[error("model `{0}` not found")]
    ModelNotFound(String),
    /// The model exists but names no provider.
    #[error("model has no provider configured")]
    ProviderNotConfigured,
    /// The model's provider has no usable (unrevoked) API key.
    #[error("no usable provider API key is configured for this model")]
    ProviderKeyNotConfigured,
    /// The route cannot serve this provider type at all.
    #[error("this route cannot serve provider type {0}")]
    ProviderTypeUnsupported(String),
    #[error(
        "model `{model}` is served by a {provider} provider, which this route does not accept"
    )]
    /// The route is pinned to other provider families than the model's.
    ProviderNotAllowed {
        /// The model asked for.
        model: String,
        /// Its provider's type.
        provider: String,
    },
    /// The model's provider is switched off.
    #[error("provider is disabled")]
    ProviderDisabled,
    /// The provider's API key was revoked.
    #[error("provider API key has been revoked")]
    ProviderKeyRevoked,
    /// The key has no grant for the model.
    #[error("model not allowed")]
    ModelNotAllowed,
    /// The model lookup failed (database down).
    #[error("model lookup unavailable")]
    LookupUnavailable,
    /// The grant check failed (database down).
    #[error("model access check unavailable")]
    AccessUnavailable,
}

/// The upstream call failed before a usable response arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer within the provider's timeout.
    #[error("upstream timed out after {0:?}")]
    Timeout(Duration),
    /// The upstream could not be reached (connection refused, DNS, TLS).
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// An upstream error on a translated route (same-protocol routes relay the upstream response).
    /// `retry_after` is the upstream's `Retry-After`, relayed to the client.
    #[error("upstream returned {status}: {message}")]
    Upstream {
        /// The upstream's HTTP status.
        status: u16,
        /// The upstream's error message.
        message: String,
        /// The upstream's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The upstream answered with something that cannot be read (the reason).
    #[error("upstream sent an unusable response: {0}")]
    InvalidResponse(String),
    /// The upstream's answer is larger than the gateway buffers (`ODOCK_UPSTREAM_MAX_RESPONSE_BYTES`).
    #[error("upstream response exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The buffer limit in bytes.
        limit: usize,
    },
    /// The egress policy refused the upstream's address (`ODOCK_EGRESS_ALLOW`).
    #[error(transparent)]
    Forbidden(EgressDenied),
    /// The provider has no implementation for this route.
    #[error("provider does not support this endpoint")]
    UnsupportedEndpoint,
    /// The request cannot be expressed for this upstream (e.g. a translated request using a
    /// feature the target family lacks). Refused before any upstream call.
    #[error("{0}")]
    InvalidRequest(String),
}

/// Budget admission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// A budget would be exceeded (402).
    #[error("budget `{budget}` exceeded")]
    Exceeded {
        /// The budget's name.
        budget: String,
    },
    /// The budget ledger could not be asked; requests are refused rather than run unbilled.
    #[error("budget ledger unavailable: {0}")]
    Unavailable(String),
}

/// Quota admission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// A quota would be exceeded (429).
    #[error("quota `{quota}` exceeded")]
    Exceeded {
        /// The quota's name.
        quota: String,
        /// How long until the quota's window resets.
        retry_after: Duration,
    },
    /// The quota ledger could not be asked; requests are refused rather than run uncounted.
    #[error("quota ledger unavailable: {0}")]
    Unavailable(String),
}

/// Rate-limit and network policy denials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A rate limit is reached (429).
    #[error("rate limit exceeded")]
    Exceeded {
        /// `organisation`, `team`, `api_key`, `model`, `mcp_server`.
        scope: &'static str,
        /// `requests_per_second`, `requests_per_minute`, `tokens_per_minute`, …
        limit: &'static str,
        /// How long until a slot frees up.
        retry_after: Duration,
    },
    /// The client's IP is refused by the key's or organisation's IP rules.
    #[error("client IP is not allowed")]
    IpNotAllowed,
}

/// MCP gateway denials and upstream failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// The request names no MCP server (or an unusable reference).
    #[error("missing MCP server reference")]
    InvalidRef,
    /// No MCP server by that reference.
    #[error("MCP server not found")]
    NotFound,
    /// The key has no grant for the MCP server.
    #[error("MCP server not allowed")]
    NotAllowed,
    /// An HTTP transport is configured without `endpointUrl`.
    #[error("MCP server has no endpoint URL")]
    MissingEndpoint,
    /// A STDIO transport is configured without `stdioCommand`.
    #[error("MCP server has no stdio command")]
    MissingStdioCommand,
    /// The server's transport type is unknown or unusable.
    #[error("invalid MCP transport")]
    InvalidTransport,
    /// Getting credentials for the upstream failed (e.g. the OAuth2 token endpoint).
    #[error("could not authenticate to the MCP server: {0}")]
    Auth(String),
    /// The upstream could not be reached or failed the exchange.
    #[error("MCP upstream failed: {0}")]
    Upstream(String),
    /// The stdio child could not start or died.
    #[error("MCP stdio process failed: {0}")]
    Stdio(String),
    /// The egress policy refused the MCP server's (or its token endpoint's) address.
    #[error(transparent)]
    Forbidden(EgressDenied),
    /// The server's stdio command is not one an ORG_ADMIN may run (`ODOCK_MCP_STDIO_ALLOW`).
    #[error("{0}")]
    StdioNotAllowed(String),
    /// Too many live stdio processes (`ODOCK_MCP_STDIO_MAX`, or the organisation's share of it).
    #[error("{0}")]
    StdioBusy(String),
}

/// Requests refused at the HTTP layer, before any route sees them: malformed or oversized heads
/// (answered for hyper, which would send an empty body), and clients too slow to send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request head could not be parsed.
    #[error("the request is not valid HTTP")]
    Malformed,
    /// The request head is larger than the server reads.
    #[error("the request headers are too large")]
    HeadersTooLarge,
    /// The request URI is longer than the server reads.
    #[error("the request URI is too long")]
    UriTooLong,
    /// The client did not send its head (or body) in time.
    #[error("the request was not received in time")]
    Timeout,
}

/// Every way a gateway request can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Authentication failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request is unusable.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The model or provider could not be resolved or is not allowed.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The upstream call failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A budget refused the request.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// A quota refused the request.
    #[error(transparent)]
    Quota(#[from] QuotaError),
    /// A rate limit or network policy refused the request.
    #[error(transparent)]
    RateLimit(#[from] RateLimitError),
    /// An MCP request failed.
    #[error(transparent)]
    Mcp(#[from] McpError),
    /// The HTTP layer refused the request.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// No route matches the path.
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The server's request limits (in-flight count, body memory) are reached.
    #[error("the gateway is overloaded; retry shortly")]
    Overloaded,
    /// A bug or an unexpected state; the detail is kept for logs, never sent to the client.
    #[error("internal error")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Auth(e) => match e {
                AuthError::Missing
                | AuthError::Unknown
                | AuthError::Revoked
                | AuthError::Expired => StatusCode::UNAUTHORIZED,
                AuthError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
            GatewayError::Request(e) => match e {
                RequestError::InvalidBody(_) | RequestError::Invalid { .. } => {
                    StatusCode::BAD_REQUEST
                }
                RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            },
            GatewayError::Resolve(e) => match e {
                ResolveError::ModelNotFound(_)
                | ResolveError::ProviderNotConfigured
                | ResolveError::ProviderKeyNotConfigured
                | ResolveError::ProviderTypeUnsupported(_)
                | ResolveError::ProviderNotAllowed { .. } => StatusCode::BAD_REQUEST,
                ResolveError::ProviderDisabled
                | ResolveError::ProviderKeyRevoked
                | ResolveError::ModelNotAllowed => StatusCode::FORBIDDEN,
                ResolveError::LookupUnavailable | ResolveError::AccessUnavailable => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
            GatewayError::Provider(e) => match e {
                ProviderError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                ProviderError::Upstream { status: 429, .. } => StatusCode::TOO_MANY_REQUESTS,
                ProviderError::Unreachable(_)
                | ProviderError::Upstream { .. }
                | ProviderError::InvalidResponse(_)
                | ProviderError::ResponseTooLarge { .. }
                | ProviderError::Forbidden(_) => StatusCode::BAD_GATEWAY,
                ProviderError::UnsupportedEndpoint | ProviderError::InvalidRequest(_) => {
                    StatusCode::BAD_REQUEST
                }
            },
            GatewayError::Budget(e) => match e {
                BudgetError::Exceeded { .. } => StatusCode::PAYMENT_REQUIRED,
                BudgetError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            GatewayError::Quota(e) => match e {
                QuotaError::Exceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
                QuotaError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            GatewayError::RateLimit(e) => match e {
                RateLimitError::Exceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
                RateLimitError::IpNotAllowed => StatusCode::FORBIDDEN,
            },
            GatewayError::Mcp(e) => match e {
                McpError::InvalidRef
                | McpError::MissingEndpoint
                | McpError::MissingStdioCommand
                | McpError::InvalidTransport => StatusCode::BAD_REQUEST,
                McpError::NotFound => StatusCode::NOT_FOUND,
                McpError::NotAllowed | McpError::StdioNotAllowed(_) => StatusCode::FORBIDDEN,
                McpError::Auth(_)
                | McpError::Upstream(_)
                | McpError::Stdio(_)
                | McpError::Forbidden(_) => StatusCode::BAD_GATEWAY,
                McpError::StdioBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            GatewayError::Http(e) => match e {
                HttpError::Malformed => StatusCode::BAD_REQUEST,
                HttpError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                HttpError::UriTooLong => StatusCode::URI_TOO_LONG,
                HttpError::Timeout => StatusCode::REQUEST_TIMEOUT,
            },
            GatewayError::NotFound => StatusCode::NOT_FOUND,
            GatewayError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Auth(e) => match e {
                AuthError::Missing | AuthError::Unknown => "unauthorized",
                AuthError::Revoked => "api_key_revoked",
                AuthError::Expired => "api_key_expired",
                AuthError::Unavailable => "key_lookup_unavailable",
            },
            GatewayError::Request(e) => match e {
                RequestError::InvalidBody(_) => "invalid_request_body",
                RequestError::Invalid { .. } => "invalid_request",
                RequestError::PayloadTooLarge { .. } => "payload_too_large",
            },
            GatewayError::Resolve(e) => match e {
                ResolveError::ModelNotFound(_) => "model_not_found",
                ResolveError::ProviderNotConfigured => "provider_not_configured",
                ResolveError::ProviderKeyNotConfigured => "provider_api_key_not_configured",
                ResolveError::ProviderTypeUnsupported(_) => "provider_type_unsupported",
                ResolveError::ProviderNotAllowed { .. } => "provider_not_allowed",
                ResolveError::ProviderDisabled => "provider_disabled",
                ResolveError::ProviderKeyRevoked => "provider_api_key_revoked",
                ResolveError::ModelNotAllowed => "model_not_allowed",
                ResolveError::LookupUnavailable => "model_lookup_unavailable",
                ResolveError::AccessUnavailable => "model_access_unavailable",
            },
            GatewayError::Provider(e) => match e {
                ProviderError::Timeout(_) => "upstream_timeout",
                ProviderError::Upstream { status: 429, .. } => "upstream_rate_limited",
                ProviderError::Unreachable(_)
                | ProviderError::Upstream { .. }
                | ProviderError::InvalidResponse(_) => "upstream_error",
                ProviderError::ResponseTooLarge { .. } => "upstream_response_too_large",
                ProviderError::Forbidden(_) => "upstream_forbidden",
                ProviderError::UnsupportedEndpoint => "provider_type_unsupported",
                ProviderError::InvalidRequest(_) => "invalid_request",
            },
            GatewayError::Budget(e) => match e {
                BudgetError::Exceeded { .. } => "budget_exceeded",
                BudgetError::Unavailable(_) => "budget_unavailable",
            },
            GatewayError::Quota(e) => match e {
                QuotaError::Exceeded { .. } => "quota_exceeded",
                QuotaError::Unavailable(_) => "quota_unavailable",
            },
            GatewayError::RateLimit(e) => match e {
                RateLimitError::Exceeded { .. } => "rate_limit_exceeded",
                RateLimitError::IpNotAllowed => "ip_not_allowed",
            },
            GatewayError::Mcp(e) => match e {
                McpError::InvalidRef => "invalid_mcp_ref",
                McpError::NotFound => "mcp_not_found",
                McpError::NotAllowed => "mcp_not_allowed",
                McpError::MissingEndpoint => "mcp_missing_endpoint",
                McpError::MissingStdioCommand => "mcp_missing_stdio_command",
                McpError::InvalidTransport => "invalid_transport",
                McpError::Auth(_) => "mcp_auth_error",
                McpError::Upstream(_) => "mcp_upstream_error",
                McpError::Stdio(_) => "mcp_stdio_error",
                McpError::Forbidden(_) => "upstream_forbidden",
                McpError::StdioNotAllowed(_) => "stdio_not_allowed",
                McpError::StdioBusy(_) => "overloaded",
            },
            GatewayError::Http(e) => match e {
                HttpError::Malformed => "malformed_request",
                HttpError::HeadersTooLarge => "headers_too_large",
                HttpError::UriTooLong => "uri_too_long",
                HttpError::Timeout => "request_timeout",
            },
            GatewayError::NotFound => "not_found",
            GatewayError::MethodNotAllowed => "method_not_allowed",
            GatewayError::Overloaded => "overloaded",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// The message shown to clients. Internal details stay in logs.
    pub fn message(&self) -> String {
        match self {
            GatewayError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// How long the client should wait before retrying, when the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::Quota(QuotaError::Exceeded { retry_after, .. })
            | GatewayError::RateLimit(RateLimitError::Exceeded { retry_after, .. }) => {
                Some(*retry_after)
            }
            // The upstream's own `Retry-After`, relayed with its 429 (or 503).
            GatewayError::Provider(ProviderError::Upstream { retry_after, .. }) => *retry_after,
            _ => None,
        }
    }

    /// The JSON error object (without the `{"error": ...}` envelope).
    pub fn error_object(&self) -> Value {
        let status = self.status();
        let mut object = Map::new();
        object.insert("code".into(), json!(self.code()));
        object.insert("message".into(), json!(self.message()));
        object.insert("type".into(), json!(error_type(status)));
        match self {
            GatewayError::RateLimit(RateLimitError::Exceeded {
                scope,
                limit,
                retry_after,
            }) => {
                object.insert("scope".into(), json!(scope));
                object.insert("limit".into(), json!(limit));
                object.insert("retry_after".into(), json!(retry_after_secs(*retry_after)));
            }
            GatewayError::Quota(QuotaError::Exceeded { retry_after, .. }) => {
                object.insert("retry_after".into(), json!(retry_after_secs(*retry_after)));
            }
            GatewayError::Request(RequestError::Invalid {
                field: Some(field), ..
            }) => {
                object.insert("field".into(), json!(field));
            }
            _ => {}
        }
        Value::Object(object)
    }
}

/// Whole seconds, rounded up so a client never retries early.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The OpenAI-style error category for a status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_follow_the_error_table() {
        let cases: Vec<(GatewayError, u16, &str)> = vec![
            (AuthError::Missing.into(), 401, "unauthorized"),
            (AuthError::Revoked.into(), 401, "api_key_revoked"),
            (AuthError::Expired.into(), 401, "api_key_expired"),
            (
                RequestError::InvalidBody("x".into()).into(),
                400,
                "invalid_request_body",
            ),
            (
                ResolveError::ModelNotFound("m".into()).into(),
                400,
                "model_not_found",
            ),
            (
                ResolveError::ModelNotAllowed.into(),
                403,
                "model_not_allowed",
            ),
            (
                ResolveError::ProviderNotAllowed {
                    model: "m".into(),
                    provider: "p".into(),
                }
                .into(),
                400,
                "provider_not_allowed",
            ),
            (
                ProviderError::Timeout(Duration::from_secs(1)).into(),
                504,
                "upstream_timeout",
            ),
            (
                ProviderError::Unreachable("x".into()).into(),
                502,
                "upstream_error",
            ),
            (
                BudgetError::Exceeded { budget: "b".into() }.into(),
                402,
                "budget_exceeded",
            ),
            (
                RequestError::PayloadTooLarge { limit: 1 }.into(),
                413,
                "payload_too_large",
            ),
            (RateLimitError::IpNotAllowed.into(), 403, "ip_not_allowed"),
            (McpError::NotFound.into(), 404, "mcp_not_found"),
            (
                ProviderError::Forbidden(EgressDenied {
                    host: "10.0.0.1".into(),
                    reason: "private address",
                })
                .into(),
                502,
                "upstream_forbidden",
            ),
            (
                McpError::Forbidden(EgressDenied {
                    host: "10.0.0.1".into(),
                    reason: "private address",
                })
                .into(),
                502,
                "upstream_forbidden",
            ),
            (
                ProviderError::ResponseTooLarge { limit: 1 }.into(),
                502,
                "upstream_response_too_large",
            ),
            (
                McpError::StdioNotAllowed("no".into()).into(),
                403,
                "stdio_not_allowed",
            ),
            (McpError::StdioBusy("busy".into()).into(), 503, "overloaded"),
            (GatewayError::MethodNotAllowed, 405, "method_not_allowed"),
            (GatewayError::Overloaded, 503, "overloaded"),
            (HttpError::Malformed.into(), 400, "malformed_request"),
            (HttpError::HeadersTooLarge.into(), 431, "headers_too_large"),
            (HttpError::UriTooLong.into(), 414, "uri_too_long"),
            (HttpError::Timeout.into(), 408, "request_timeout"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code, "{error:?}");
        }
    }

    #[test]
    fn rate_limit_errors_carry_scope_limit_and_retry_after() {
        let error = GatewayError::from(RateLimitError::Exceeded {
            scope: "api_key",
            limit: "requests_per_minute",
            retry_after: Duration::from_millis(1500),
        });
        let body = error.error_object();
        assert_eq!(body["scope"], "api_key");
        assert_eq!(body["limit"], "requests_per_minute");
        assert_eq!(body["retry_after"], 2);
        assert_eq!(body["type"], "rate_limit_error");
    }

    #[test]
    fn an_upstream_429_carries_its_retry_after() {
        let error = GatewayError::from(ProviderError::Upstream {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        });
        assert_eq!(error.code(), "upstream_rate_limited");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn internal_details_are_not_shown_to_clients() {
        let error = GatewayError::Internal("db password wrong at host x".into());
        assert_eq!(error.message(), "internal error");
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
