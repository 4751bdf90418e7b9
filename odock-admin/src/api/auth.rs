//! Authentication of the admin API: who a request's credentials name.
//!
//! In order: `Authorization: Bearer <ODOCK_ADMIN_TOKEN>` (a SUPER_ADMIN, compared in constant time;
//! an empty configured token never matches), `Authorization: Bearer <session token>`, or the
//! `odock_session` cookie the web UI gets at sign-in. A session counts while it has not expired and
//! its user is ACTIVE, so revoking or deleting a user ends their sessions at once. Whether the
//! caller may do what it asks is [`super::authz`]'s business.
//!
//! A credential that is not session-shaped (`ods_…`) can only be a try at the admin token; those
//! are throttled per client IP like sign-in ([`AuthSettings::token_rule`], scope
//! `admin-token-ip:<ip>`): past the limit every such try from that IP — the right token included —
//! is 429 `too_many_attempts` with `Retry-After` until the lock ends. The token itself must be at
//! least [`MIN_ADMIN_TOKEN_CHARS`] characters ([`check_admin_token_strength`]).

use std::collections::HashSet;
use std::net::IpAddr;

use crate::auth::sessions::{self, SESSION_TOKEN_PREFIX};
use crate::auth::throttle::{self, whole_seconds};
use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::auth_settings::AuthSettings;
pub use super::credentials::{bearer, session_cookie};
use super::error::ApiError;
use super::principal::AdminPrincipal;
use super::AdminState;

/// The shortest admin token the server starts with.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;
/// Fewer distinct characters than this is a pattern (`aaaa…`, `abcabc…`), not a secret.
const MIN_DISTINCT_CHARS: usize = 8;

/// Refuses an admin token a guesser could find: shorter than [`MIN_ADMIN_TOKEN_CHARS`] or made of
/// fewer than 8 distinct characters. The message says how to make a good one (never the token).
pub fn check_admin_token_strength(token: &str) -> Result<(), String> {
    let length = token.chars().count();
    if length < MIN_ADMIN_TOKEN_CHARS {
        return Err(format!(
            "the admin token must be at least {MIN_ADMIN_TOKEN_CHARS} characters long (it has {length}); \
             generate one with `openssl rand -hex 32`"
        ));
    }
    if token.chars().collect::<HashSet<_>>().len() < MIN_DISTINCT_CHARS {
        return Err(format!(
            "the admin token is too predictable (fewer than {MIN_DISTINCT_CHARS} distinct characters); \
             generate one with `openssl rand -hex 32`"
        ));
    }
    Ok(())
}

/// Who the request's credentials name: 401 without a valid one, 429 while the caller's IP is
/// locked out of admin-token tries.
pub async fn authenticate(
    state: &AdminState,
    settings: &AuthSettings,
    headers: &HeaderMap,
    client_ip: Option<IpAddr>,
) -> Result<AdminPrincipal, ApiError> {
    let token = bearer(headers)
        .or_else(|| session_cookie(headers))
        .ok_or(ApiError::Unauthorized)?;
    let admin_token = state.admin_token.expose();
    if token.starts_with(SESSION_TOKEN_PREFIX) && !is_admin_token(token, admin_token) {
        return match sessions::resolve(&state.pool, token, settings.now_ms()).await {
            Ok(Some(session)) => Ok(AdminPrincipal {
                role: session.user.role,
                user_id: Some(session.user.id),
                organisation_id: session.user.organisation_id,
                session_id: Some(session.id),
            }),
            Ok(None) => Err(ApiError::Unauthorized),
            Err(error) => {
                tracing::error!(error = %error, "session lookup failed");
                Err(ApiError::Unauthorized)
            }
        };
    }
    let scope = throttle::admin_token_scope(
        &client_ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
    );
    let now = settings.now_ms();
    if let Some(ms) = throttle::locked_for(&state.pool, &scope, now).await? {
        tracing::warn!(scope = %scope, "admin token refused: locked after repeated failures");
        return Err(ApiError::TooManyAttempts {
            retry_after_secs: whole_seconds(ms),
        });
    }
    if is_admin_token(token, admin_token) {
        return Ok(AdminPrincipal::admin_token());
    }
    if let Some(ms) =
        throttle::record_failure(&state.pool, &scope, settings.token_rule, now).await?
    {
        tracing::warn!(scope = %scope, "admin token locked after repeated failures");
        return Err(ApiError::TooManyAttempts {
            retry_after_secs: whole_seconds(ms),
        });
    }
    Err(ApiError::Unauthorized)
}

fn is_admin_token(presented: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_admin_tokens_are_refused_with_advice() {
        let short = check_admin_token_strength("s3cret").unwrap_err();
        assert!(short.contains("at least 32"), "{short}");
        assert!(short.contains("openssl rand"), "{short}");
        assert!(check_admin_token_strength(&"ab".repeat(20)).is_err());
        assert!(check_admin_token_strength("correct-horse-battery-staple-2026!").is_ok());
        assert!(check_admin_token_strength(&format!(
            "odock_admin_{}",
            "0123456789abcdef".repeat(3)
        ))
        .is_ok());
    }

    #[test]
    fn only_the_exact_admin_token_matches() {
        assert!(is_admin_token("s3cret", "s3cret"));
        assert!(!is_admin_token("s3cre", "s3cret"));
        assert!(!is_admin_token("", ""));
    }
}
