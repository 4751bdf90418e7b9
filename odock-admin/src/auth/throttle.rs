//! Sign-in throttling, shared by every replica through the database.
//!
//! Each scope (`account:<email>`, `ip:<address>`) counts failed sign-ins in a fixed window that
//! starts at its first failure. When the count reaches the limit the scope is locked for a while:
//! every sign-in in it is refused (even with the right password) until the lock ends. A successful
//! sign-in clears the account's count. Times are passed in, so tests drive them with a manual clock.

use sqlx::Row;

use odock_store::db::Db;

/// One throttling rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures within `window_ms` that lock the scope.
    pub max_failures: i64,
    /// The window failures are counted in, in milliseconds.
    pub window_ms: i64,
    /// How long the lock lasts.
    pub lock_ms: i64,
}

/// ADMIN_API.md: 5 failures for one account within 15 minutes lock it for 15 minutes.
pub const ACCOUNT_RULE: ThrottleRule = ThrottleRule {
    max_failures: 5,
    window_ms: 15 * 60 * 1000,
    lock_ms: 15 * 60 * 1000,
};

/// ADMIN_API.md: 20 failures per minute from one IP lock it (for a minute).
pub const IP_RULE: ThrottleRule = ThrottleRule {
    max_failures: 20,
    window_ms: 60 * 1000,
    lock_ms: 60 * 1000,
};

/// The scope key of an account.
pub fn account_scope(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

/// The scope key of a client address.
pub fn ip_scope(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The scope key of admin-token tries from a client address (kept apart from sign-in's, so a
/// script with a wrong token does not lock people out of signing in).
pub fn admin_token_scope(ip: &str) -> String {
    format!("admin-token-ip:{ip}")
}

/// Milliseconds until the scope's lock ends, or `None` when it is not locked.
pub async fn locked_for(pool: &Db, scope: &str, now_ms: i64) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query("SELECT locked_until FROM sign_in_throttle WHERE scope = $1")
        .bind(scope)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let until: i64 = row.try_get("locked_until")?;
    Ok((until > now_ms).then(|| until - now_ms))
}

/// Counts one failure; returns the lock length in ms when this failure locked the scope.
pub async fn record_failure(
    pool: &Db,
    scope: &str,
    rule: ThrottleRule,
    now_ms: i64,
) -> Result<Option<i64>, sqlx::Error> {
    // One atomic statement: concurrent failures cannot be lost. A window that began before
    // `stale_before` is over, so the count restarts at this failure.
    let stale_before = now_ms - rule.window_ms;
    let failures: i64 = sqlx::query(
        "INSERT INTO sign_in_throttle (scope, failures, window_start, locked_until, updated_at) \
         VALUES ($1, 1, $2, 0, $2) \
         ON CONFLICT (scope) DO UPDATE SET \
           failures = CASE WHEN sign_in_throttle.window_start <= $3 THEN 1 \
                           ELSE sign_in_throttle.failures + 1 END, \
           window_start = CASE WHEN sign_in_throttle.window_start <= $3 THEN $2 \
                               ELSE sign_in_throttle.window_start END, \
           updated_at = $2 \
         RETURNING failures",
    )
    .bind(scope)
    .bind(now_ms)
    .bind(stale_before)
    .fetch_one(pool)
    .await?
    .try_get("failures")?;
    if failures < rule.max_failures {
        return Ok(None);
    }
    // Locked: the count starts over once the lock ends.
    sqlx::query(
        "UPDATE sign_in_throttle SET locked_until = $1, failures = 0, window_start = $2, updated_at = $2 \
         WHERE scope = $3",
    )
    .bind(now_ms + rule.lock_ms)
    .bind(now_ms)
    .bind(scope)
    .execute(pool)
    .await?;
    Ok(Some(rule.lock_ms))
}

/// Forgets the scope's failures (after a successful sign-in); a running lock stays.
pub async fn clear(pool: &Db, scope: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sign_in_throttle WHERE scope = $1 AND locked_until <= $2")
        .bind(scope)
        .bind(now_ms)
        .execute(pool)
        .await?;
    Ok(())
}

/// `Retry-After` seconds for a lock ending in `ms` milliseconds (rounded up, at least 1).
pub fn whole_seconds(ms: i64) -> u64 {
    u64::try_from(ms.saturating_add(999) / 1000)
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: ThrottleRule = ThrottleRule {
        max_failures: 3,
        window_ms: 1_000,
        lock_ms: 5_000,
    };

    #[tokio::test]
    async fn failures_in_a_window_lock_and_the_lock_ends() {
        let pool = odock_store::testing::database().await;
        let scope = account_scope(" Alice@Example.test ");
        assert_eq!(scope, "account:alice@example.test");
        assert_eq!(locked_for(&pool, &scope, 0).await.unwrap(), None);
        assert_eq!(record_failure(&pool, &scope, RULE, 0).await.unwrap(), None);
        assert_eq!(
            record_failure(&pool, &scope, RULE, 500).await.unwrap(),
            None
        );
        // The window (1 s from the first failure) is over: the count restarts.
        assert_eq!(
            record_failure(&pool, &scope, RULE, 1_000).await.unwrap(),
            None
        );
        assert_eq!(
            record_failure(&pool, &scope, RULE, 1_100).await.unwrap(),
            None
        );
        assert_eq!(
            record_failure(&pool, &scope, RULE, 1_200).await.unwrap(),
            Some(5_000)
        );
        assert_eq!(locked_for(&pool, &scope, 1_200).await.unwrap(), Some(5_000));
        assert_eq!(locked_for(&pool, &scope, 6_199).await.unwrap(), Some(1));
        // A success does not lift a lock.
        clear(&pool, &scope, 6_199).await.unwrap();
        assert_eq!(locked_for(&pool, &scope, 6_199).await.unwrap(), Some(1));
        assert_eq!(locked_for(&pool, &scope, 6_200).await.unwrap(), None);
        // After the lock the count starts from zero.
        assert_eq!(
            record_failure(&pool, &scope, RULE, 6_300).await.unwrap(),
            None
        );
        assert_eq!(
            record_failure(&pool, &scope, RULE, 6_400).await.unwrap(),
            None
        );
        // Other scopes are independent.
        assert_eq!(
            locked_for(&pool, &ip_scope("10.0.0.1"), 1_300)
                .await
                .unwrap(),
            None
        );
    }
}
