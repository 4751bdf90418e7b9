//! Signing in: `/api/auth/*` (login, logout, me, password), the settings they share, and the first
//! SUPER_ADMIN's bootstrap.
//!
//! Sign-in answers an opaque 256-bit session token (stored hashed, with an absolute expiry,
//! [`AuthSettings::session_ttl`], 12 hours by default) as JSON and as the `odock_session` cookie
//! (HttpOnly, SameSite=Strict, Path=/, Secure when the request came over HTTPS — directly, or as
//! a trusted proxy says). How later requests present it is [`super::auth`].
//!
//! Sign-in is throttled per account and per client IP (ADMIN_API.md): 5 failures for one account
//! within 15 minutes lock it for 15 minutes, 20 failures per minute from one IP lock that IP for a
//! minute; a locked sign-in is refused with 429 `too_many_attempts` and `Retry-After`, even with the
//! right password. A password change checks the current password under the same throttle and
//! scopes (a stolen session cannot be used to guess it). Passwords and tokens are never logged.

use crate::auth::passwords::{burn_verification_time, verify_password};
use crate::auth::sessions::{self, IssuedSession};
use crate::auth::throttle::{self, whole_seconds};
use crate::services::organisations::{self, Organisation};
use crate::services::users::{self, User};
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use http::header::{RETRY_AFTER, SET_COOKIE};
use http::{HeaderValue, StatusCode, Uri};
use odock_core::layers::ClientIp;
use odock_core::{Role, UserStatus};
use odock_store::db::from_ms;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use super::auth_settings::AuthSettings;
use super::credentials::SESSION_COOKIE;
use super::error::ApiError;
use super::extract::AdminJson;
use super::principal::AdminPrincipal;
use super::AdminState;
use crate::api::forwarded::{over_https, ForwardedBy};

/// Answers of the sign-in routes besides the admin API's usual errors.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Any other admin API error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// 401 `unauthorized`: unknown email, wrong password, or an account that may not sign in.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// 429 `too_many_attempts` with `Retry-After`.
    #[error("too many failed sign-in attempts; try again later")]
    TooManyAttempts {
        /// Seconds until another sign-in may be tried (the `Retry-After` value).
        retry_after_secs: u64,
    },
}

impl From<crate::services::AdminError> for SignInError {
    fn from(error: crate::services::AdminError) -> Self {
        SignInError::Api(error.into())
    }
}

impl From<sqlx::Error> for SignInError {
    fn from(error: sqlx::Error) -> Self {
        SignInError::Api(error.into())
    }
}

impl IntoResponse for SignInError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        let (status, code, kind, retry_after) = match self {
            SignInError::Api(error) => return error.into_response(),
            SignInError::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication_error",
                None,
            ),
            SignInError::TooManyAttempts { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "rate_limit_error",
                Some(retry_after_secs),
            ),
        };
        let body = json!({"error": {"code": code, "message": message, "type": kind}});
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Whether the request reached Odock over HTTPS, as far as may be believed: `X-Forwarded-Proto`
/// counts only from a trusted proxy (the client IP middleware inserts [`ForwardedBy`] then).
pub fn request_over_https(uri: &Uri, forwarded: Option<&Extension<ForwardedBy>>) -> bool {
    over_https(uri, forwarded.map(|Extension(f)| f))
}

/// `SameSite=Strict`: no other site's page, link or form can make a browser send it.
fn cookie(value: &str, max_age_secs: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

/// `POST /api/auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    /// The account's email.
    pub email: String,
    /// The account's password (never returned).
    #[schema(write_only)]
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// The sign-in (and invitation acceptance) response.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Session)]
pub struct SignedIn {
    /// The session token (also set as the `odock_session` cookie).
    pub token: String,
    /// When the session expires.
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: User,
}

/// Answers a new session as JSON and as the session cookie.
pub fn session_response(
    status: StatusCode,
    issued: IssuedSession,
    user: User,
    settings: &AuthSettings,
    secure: bool,
) -> Response {
    let max_age = (issued.expires_at - settings.now_ms()).max(0) / 1000;
    let set_cookie = cookie(issued.token.expose(), max_age, secure);
    let body = SignedIn {
        token: issued.token.expose().to_owned(),
        expires_at: from_ms(issued.expires_at),
        user,
    };
    let mut response = (status, Json(body)).into_response();
    if let Some(set_cookie) = set_cookie {
        response.headers_mut().insert(SET_COOKIE, set_cookie);
    }
    response
}

/// Starts a session for `user` and answers it.
pub async fn start_session(
    state: &AdminState,
    settings: &AuthSettings,
    user: User,
    status: StatusCode,
    secure: bool,
) -> Result<Response, ApiError> {
    let issued = sessions::create(
        &state.pool,
        &user.id,
        settings.now_ms(),
        settings.session_ttl.num_milliseconds(),
    )
    .await?;
    Ok(session_response(status, issued, user, settings, secure))
}

async fn locked(
    state: &AdminState,
    scope: &str,
    now_ms: i64,
) -> Result<Option<SignInError>, SignInError> {
    Ok(throttle::locked_for(&state.pool, scope, now_ms)
        .await?
        .map(|ms| SignInError::TooManyAttempts {
            retry_after_secs: whole_seconds(ms),
        }))
}

/// The throttle scope of the caller's IP.
fn ip_scope(client_ip: Option<&Extension<ClientIp>>) -> String {
    throttle::ip_scope(
        &client_ip
            .map(|Extension(ClientIp(ip))| ip.to_string())
            .unwrap_or_else(|| "unknown".into()),
    )
}

/// Counts a failed password check against the account and the IP; the longest lock it started,
/// if any.
async fn record_failures(
    state: &AdminState,
    settings: &AuthSettings,
    account: &str,
    ip: &str,
    now: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let mut lock = None;
    for (scope, rule) in [(account, settings.account_rule), (ip, settings.ip_rule)] {
        if let Some(ms) = throttle::record_failure(&state.pool, scope, rule, now).await? {
            tracing::warn!(scope = %scope, "sign-in locked after repeated failures");
            lock = Some(lock.unwrap_or(0).max(ms));
        }
    }
    Ok(lock)
}

/// `POST /api/auth/login`: sign in with email and password; sets the odock_session cookie. Access:
/// public.
pub async fn login(
    State(state): State<AdminState>,
    Extension(settings): Extension<AuthSettings>,
    client_ip: Option<Extension<ClientIp>>,
    forwarded: Option<Extension<ForwardedBy>>,
    uri: Uri,
    AdminJson(login): AdminJson<Login>,
) -> Result<Response, SignInError> {
    let secure = request_over_https(&uri, forwarded.as_ref());
    let now = settings.now_ms();
    let account = throttle::account_scope(&login.email);
    let ip = ip_scope(client_ip.as_ref());
    for scope in [&ip, &account] {
        if let Some(refusal) = locked(&state, scope, now).await? {
            tracing::warn!(scope = %scope, "sign-in refused: locked after repeated failures");
            return Err(refusal);
        }
    }
    let found = users::credentials(&state.pool, &login.email).await?;
    let verified = match &found {
        Some(found) => found
            .password_hash
            .as_deref()
            .is_some_and(|hash| verify_password(&login.password, hash)),
        None => {
            burn_verification_time(&login.password);
            false
        }
    };
    let user = match found {
        Some(found) if verified && found.user.status == UserStatus::Active => found.user,
        _ => {
            tracing::info!("sign-in failed");
            return Err(
                match record_failures(&state, &settings, &account, &ip, now).await? {
                    Some(ms) => SignInError::TooManyAttempts {
                        retry_after_secs: whole_seconds(ms),
                    },
                    None => SignInError::InvalidCredentials,
                },
            );
        }
    };
    throttle::clear(&state.pool, &account, now).await?;
    tracing::info!(user_id = %user.id, "signed in");
    Ok(start_session(&state, &settings, user, StatusCode::OK, secure).await?)
}

/// `POST /api/auth/logout`: ends the presented session and clears the cookie. With the admin
/// token there is no session; the answer is the same.
pub async fn logout(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    forwarded: Option<Extension<ForwardedBy>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    if let Some(session) = &principal.session_id {
        sessions::delete(&state.pool, session).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = cookie("", 0, request_over_https(&uri, forwarded.as_ref())) {
        response.headers_mut().insert(SET_COOKIE, clear);
    }
    Ok(response)
}

/// `GET /api/auth/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// `null` for the static admin token.
    #[schema(required = true)]
    pub user: Option<User>,
    /// The caller's role.
    pub role: Role,
    /// The caller's organisation; `null` for SUPER_ADMINs and the admin token.
    #[schema(required = true)]
    pub organisation: Option<Organisation>,
}

/// `GET /api/auth/me`: the signed-in user, role and organisation. Access: any signed-in caller.
pub async fn me(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
) -> Result<Json<Me>, ApiError> {
    let user = match &principal.user_id {
        Some(id) => Some(users::get_by_id(&state.pool, id).await?),
        None => None,
    };
    let organisation = match &principal.organisation_id {
        Some(id) => Some(organisations::get(&state.pool, id).await?),
        None => None,
    };
    Ok(Json(Me {
        user,
        role: principal.role,
        organisation,
    }))
}

/// `POST /api/auth/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now in use.
    #[schema(write_only)]
    pub current_password: String,
    /// The password to set.
    #[schema(write_only)]
    pub new_password: String,
}

/// Changes the signed-in user's password after checking the current one; every other session of
/// the user ends. 204. The check is throttled like sign-in, on the same account and IP scopes: a
/// locked account or IP is 429 `too_many_attempts`, even with the right current password.
pub async fn change_password(
    State(state): State<AdminState>,
    Extension(principal): Extension<AdminPrincipal>,
    Extension(settings): Extension<AuthSettings>,
    client_ip: Option<Extension<ClientIp>>,
    AdminJson(change): AdminJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let Some(user) = &principal.user_id else {
        return Err(ApiError::invalid(
            None,
            "the admin token has no password; sign in as a user",
        ));
    };
    let now = settings.now_ms();
    let email = users::get_by_id(&state.pool, user).await?.email;
    let account = throttle::account_scope(&email);
    let ip = ip_scope(client_ip.as_ref());
    for scope in [&ip, &account] {
        if let Some(ms) = throttle::locked_for(&state.pool, scope, now).await? {
            tracing::warn!(scope = %scope, "password change refused: locked after repeated failures");
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: whole_seconds(ms),
            });
        }
    }
    let stored = users::password_hash_of(&state.pool, user).await?;
    if !stored
        .as_deref()
        .is_some_and(|hash| verify_password(&change.current_password, hash))
    {
        tracing::info!(user_id = %user, "password change: wrong current password");
        if let Some(ms) = record_failures(&state, &settings, &account, &ip, now).await? {
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: whole_seconds(ms),
            });
        }
        return Err(ApiError::invalid(
            Some("currentPassword"),
            "currentPassword is wrong",
        ));
    }
    throttle::clear(&state.pool, &account, now).await?;
    users::change_password(
        &state.pool,
        user,
        &change.new_password,
        principal.session_id.as_deref(),
    )
    .await?;
    tracing::info!(user_id = %user, "password changed; other sessions ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Creates the first SUPER_ADMIN from `ODOCK_BOOTSTRAP_ADMIN_EMAIL` / `_PASSWORD` when the
/// installation has no user. Call it at start; it does nothing once any user exists.
pub async fn bootstrap_admin(
    pool: &odock_store::db::Db,
    email: Option<&str>,
    password: Option<&odock_core::Secret>,
) -> Result<(), crate::services::AdminError> {
    let (Some(email), Some(password)) = (email, password) else {
        return Ok(());
    };
    match users::bootstrap_super_admin(pool, email, password.expose()).await? {
        users::Bootstrap::Created(id) => {
            tracing::info!(user_id = %id, "created the first SUPER_ADMIN from ODOCK_BOOTSTRAP_ADMIN_EMAIL");
        }
        users::Bootstrap::UsersExist => {}
    }
    Ok(())
}
