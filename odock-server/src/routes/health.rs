//! `GET /v1/health` (liveness) and `GET /v1/healthz` (readiness: database, Redis, and a usage
//! writer that keeps up).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use odock_redis::RedisHealth;
use odock_store::db::Db;
use odock_store::SqlUsageSink;
use serde_json::{json, Value};

/// How long each readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/v1/healthz` checks.
#[derive(Clone)]
pub struct HealthState {
    /// The database, checked with `SELECT 1`.
    pub pool: Db,
    /// `None` in embedded mode (reported as `"disabled"`).
    pub redis: Option<RedisHealth>,
    /// Not ready once its oldest unwritten record is older than `usage_max_lag`: a database that
    /// answers `SELECT 1` may still refuse every write (locked, full disk).
    pub usage: Arc<SqlUsageSink>,
    /// The largest backlog age of `usage` still reported ready.
    pub usage_max_lag: Duration,
}

/// `GET /v1/health`: liveness, always `{"status":"ok"}`.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /v1/healthz`: readiness of the database, Redis and usage writer; 503 if any fails.
pub async fn healthz(State(state): State<HealthState>) -> (StatusCode, Json<Value>) {
    let database = match tokio::time::timeout(
        CHECK_TIMEOUT,
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&state.pool),
    )
    .await
    {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(error)) => format!("error: {error}"),
        Err(_) => "error: timed out".to_owned(),
    };
    let redis = match &state.redis {
        None => "disabled".to_owned(),
        Some(redis) => match tokio::time::timeout(CHECK_TIMEOUT, redis.check()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(error)) => format!("error: {error}"),
            Err(_) => "error: timed out".to_owned(),
        },
    };
    let lag = state.usage.backlog_age();
    let usage = if lag <= state.usage_max_lag {
        "ok".to_owned()
    } else {
        format!(
            "error: the oldest usage record not yet stored is {} s old (limit {} s)",
            lag.as_secs(),
            state.usage_max_lag.as_secs()
        )
    };
    let ready = database == "ok" && (redis == "ok" || redis == "disabled") && usage == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "database": database, "redis": redis, "usage": usage },
    });
    (status, Json(body))
}
