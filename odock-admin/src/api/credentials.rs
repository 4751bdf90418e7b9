//! The credentials a request carries for the admin API: an `Authorization: Bearer` token or the
//! session cookie the web UI gets at sign-in. Reading them is all this module does; what they name
//! is [`super::auth`]'s business.

use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;

/// The session cookie's name (ADMIN_API.md).
pub const SESSION_COOKIE: &str = "odock_session";

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of the `odock_session` cookie.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
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
