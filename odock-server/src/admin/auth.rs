//! Authentication of the admin API: who a request's credentials name.
//!
//! In order: `Authorization: Bearer <ODOCK_ADMIN_TOKEN>` (a SUPER_ADMIN, compared in constant time;
//! an empty configured token never matches), `Authorization: Bearer <session token>`, or the
//! `odock_session` cookie the web UI gets at sign-in. A session counts while it has not expired and
//! its user is ACTIVE, so revoking or deleting a user ends their sessions at once. Whether the
//! caller may do what it asks is [`super::authz`]'s business.

use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;
use odock_store::auth::sessions::{self, SESSION_TOKEN_PREFIX};
use subtle::ConstantTimeEq;

use super::authz::AdminPrincipal;
use super::session::{AuthSettings, SESSION_COOKIE};
use super::AdminState;

/// Who the request's credentials name, if anyone.
pub async fn authenticate(
    state: &AdminState,
    settings: &AuthSettings,
    headers: &HeaderMap,
) -> Option<AdminPrincipal> {
    let token = bearer(headers).or_else(|| session_cookie(headers))?;
    if is_admin_token(token, state.admin_token.expose()) {
        return Some(AdminPrincipal::admin_token());
    }
    if !token.starts_with(SESSION_TOKEN_PREFIX) {
        return None;
    }
    match sessions::resolve(&state.pool, token, settings.now_ms()).await {
        Ok(Some(session)) => Some(AdminPrincipal {
            role: session.user.role,
            user_id: Some(session.user.id),
            organisation_id: session.user.organisation_id,
            session_id: Some(session.id),
        }),
        Ok(None) => None,
        Err(error) => {
            tracing::error!(error = %error, "session lookup failed");
            None
        }
    }
}

fn is_admin_token(presented: &str, expected: &str) -> bool {
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

/// The value of the `odock_session` cookie.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(name: http::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_the_exact_admin_token_matches() {
        assert!(is_admin_token("s3cret", "s3cret"));
        assert!(!is_admin_token("s3cre", "s3cret"));
        assert!(!is_admin_token("", ""));
    }

    #[test]
    fn bearer_tokens_and_the_session_cookie_are_read() {
        assert_eq!(
            bearer(&headers(AUTHORIZATION, "Bearer s3cret")),
            Some("s3cret")
        );
        assert_eq!(
            bearer(&headers(AUTHORIZATION, "bearer  s3cret ")),
            Some("s3cret")
        );
        assert_eq!(bearer(&headers(AUTHORIZATION, "Basic s3cret")), None);
        assert_eq!(bearer(&headers(AUTHORIZATION, "s3cret")), None);
        assert_eq!(bearer(&headers(AUTHORIZATION, "Bearer ")), None);
        assert_eq!(
            session_cookie(&headers(COOKIE, "a=1; odock_session=ods_x ; b=2")),
            Some("ods_x")
        );
        assert_eq!(session_cookie(&headers(COOKIE, "odock_session=")), None);
        assert_eq!(session_cookie(&headers(COOKIE, "other=ods_x")), None);
    }
}
