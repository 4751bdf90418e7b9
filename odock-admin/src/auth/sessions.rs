//! Sessions of signed-in users: opaque bearer tokens (`ods_` + 256 random bits, URL-safe base64),
//! stored only as their SHA-256, with an absolute expiry. Times are passed in by the caller, whose
//! clock can be controlled in tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use odock_core::{new_object_id, UserStatus};
use rand::RngCore;
use sqlx::Row;

use crate::services::users::{self, User};
use odock_store::db::{Db, DbQueryResult};
use odock_store::keys::hash_token;

/// Every session token starts with this, so a leaked one is recognisable (secret scanners).
pub const SESSION_TOKEN_PREFIX: &str = "ods_";

/// A session just created: the token exists only here, in the sign-in response.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    /// The session's id (not secret).
    pub id: String,
    /// The bearer token (`ods_…`), shown once.
    pub token: odock_core::Secret,
    /// Unix ms.
    pub expires_at: i64,
}

/// A session presented with a request, and its user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// The session's id.
    pub id: String,
    /// The session's user.
    pub user: User,
    /// Unix ms.
    pub expires_at: i64,
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{SESSION_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Starts a session for the user, valid until `now_ms + ttl_ms`.
pub async fn create(
    pool: &Db,
    user_id: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<IssuedSession, sqlx::Error> {
    let id = new_object_id();
    let token = new_token();
    let expires_at = now_ms.saturating_add(ttl_ms);
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(hash_token(&token))
    .bind(user_id)
    .bind(expires_at)
    .bind(now_ms)
    .execute(pool)
    .await?;
    Ok(IssuedSession {
        id,
        token: odock_core::Secret::new(token),
        expires_at,
    })
}

/// The session of a presented token, if it exists, has not expired and its user is `ACTIVE`.
pub async fn resolve(
    pool: &Db,
    token: &str,
    now_ms: i64,
) -> Result<Option<ActiveSession>, sqlx::Error> {
    if !token.starts_with(SESSION_TOKEN_PREFIX) {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT s.id AS session_id, s.expires_at AS session_expires_at, \
         u.id, u.organisation_id, u.email, u.name, u.role, u.status, u.created_at, u.updated_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.status = $3",
    )
    .bind(hash_token(token))
    .bind(now_ms)
    .bind(UserStatus::Active.as_str())
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(ActiveSession {
            id: row.try_get("session_id")?,
            expires_at: row.try_get("session_expires_at")?,
            user: users::decode(&row)?,
        })
    })
    .transpose()
}

/// Ends one session (sign-out). Ending a session that no longer exists is not an error.
pub async fn delete(pool: &Db, session_id: &str) -> Result<DbQueryResult, sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(session_id)
        .execute(pool)
        .await
}

/// Removes sessions that expired before `now_ms` (housekeeping; expired ones never authenticate).
pub async fn delete_expired(pool: &Db, now_ms: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now_ms)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}

/// How many sessions the user has (tests, the sign-out check).
pub async fn count_for_user(pool: &Db, user_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT COUNT(*) AS n FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await?
        .try_get("n")
}
