//! The admin API under `/api` (ADMIN_API.md), authenticated by `ODOCK_ADMIN_TOKEN`.

use std::sync::Arc;

use axum::Router;
use odock_core::{CacheInvalidator, Secret};
use odock_store::MasterKey;
use sqlx::SqlitePool;

/// Everything the admin handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub pool: SqlitePool,
    pub master_key: Arc<MasterKey>,
    /// Called after every write that changes runtime state (keys, models, providers, grants, …).
    pub invalidator: Arc<dyn CacheInvalidator>,
    /// The static admin token (acts as SUPER_ADMIN).
    pub admin_token: Secret,
}

/// The `/api` router.
pub fn router(state: AdminState) -> Router {
    let _ = state;
    Router::new()
}
