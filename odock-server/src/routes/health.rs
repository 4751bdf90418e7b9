//! `GET /v1/health` (liveness) and `GET /v1/healthz` (readiness: database and Redis).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use odock_store::db::Db;
use serde_json::{json, Value};

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn healthz(State(pool): State<Db>) -> (StatusCode, Json<Value>) {
    let database = match tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&pool),
    )
    .await
    {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(error)) => format!("error: {error}"),
        Err(_) => "error: timed out".to_owned(),
    };
    let ready = database == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "database": database, "redis": "disabled" },
    });
    (status, Json(body))
}
