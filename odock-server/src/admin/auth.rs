//! Authentication of the admin API: one middleware in front of every protected route.
//!
//! Today the only credential is the static `ODOCK_ADMIN_TOKEN` (a SUPER_ADMIN), compared in constant
//! time. Session tokens for signed-in users plug in here later, inserting their principal into the
//! request extensions for the handlers' role checks.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::AUTHORIZATION;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AdminState;

/// Lets the request through only with `Authorization: Bearer <ODOCK_ADMIN_TOKEN>`; else 401.
/// An empty configured token never matches (the admin API is then closed).
pub async fn require_admin(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    if is_admin(request.headers(), state.admin_token.expose()) {
        next.run(request).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

fn is_admin(headers: &HeaderMap, expected: &str) -> bool {
    let Some(presented) = bearer(headers) else {
        return false;
    };
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        assert!(is_admin(&headers("Bearer s3cret"), "s3cret"));
        assert!(is_admin(&headers("bearer  s3cret "), "s3cret"));
        assert!(!is_admin(&headers("Bearer s3cre"), "s3cret"));
        assert!(!is_admin(&headers("Basic s3cret"), "s3cret"));
        assert!(!is_admin(&headers("s3cret"), "s3cret"));
        assert!(!is_admin(&HeaderMap::new(), "s3cret"));
        assert!(!is_admin(&headers("Bearer "), ""));
    }
}
